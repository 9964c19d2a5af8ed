//! The audit trail's listing on PostgreSQL (records are written by the
//! group commit).

use super::{PgStore, map_rows, pg_err, typed};
use crate::query;
use crate::records::*;
use crate::rows::audit_row;

impl PgStore {
    pub async fn query_audit(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let (sql, mut args, limit) = query::audit(q);
        let c = self.conn().await?;
        let rows = c
            .query_typed(&query::numbered(&sql), &typed(&mut args))
            .await
            .map_err(pg_err)?;
        Ok(AuditPage::assemble(
            map_rows(&rows, |r| audit_row(r))?,
            limit,
        ))
    }
}
