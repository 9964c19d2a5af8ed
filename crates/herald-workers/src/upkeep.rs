//! The store's periodic upkeep (on PostgreSQL, the coming months'
//! partitions of `events`): one [`Upkeep::step`] and a thin loop that runs
//! it at start and then every period.

use std::time::Duration;

use herald_store::{Store, StoreError};
use tokio::sync::watch;

/// Runs [`Store::maintain`].
#[derive(Debug, Clone)]
pub struct Upkeep {
    pub store: Store,
}

impl Upkeep {
    /// One round of upkeep.
    pub async fn step(&self) -> Result<(), StoreError> {
        self.store.maintain().await
    }

    /// Steps every `every` (and once at start) until `stop` flips; a failed
    /// round is logged and tried again next period.
    pub async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.step().await {
                tracing::warn!(error = %e, "store upkeep failed; retrying later");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
