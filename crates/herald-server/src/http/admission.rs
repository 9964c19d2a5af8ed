//! Backpressure for ingest: at most `capacity` events are in flight (read,
//! processed, queued for the writer or being committed) at once. A request
//! that cannot get room within a short wait is answered 503 with
//! `Retry-After` instead of queueing without bound, so memory stays bounded
//! under overload and clients back off.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::problem::ApiError;

#[derive(Debug, Clone)]
pub struct Admission {
    permits: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
}

impl Admission {
    pub fn new(capacity: usize, wait: Duration) -> Self {
        Admission {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            wait,
        }
    }

    /// Room for `events` events, held until the guard drops.
    pub async fn admit(&self, events: usize) -> Result<OwnedSemaphorePermit, ApiError> {
        let n = u32::try_from(events.clamp(1, self.capacity)).unwrap_or(u32::MAX);
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_many_owned(n)).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::unavailable(format!(
                "Herald is at its limit of {} events in flight; retry after the Retry-After delay",
                self.capacity
            ))),
        }
    }

    pub fn in_flight(&self) -> usize {
        self.capacity - self.permits.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_capacity_answers_503_with_retry_after_and_frees_on_drop() {
        let a = Admission::new(10, Duration::from_millis(20));
        let held = a.admit(8).await.unwrap();
        assert_eq!(a.in_flight(), 8);
        let err = a.admit(5).await.unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.retry_after, Some(1));
        assert!(a.admit(2).await.is_ok(), "what fits is admitted");
        drop(held);
        assert!(a.admit(10).await.is_ok());
        // A request larger than the whole capacity waits for all of it rather than never fitting.
        assert!(a.admit(50).await.is_ok());
    }
}
