//! The rollup follower: folds stored events, in commit order from the
//! durable cursor `rollups`, into the statistics rollups (see
//! `herald_store::Store::roll_up`). One [`RollupWorker::step`] folds one
//! batch; the loop steps again at once while batches come full, else
//! every `interval`. Statistics read the events the follower has not
//! reached yet themselves, so the interval bounds work per event, not how
//! fresh an answer is.

use std::time::Duration;

use herald_store::{Store, StoreError};
use tokio::sync::watch;

/// Events folded per step by default.
pub const DEFAULT_BATCH: usize = 20_000;

#[derive(Debug, Clone)]
pub struct RollupWorker {
    store: Store,
    batch: usize,
}

impl RollupWorker {
    pub fn new(store: Store) -> RollupWorker {
        RollupWorker {
            store,
            batch: DEFAULT_BATCH,
        }
    }

    pub fn with_batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// Folds the next batch; how many events.
    pub async fn step(&self) -> Result<usize, StoreError> {
        self.store.roll_up(self.batch).await
    }

    /// Steps until `stop` flips: again at once after a full batch, else
    /// after `interval`. A failed step is logged and tried again.
    pub async fn run(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.step().await {
                Ok(n) if n >= self.batch => continue,
                Ok(_) => {}
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "statistics rollup step failed; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
