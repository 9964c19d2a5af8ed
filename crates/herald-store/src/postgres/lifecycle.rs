//! Lifecycle notices on PostgreSQL: written in the transaction of the
//! change that causes them.

use herald_core::Timestamp;

use super::writer::insert_audits;
use super::{PgStore, clean, pg_err};
use crate::query::numbered;
use crate::records::*;
use crate::store::lifecycle::sql;

/// Writes `records` to the audit trail and, with `publish`, the outbox.
pub(super) async fn write_notices(
    tx: &tokio_postgres::Transaction<'_>,
    records: &[LifecycleRecord],
    publish: bool,
    at: Timestamp,
) -> Result<(), StoreError> {
    let audits: Vec<AuditRecord> = records.iter().map(|l| l.audit_record(at)).collect();
    insert_audits(tx, &audits).await.map_err(pg_err)?;
    if publish {
        let outbox = tx
            .prepare(&numbered(sql::INSERT_OUTBOX))
            .await
            .map_err(pg_err)?;
        for l in records {
            tx.execute(
                &outbox,
                &[
                    &clean(&l.tenant_id),
                    &l.event_id.map(|e| *e.as_uuid()),
                    &l.kind.as_str(),
                    &clean(&l.payload),
                ],
            )
            .await
            .map_err(pg_err)?;
        }
    }
    Ok(())
}

impl PgStore {
    pub async fn record_lifecycle(
        &self,
        records: Vec<LifecycleRecord>,
        publish: bool,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        write_notices(&tx, &records, publish, at).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(())
    }
}
