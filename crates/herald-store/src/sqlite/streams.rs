//! Streams and projection snapshots on the embedded store.

use herald_core::TenantId;
use rusqlite::params;

use super::{SqliteStore, map_row, map_rows};
use crate::records::*;
use crate::rows::event_json_row;
use crate::store::streams::sql;
use crate::store::streams::{FoldEvent, Snapshot, StreamInfo, StreamRead};

impl SqliteStore {
    pub async fn stream_info(
        &self,
        tenant: &TenantId,
        stream_id: &str,
    ) -> Result<Option<StreamInfo>, StoreError> {
        let (t, s) = (tenant.to_string(), stream_id.to_string());
        self.read(move |c| {
            Ok(map_row(
                &mut c.prepare_cached(sql::INFO)?,
                params![t, s, t, s, t, s],
                |r| sql::info_row(r),
            )?
            .flatten())
        })
        .await
    }

    pub async fn stream_version(
        &self,
        tenant: &TenantId,
        stream_id: &str,
    ) -> Result<u64, StoreError> {
        let (t, s) = (tenant.to_string(), stream_id.to_string());
        self.read(move |c| {
            let v: i64 = c
                .prepare_cached(sql::VERSION)?
                .query_row(params![t, s], |r| r.get(0))?;
            Ok(v as u64)
        })
        .await
    }

    pub async fn stream_events(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        read: StreamRead,
    ) -> Result<Vec<EventJson>, StoreError> {
        let (t, s) = (tenant.to_string(), stream_id.to_string());
        let from = read
            .from_version
            .map_or(i64::MAX, |v| v.min(i64::MAX as u64) as i64);
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::events("body", read.direction))?,
                params![t, s, from, (read.limit + 1) as i64],
                |r| event_json_row(r),
            )
        })
        .await
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
        let (t, s) = (tenant.to_string(), stream_id.to_string());
        let (after, until) = (after as i64, until.min(i64::MAX as u64) as i64);
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::fold("body -> '$.data'"))?,
                params![t, s, after, until, processed_by, limit as i64],
                |r| sql::fold_row(r),
            )
        })
        .await
    }

    pub async fn nearest_snapshot(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        rules: &str,
        until: u64,
        processed_by: i64,
    ) -> Result<Option<Snapshot>, StoreError> {
        let (t, s, rules) = (tenant.to_string(), stream_id.to_string(), rules.to_string());
        let until = until.min(i64::MAX as u64) as i64;
        self.read(move |c| {
            map_row(
                &mut c.prepare_cached(sql::NEAREST)?,
                params![t, s, rules, until, processed_by],
                |r| sql::snapshot_row(r),
            )
        })
        .await
    }

    pub async fn save_snapshots(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        rules: &str,
        snapshots: Vec<Snapshot>,
    ) -> Result<(), StoreError> {
        let (t, s, rules) = (tenant.to_string(), stream_id.to_string(), rules.to_string());
        self.write(move |c| {
            let mut stmt = c.prepare_cached(sql::SAVE)?;
            for snap in snapshots {
                stmt.execute(params![
                    t,
                    s,
                    snap.version as i64,
                    rules,
                    snap.state.to_string(),
                    snap.last_event_id.to_string(),
                    snap.updated_at,
                    snap.max_processing_ts,
                ])?;
            }
            Ok(())
        })
        .await
    }
}
