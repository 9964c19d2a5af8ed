//! Workflow waits on PostgreSQL: a new wait takes the commit lock, so its
//! `created_seq` is the last `seq` committed before it and every later
//! commit has a larger one; claims and timeouts skip rows another
//! instance holds locked.

use herald_core::TenantId;

use super::cursors::apply_cursor_move;
use super::{PgStore, clean, map_rows, pg_err};
use crate::query::numbered;
use crate::records::*;
use crate::rows::RowAccess;
use crate::store::waits::sql::{self, ListArgs, NewValues, Resolve, event_before_row, wait_row};

impl PgStore {
    pub(crate) async fn insert_wait(&self, v: NewValues) -> Result<Wait, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&self.locks.commit])
            .await
            .map_err(pg_err)?;
        let seq: i64 = tx
            .query_one(sql::LATEST_SEQ, &[])
            .await
            .map_err(pg_err)?
            .get(0);
        tx.execute(
            &numbered(sql::INSERT),
            &[
                &clean(&v.id),
                &v.tenant,
                &clean(&v.workflow),
                &clean(&v.event_types),
                &clean(&v.spec),
                &v.created,
                &v.timeout,
                &v.callback_url.as_deref().map(clean),
                &v.secret,
                &seq,
            ],
        )
        .await
        .map_err(pg_err)?;
        let rows = tx
            .query(&numbered(&sql::get()), &[&v.tenant, &clean(&v.id)])
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        map_rows(&rows, |r| wait_row(r))?
            .pop()
            .ok_or_else(|| StoreError::corrupt("a wait just stored is missing"))
    }

    pub async fn get_wait(
        &self,
        tenant: &TenantId,
        wait_id: &str,
    ) -> Result<Option<Wait>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(&numbered(&sql::get()), &[&tenant.as_str(), &clean(wait_id)])
            .await
            .map_err(pg_err)?;
        Ok(map_rows(&rows, |r| wait_row(r))?.pop())
    }

    pub(crate) async fn list_waits(&self, a: ListArgs) -> Result<Vec<Wait>, StoreError> {
        let c = self.conn().await?;
        let (workflow, event_type, after) = (
            a.workflow.as_deref().map(clean),
            a.event_type.as_deref().map(clean),
            a.after.as_deref().map(clean),
        );
        let rows = c
            .query(
                &numbered(&sql::list()),
                &[
                    &a.tenant,
                    &a.status,
                    &a.status,
                    &workflow,
                    &workflow,
                    &event_type,
                    &event_type,
                    &after,
                    &after,
                    &a.limit,
                ],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| wait_row(r))
    }

    pub async fn open_waits(&self, from: i64, before: i64) -> Result<Vec<Wait>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(&numbered(&sql::open()), &[&from, &before])
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| wait_row(r))
    }

    pub async fn open_wait_ids(&self, before: i64) -> Result<Vec<String>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(&numbered(sql::OPEN_IDS), &[&before])
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| r.text(0))
    }

    pub(crate) async fn resolve_waits(
        &self,
        cursor: Option<CursorMove>,
        rows: Vec<Resolve>,
    ) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let pg_tx: &tokio_postgres::Transaction<'_> = &tx;
        if let Some(m) = &cursor {
            apply_cursor_move(pg_tx, m).await?;
        }
        let stmt = tx
            .prepare(&numbered(&sql::resolve()))
            .await
            .map_err(pg_err)?;
        let mut resolved = Vec::new();
        for r in rows {
            let n = tx
                .execute(
                    &stmt,
                    &[&r.event_id, &clean(&r.event), &r.at, &r.at, &clean(&r.id)],
                )
                .await
                .map_err(pg_err)?;
            if n == 1 {
                resolved.push(r.id);
            }
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(resolved)
    }

    pub(crate) async fn cancel_wait(
        &self,
        tenant: String,
        id: String,
        now: i64,
    ) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                &numbered(&sql::cancel()),
                &[&now, &now, &tenant, &clean(&id)],
            )
            .await
            .map_err(pg_err)?;
        Ok(n == 1)
    }

    pub(crate) async fn cancel_workflow_waits(
        &self,
        tenant: String,
        workflow: String,
        now: i64,
    ) -> Result<usize, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                &numbered(&sql::cancel_workflow()),
                &[&now, &now, &tenant, &clean(&workflow)],
            )
            .await
            .map_err(pg_err)?;
        Ok(n as usize)
    }

    pub(crate) async fn time_out_waits(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::time_out("FOR UPDATE SKIP LOCKED")),
                &[&now, &now, &now, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| r.text(0))
    }

    pub(crate) async fn claim_wait_callbacks(
        &self,
        now: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Wait>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::claim("FOR UPDATE SKIP LOCKED")),
                &[&until, &now, &now, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| wait_row(r))
    }

    pub(crate) async fn finish_wait_callback(&self, f: sql::Finish) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                &numbered(sql::FINISH),
                &[
                    &f.state,
                    &f.next_at,
                    &f.status,
                    &f.error.as_deref().map(clean),
                    &clean(&f.id),
                    &f.token,
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(n == 1)
    }

    pub(crate) async fn events_before(
        &self,
        below: i64,
        limit: usize,
    ) -> Result<Vec<(SequencedEvent, i64)>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::events_before("body::text")),
                &[&below, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| event_before_row(r))
    }
}
