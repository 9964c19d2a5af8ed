//! Lifecycle notices on the embedded store: written with the statement
//! that causes them, through the writer.

use herald_core::Timestamp;
use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::records::*;
use crate::store::lifecycle::sql;

/// Writes `records` to the audit trail and, with `publish`, the outbox.
pub(super) fn write_notices(
    c: &Connection,
    records: &[LifecycleRecord],
    publish: bool,
    at: Timestamp,
) -> Result<(), StoreError> {
    let mut audit = c.prepare_cached(sql::INSERT_AUDIT)?;
    for l in records {
        let r = l.audit_record(at);
        audit.execute(params![
            r.at.to_string(),
            r.at.unix_micros(),
            r.tenant_id,
            r.key_id,
            r.operation,
            r.resource,
            r.outcome.as_str(),
            r.status_code,
            r.request_id,
            r.duration_us as i64,
            r.detail
        ])?;
    }
    if publish {
        let mut outbox = c.prepare_cached(sql::INSERT_OUTBOX)?;
        for l in records {
            outbox.execute(params![
                l.tenant_id,
                l.event_id.map(|e| e.as_bytes().to_vec()),
                l.kind.as_str(),
                l.payload
            ])?;
        }
    }
    Ok(())
}

impl SqliteStore {
    pub async fn record_lifecycle(
        &self,
        records: Vec<LifecycleRecord>,
        publish: bool,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        self.write(move |c| write_notices(c, &records, publish, at))
            .await
    }
}
