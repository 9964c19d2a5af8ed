//! Streams and projection snapshots on PostgreSQL.

use herald_core::TenantId;

use super::{PgStore, clean, map_rows, pg_err};
use crate::query::numbered;
use crate::records::*;
use crate::rows::event_json_row;
use crate::store::streams::sql;
use crate::store::streams::{FoldEvent, Snapshot, StreamInfo, StreamRead};

impl PgStore {
    pub async fn stream_info(
        &self,
        tenant: &TenantId,
        stream_id: &str,
    ) -> Result<Option<StreamInfo>, StoreError> {
        let (t, s) = (tenant.as_str(), clean(stream_id));
        let c = self.conn().await?;
        let rows = c
            .query(&numbered(sql::INFO), &[&t, &s, &t, &s, &t, &s])
            .await
            .map_err(pg_err)?;
        Ok(map_rows(&rows, |r| sql::info_row(r))?.pop().flatten())
    }

    pub async fn stream_version(
        &self,
        tenant: &TenantId,
        stream_id: &str,
    ) -> Result<u64, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                &numbered(sql::VERSION),
                &[&tenant.as_str(), &clean(stream_id)],
            )
            .await
            .map_err(pg_err)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    pub async fn stream_events(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        read: StreamRead,
    ) -> Result<Vec<EventJson>, StoreError> {
        let from = read
            .from_version
            .map_or(i64::MAX, |v| v.min(i64::MAX as u64) as i64);
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::events("body::text", read.direction)),
                &[
                    &tenant.as_str(),
                    &clean(stream_id),
                    &from,
                    &((read.limit + 1) as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| event_json_row(r))
    }

    pub async fn fold_events(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        after: u64,
        until: u64,
        processed_by: i64,
        limit: usize,
    ) -> Result<Vec<FoldEvent>, StoreError> {
        let (after, until) = (after as i64, until.min(i64::MAX as u64) as i64);
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::fold("(body -> 'data')::text")),
                &[
                    &tenant.as_str(),
                    &clean(stream_id),
                    &after,
                    &until,
                    &processed_by,
                    &(limit as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| sql::fold_row(r))
    }

    pub async fn nearest_snapshot(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        rules: &str,
        until: u64,
        processed_by: i64,
    ) -> Result<Option<Snapshot>, StoreError> {
        let until = until.min(i64::MAX as u64) as i64;
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(sql::NEAREST),
                &[
                    &tenant.as_str(),
                    &clean(stream_id),
                    &rules,
                    &until,
                    &processed_by,
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(map_rows(&rows, |r| sql::snapshot_row(r))?.pop())
    }

    pub async fn save_snapshots(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        rules: &str,
        snapshots: Vec<Snapshot>,
    ) -> Result<(), StoreError> {
        let (t, s) = (tenant.as_str(), clean(stream_id));
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let stmt = tx.prepare(&numbered(sql::SAVE)).await.map_err(pg_err)?;
        for snap in snapshots {
            tx.execute(
                &stmt,
                &[
                    &t,
                    &s,
                    &(snap.version as i64),
                    &rules,
                    &snap.state.to_string(),
                    &snap.last_event_id.to_string(),
                    &snap.updated_at,
                    &snap.max_processing_ts,
                ],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.commit().await.map_err(pg_err)
    }
}
