//! Lifecycle notices on the embedded store: written with the statement
//! that causes them, through the writer.

use herald_core::Timestamp;
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::writer::insert_audit;
use crate::records::*;
use crate::store::lifecycle::sql;

/// Writes `records` to the audit trail and, with `publish`, the outbox.
pub(super) fn write_notices(
    c: &Connection,
    records: &[LifecycleRecord],
    publish: bool,
    at: Timestamp,
) -> Result<(), StoreError> {
    for l in records {
        insert_audit(c, &l.audit_record(at))?;
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
