//! The audit trail.

use crate::{AuditPage, AuditQuery, AuditRecord, Store, StoreError};

impl Store {
    /// Queues an audit record; it is committed with the next group commit
    /// (and in a commit of its own if that one fails).
    pub fn record_audit(&self, record: AuditRecord) {
        each!(self, s => s.record_audit(record))
    }

    /// One page of the trail, newest first.
    pub async fn query_audit(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        each!(self, s => s.query_audit(query).await)
    }
}
