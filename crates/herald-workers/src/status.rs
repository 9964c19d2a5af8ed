//! The status worker: moves stored events from `pending` to `processed`
//! and records when. No processor exists yet, so processing is a no-op:
//! each step completes a batch of pending events in one statement (one
//! write per event, where a claim and a finish would be two) with a
//! duration of 0 ms. Processors, once they exist, will claim with
//! `Store::claim_pending` and finish with `Store::finish_processing`,
//! passing back each claim's token: a claim that lapsed (PostgreSQL's lease)
//! and was taken by another worker finishes nothing and notifies nothing.
//! When events are published to NATS, each completion also queues its
//! `event.processed.success` notification in the same transaction; nothing
//! fails yet, so `event.processed.failed` is never sent.
//! Written as one `step` (tests call it directly) and a thin loop.

use std::sync::Arc;
use std::time::Duration;

use herald_core::Clock;
use herald_store::{Store, StoreError};
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
    /// Stamps `processed_at`.
    pub clock: Arc<dyn Clock>,
}

impl StatusWorker {
    pub async fn step(&self) -> Result<Step, StoreError> {
        match self
            .store
            .complete_pending(
                self.batch,
                self.lifecycle,
                self.clock.now().as_offset_date_time(),
            )
            .await?
        {
            0 => Ok(Step::Empty),
            n => Ok(Step::Completed(n)),
        }
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
