//! Replays on the embedded store: a step's deliveries and progress move go
//! through the writer together, in one savepoint.

use herald_core::TenantId;
use rusqlite::params;

use super::deliveries::insert_deliveries;
use super::{SqliteStore, map_row, map_rows, sql_values};
use crate::query::{self, Dialect};
use crate::records::*;
use crate::rows::sequenced_row;
use crate::store::deliveries::sql::NewValues as DeliveryValues;
use crate::store::replays::sql::{self, Advance, NewValues, replay_row};

impl SqliteStore {
    pub(crate) async fn insert_replay(&self, v: NewValues) -> Result<(), StoreError> {
        self.write(move |c| {
            c.prepare_cached(sql::INSERT)?.execute(params![
                v.id,
                v.tenant,
                v.selection,
                v.targets,
                v.dry_run,
                v.state,
                v.progress.cursor,
                v.progress.events_scanned,
                v.progress.events_matched,
                v.progress.deliveries_created,
                v.created,
                v.finished,
                v.finished,
                v.until_seq,
            ])?;
            Ok(())
        })
        .await
    }

    pub async fn get_replay(
        &self,
        tenant: &TenantId,
        replay_id: &str,
    ) -> Result<Option<Replay>, StoreError> {
        let (tenant, id) = (tenant.to_string(), replay_id.to_string());
        self.read(move |c| {
            map_row(
                &mut c.prepare_cached(&sql::get())?,
                params![tenant, id],
                |r| replay_row(r),
            )
        })
        .await
    }

    pub async fn latest_seq(&self) -> Result<i64, StoreError> {
        self.read(move |c| {
            Ok(c.prepare_cached(sql::LATEST_SEQ)?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }

    pub async fn next_replay(&self) -> Result<Option<Replay>, StoreError> {
        self.read(move |c| map_row(&mut c.prepare_cached(&sql::next())?, [], |r| replay_row(r)))
            .await
    }

    pub async fn start_replay(&self, id: String, at: i64) -> Result<bool, StoreError> {
        self.write(move |c| Ok(c.prepare_cached(sql::START)?.execute(params![at, id])? == 1))
            .await
    }

    pub async fn replay_events(
        &self,
        tenant: &TenantId,
        scan: &ReplayScan,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        let (sql, args) = query::commit_order(Dialect::Sqlite, tenant.as_str(), scan, after, limit);
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql)?,
                rusqlite::params_from_iter(sql_values(args)),
                |r| sequenced_row(r),
            )
        })
        .await
    }

    pub async fn advance_replay(
        &self,
        step: ReplayStep,
        rows: Vec<NewDelivery>,
    ) -> Result<bool, StoreError> {
        let a = Advance::of(&step);
        let values: Vec<DeliveryValues> = rows.iter().map(DeliveryValues::of).collect();
        self.write(move |c| {
            let moved = c.prepare_cached(sql::ADVANCE)?.execute(params![
                a.progress.cursor,
                a.progress.events_scanned,
                a.progress.events_matched,
                a.progress.deliveries_created,
                a.state,
                a.error,
                a.completed,
                a.id,
                a.from_cursor,
            ])?;
            if moved == 0 {
                return Ok(false);
            }
            insert_deliveries(c, &values)?;
            Ok(true)
        })
        .await
    }
}
