//! Replays on PostgreSQL: a step's deliveries and progress move in one
//! transaction; the compare-and-set on the cursor keeps two instances from
//! both moving one replay.

use herald_core::TenantId;

use super::deliveries::insert_all;
use super::{PgStore, clean, map_rows, pg_err, typed};
use crate::query::{self, Dialect, numbered};
use crate::records::*;
use crate::rows::sequenced_row;
use crate::store::replays::sql::{self, Advance, NewValues, replay_row};

impl PgStore {
    pub(crate) async fn insert_replay(&self, v: NewValues) -> Result<(), StoreError> {
        let c = self.conn().await?;
        c.execute(
            &numbered(sql::INSERT),
            &[
                &clean(&v.id),
                &v.tenant,
                &clean(&v.selection),
                &clean(&v.targets),
                &v.dry_run,
                &v.state,
                &v.progress.cursor,
                &v.progress.events_scanned,
                &v.progress.events_matched,
                &v.progress.deliveries_created,
                &v.created,
                &v.finished,
                &v.finished,
                &v.until_seq,
            ],
        )
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    pub async fn get_replay(
        &self,
        tenant: &TenantId,
        replay_id: &str,
    ) -> Result<Option<Replay>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::get()),
                &[&tenant.as_str(), &clean(replay_id)],
            )
            .await
            .map_err(pg_err)?;
        Ok(map_rows(&rows, |r| replay_row(r))?.pop())
    }

    pub async fn latest_seq(&self) -> Result<i64, StoreError> {
        let c = self.conn().await?;
        let row = c.query_one(sql::LATEST_SEQ, &[]).await.map_err(pg_err)?;
        Ok(row.get(0))
    }

    pub async fn next_replay(&self) -> Result<Option<Replay>, StoreError> {
        let c = self.conn().await?;
        let rows = c.query(&sql::next(), &[]).await.map_err(pg_err)?;
        Ok(map_rows(&rows, |r| replay_row(r))?.pop())
    }

    pub async fn start_replay(&self, id: String, at: i64) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(&numbered(sql::START), &[&at, &clean(&id)])
            .await
            .map_err(pg_err)?;
        Ok(n == 1)
    }

    pub async fn replay_events(
        &self,
        tenant: &TenantId,
        scan: &ReplayScan,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        let (sql, mut args) =
            query::commit_order(Dialect::Postgres, tenant.as_str(), scan, after, limit);
        let c = self.conn().await?;
        let rows = c
            .query_typed(&sql, &typed(&mut args))
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| sequenced_row(r))
    }

    pub async fn advance_replay(
        &self,
        step: ReplayStep,
        rows: Vec<NewDelivery>,
    ) -> Result<bool, StoreError> {
        let a = Advance::of(&step);
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let moved = tx
            .execute(
                &numbered(sql::ADVANCE),
                &[
                    &a.progress.cursor,
                    &a.progress.events_scanned,
                    &a.progress.events_matched,
                    &a.progress.deliveries_created,
                    &a.state,
                    &a.error.as_deref().map(clean),
                    &a.completed,
                    &clean(&a.id),
                    &a.from_cursor,
                ],
            )
            .await
            .map_err(pg_err)?;
        if moved == 0 {
            return Ok(false);
        }
        if !rows.is_empty() {
            insert_all(&tx, &rows).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(true)
    }
}
