//! The status worker: moves stored events `pending → processing →
//! processed`, recording each transition's duration. Processors plug in
//! later; with none registered processing is a no-op that still records.
//! Written as one `step` (tests call it directly) and a thin loop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_core::{EventStatus, Timestamp};
use herald_store::{ProcessingResult, Store, StoreError};
use tokio::sync::{Notify, watch};

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Finished this many events.
    Completed(usize),
    /// Nothing was pending.
    Empty,
}

#[derive(Debug, Clone)]
pub struct StatusWorker {
    pub store: Store,
    pub batch: usize,
}

impl StatusWorker {
    pub async fn step(&self) -> Result<Step, StoreError> {
        let claimed = self.store.claim_pending(self.batch).await?;
        if claimed.is_empty() {
            return Ok(Step::Empty);
        }
        let results: Vec<ProcessingResult> = claimed
            .iter()
            .map(|event| {
                let started = Instant::now();
                // No processors are registered yet: nothing to run.
                ProcessingResult {
                    event_id: event.event_id,
                    status: EventStatus::Processed,
                    duration_ms: started.elapsed().as_secs_f64() * 1000.0,
                    finished_at: Timestamp::now(),
                }
            })
            .collect();
        let n = results.len();
        self.store.finish_processing(results).await?;
        Ok(Step::Completed(n))
    }

    /// Steps until `stop` flips, sleeping when idle until woken or `idle`.
    pub async fn run(self, wake: Arc<Notify>, idle: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.step().await {
                Ok(Step::Completed(_)) => continue,
                Ok(Step::Empty) => {}
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "status worker step failed; retrying"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
