//! Lifecycle notices about delivery and replay: each goes to the audit
//! trail, and also to the lifecycle outbox the NATS publisher drains when
//! one runs (without a publisher nothing would ever drain it).

use herald_core::Timestamp;

use crate::{LifecycleRecord, Store, StoreError};

impl Store {
    /// Writes `records` to the audit trail at `at` and, with `publish`,
    /// queues them in the lifecycle outbox, in one transaction.
    pub async fn record_lifecycle(
        &self,
        records: Vec<LifecycleRecord>,
        publish: bool,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        each!(self, s => s.record_lifecycle(records, publish, at).await)
    }
}

/// The lifecycle SQL for both backends, `?` placeholders.
pub(crate) mod sql {
    /// `tenant_id`, `event_id` (or `NULL`), `kind`, `payload`.
    pub(crate) const INSERT_OUTBOX: &str =
        "INSERT INTO lifecycle_outbox (tenant_id, event_id, kind, payload) VALUES (?, ?, ?, ?)";
}
