//! The status worker: moves stored events `pending → processing →
//! processed`, recording each transition's duration. Processors plug in
//! later; with none registered processing is a no-op that still records.
//! When events are published to NATS, each outcome also queues its
//! lifecycle notification (`event.processed.success` / `.failed`) in the
//! same transaction. Written as one `step` (tests call it directly) and a
//! thin loop; `maintain` is the store's periodic upkeep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_core::{EventStatus, Timestamp};
use herald_store::{LifecycleRecord, ProcessingResult, Store, StoreError};
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
    /// Queue lifecycle notifications for the publisher.
    pub lifecycle: bool,
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
        let lifecycle = if self.lifecycle {
            claimed
                .iter()
                .zip(&results)
                .map(|(event, r)| {
                    let kind = match r.status {
                        EventStatus::Failed => "event.processed.failed",
                        _ => "event.processed.success",
                    };
                    LifecycleRecord {
                        tenant_id: event.tenant_id.to_string(),
                        event_id: event.event_id,
                        kind: kind.into(),
                        payload: serde_json::json!({
                            "type": kind,
                            "event_id": event.event_id,
                            "tenant_id": event.tenant_id,
                            "category": event.category.as_str(),
                            "event_type": event.event_type.as_str(),
                            "status": r.status.as_str(),
                            "duration_ms": r.duration_ms,
                            "at": r.finished_at.to_string(),
                        })
                        .to_string(),
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        let n = results.len();
        self.store.finish_processing(results, lifecycle).await?;
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

/// Runs the store's upkeep every `every` (and once at start) until `stop`
/// flips: on PostgreSQL, the coming months' partitions.
pub async fn maintain(store: Store, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        if let Err(e) = store.maintain().await {
            tracing::warn!(error = %e, "store upkeep failed; retrying later");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
    }
}
