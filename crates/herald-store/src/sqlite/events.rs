//! Events on the embedded store: reads by id, queries, and the commit log
//! (appends go through the group commit).

use herald_core::{EventId, TenantId};
use rusqlite::{Connection, params};

use super::{SqlRow, SqliteStore, map_row, map_rows, sql_values};
use crate::query;
use crate::records::*;
use crate::rows::{PageRows, event_json_row, sequenced_row, stored_event_row};

/// What [`stored_event_row`] reads.
pub(super) const EVENT_COLUMNS: &str = "body, status, processed_at, processing_ms";

impl SqliteStore {
    pub async fn get_event(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE event_id = ?1 AND tenant_id = ?2"
            ))?;
            map_row(&mut stmt, params![id.as_bytes().as_slice(), tenant], |r| {
                stored_event_row(r)
            })
        })
        .await
    }

    pub async fn query_events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError> {
        let tenant = tenant.to_string();
        let query = query.clone();
        self.read(move |c| run_query(c, &tenant, &query, |r| stored_event_row(r)))
            .await
    }

    pub async fn query_events_json(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<Page<EventJson>, StoreError> {
        let tenant = tenant.to_string();
        let query = query.clone();
        self.read(move |c| run_query(c, &tenant, &query, |r| event_json_row(r)))
            .await
    }

    pub async fn events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT seq, event_id, tenant_id, category, event_type, body, stream_id, stream_version FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            map_rows(&mut stmt, params![after, limit as i64], |r| sequenced_row(r))
        })
        .await
    }
}

/// Runs `q`, each page row mapped by `map`.
fn run_query<T>(
    c: &Connection,
    tenant: &str,
    q: &EventQuery,
    map: impl Fn(&SqlRow<'_, '_>) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let sql = query::build(query::Dialect::Sqlite, tenant, q);
    let counted: i64 = c.prepare(&sql.count_sql)?.query_row(
        rusqlite::params_from_iter(sql_values(sql.count_args)),
        |r| r.get(0),
    )?;
    let mut stmt = c.prepare(&sql.page_sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(sql_values(sql.page_args)))?;
    let mut page = PageRows::new(sql.limit);
    while let Some(row) = rows.next()? {
        if !page.push(&SqlRow(row), &map)? {
            break;
        }
    }
    Ok(page.finish(counted, q.exact_total))
}
