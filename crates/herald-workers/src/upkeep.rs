//! The store's periodic upkeep (on PostgreSQL, the coming months'
//! partitions of `events`): one [`Upkeep::step`] and a thin loop that runs
//! it at start and then every period.

use std::sync::Arc;
use std::time::Duration;

use herald_core::Clock;

use herald_store::{Store, StoreError};
use tokio::sync::watch;

/// Runs [`Store::maintain`].
#[derive(Debug, Clone)]
pub struct Upkeep {
    pub store: Store,
    /// Says which months are coming.
    pub clock: Arc<dyn Clock>,
}

impl Upkeep {
    /// One round of upkeep.
    pub async fn step(&self) -> Result<(), StoreError> {
        self.store
            .maintain(self.clock.now().as_offset_date_time())
            .await
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
