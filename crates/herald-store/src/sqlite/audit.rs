//! The audit trail's listing on the embedded store (records are written by
//! the group commit).

use super::{SqliteStore, map_rows, sql_values};
use crate::query;
use crate::records::*;
use crate::rows::audit_row;

impl SqliteStore {
    pub async fn query_audit(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        let (sql, args, limit) = query::audit(query);
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = map_rows(
                &mut stmt,
                rusqlite::params_from_iter(sql_values(args)),
                |r| audit_row(r),
            )?;
            Ok(AuditPage::assemble(rows, limit))
        })
        .await
    }
}
