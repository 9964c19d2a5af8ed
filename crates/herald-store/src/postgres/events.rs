//! Events on PostgreSQL: reads by id, queries, and the commit log
//! (appends go through the group commit).

use herald_core::{EventId, TenantId};

use super::{PgRow, PgStore, map_rows, pg_err, typed};
use crate::query;
use crate::records::*;
use crate::rows::{PageRows, event_json_row, sequenced_row, stored_event_row};

impl PgStore {
    pub async fn get_event(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT body::text, status, processed_at, processing_ms FROM events \
                 WHERE event_id = $1 AND tenant_id = $2",
            )
            .await
            .map_err(pg_err)?;
        let row = c
            .query_opt(&stmt, &[id.as_uuid(), &tenant.as_str()])
            .await
            .map_err(pg_err)?;
        row.map(|r| stored_event_row(&PgRow(&r))).transpose()
    }

    async fn run_query<T>(
        &self,
        tenant: &TenantId,
        q: &EventQuery,
        map: impl Fn(&PgRow<'_>) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let mut sql = query::build(query::Dialect::Postgres, tenant.as_str(), q);
        let c = self.conn().await?;
        let counted: i64 = c
            .query_typed(&sql.count_sql, &typed(&mut sql.count_args))
            .await
            .map_err(pg_err)?
            .first()
            .map(|r| r.get(0))
            .unwrap_or(0);
        let rows = c
            .query_typed(&sql.page_sql, &typed(&mut sql.page_args))
            .await
            .map_err(pg_err)?;
        let mut page = PageRows::new(sql.limit);
        for row in &rows {
            if !page.push(&PgRow(row), &map)? {
                break;
            }
        }
        Ok(page.finish(counted, q.exact_total))
    }

    pub async fn query_events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError> {
        self.run_query(tenant, query, |r| stored_event_row(r)).await
    }

    pub async fn query_events_json(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<Page<EventJson>, StoreError> {
        self.run_query(tenant, query, |r| event_json_row(r)).await
    }

    pub async fn events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT seq, event_id, tenant_id, category, event_type, body::text, stream_id, stream_version FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .await
            .map_err(pg_err)?;
        let rows = c
            .query(&stmt, &[&after, &(limit as i64)])
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| sequenced_row(r))
    }
}
