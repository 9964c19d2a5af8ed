//! Workflow waits on the embedded store: every write goes through the one
//! writer, so a new wait's `created_seq` is read in commit order and a
//! resolution commits with its cursor move.

use herald_core::TenantId;
use rusqlite::params;

use super::cursors::apply_cursor_move;
use super::{SqliteStore, map_row, map_rows};
use crate::records::*;
use crate::rows::RowAccess;
use crate::store::waits::sql::{self, ListArgs, NewValues, Resolve, event_before_row, wait_row};

impl SqliteStore {
    pub(crate) async fn insert_wait(&self, v: NewValues) -> Result<Wait, StoreError> {
        self.write(move |c| {
            let seq: i64 = c
                .prepare_cached(sql::LATEST_SEQ)?
                .query_row([], |r| r.get(0))?;
            c.prepare_cached(sql::INSERT)?.execute(params![
                v.id,
                v.tenant,
                v.workflow,
                v.event_types,
                v.spec,
                v.created,
                v.timeout,
                v.callback_url,
                v.secret,
                seq,
            ])?;
            map_row(
                &mut c.prepare_cached(&sql::get())?,
                params![v.tenant, v.id],
                |r| wait_row(r),
            )?
            .ok_or_else(|| StoreError::corrupt("a wait just stored is missing"))
        })
        .await
    }

    pub async fn get_wait(
        &self,
        tenant: &TenantId,
        wait_id: &str,
    ) -> Result<Option<Wait>, StoreError> {
        let (tenant, id) = (tenant.to_string(), wait_id.to_string());
        self.read(move |c| {
            map_row(
                &mut c.prepare_cached(&sql::get())?,
                params![tenant, id],
                |r| wait_row(r),
            )
        })
        .await
    }

    pub(crate) async fn list_waits(&self, a: ListArgs) -> Result<Vec<Wait>, StoreError> {
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::list())?,
                params![
                    a.tenant,
                    a.status,
                    a.status,
                    a.workflow,
                    a.workflow,
                    a.event_type,
                    a.event_type,
                    a.after,
                    a.after,
                    a.limit
                ],
                |r| wait_row(r),
            )
        })
        .await
    }

    pub async fn open_waits(&self, from: i64, before: i64) -> Result<Vec<Wait>, StoreError> {
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::open())?,
                params![from, before],
                |r| wait_row(r),
            )
        })
        .await
    }

    pub async fn open_wait_ids(&self, before: i64) -> Result<Vec<String>, StoreError> {
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(sql::OPEN_IDS)?,
                params![before],
                |r| r.text(0),
            )
        })
        .await
    }

    pub(crate) async fn resolve_waits(
        &self,
        cursor: Option<CursorMove>,
        rows: Vec<Resolve>,
    ) -> Result<Vec<String>, StoreError> {
        self.write(move |c| {
            if let Some(m) = &cursor {
                apply_cursor_move(c, m)?;
            }
            let mut stmt = c.prepare_cached(&sql::resolve())?;
            let mut resolved = Vec::new();
            for r in rows {
                if stmt.execute(params![r.event_id, r.event, r.at, r.at, r.id])? == 1 {
                    resolved.push(r.id);
                }
            }
            Ok(resolved)
        })
        .await
    }

    pub(crate) async fn cancel_wait(
        &self,
        tenant: String,
        id: String,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            Ok(c.prepare_cached(&sql::cancel())?
                .execute(params![now, now, tenant, id])?
                == 1)
        })
        .await
    }

    pub(crate) async fn cancel_workflow_waits(
        &self,
        tenant: String,
        workflow: String,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write(move |c| {
            Ok(c.prepare_cached(&sql::cancel_workflow())?
                .execute(params![now, now, tenant, workflow])?)
        })
        .await
    }

    pub(crate) async fn time_out_waits(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.write(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::time_out(""))?,
                params![now, now, now, limit as i64],
                |r| r.text(0),
            )
        })
        .await
    }

    pub(crate) async fn claim_wait_callbacks(
        &self,
        now: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Wait>, StoreError> {
        self.write(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::claim(""))?,
                params![until, now, now, limit as i64],
                |r| wait_row(r),
            )
        })
        .await
    }

    pub(crate) async fn finish_wait_callback(&self, f: sql::Finish) -> Result<bool, StoreError> {
        self.write(move |c| {
            Ok(c.prepare_cached(sql::FINISH)?.execute(params![
                f.state, f.next_at, f.status, f.error, f.id, f.token
            ])? == 1)
        })
        .await
    }

    pub(crate) async fn events_before(
        &self,
        below: i64,
        limit: usize,
    ) -> Result<Vec<(SequencedEvent, i64)>, StoreError> {
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::events_before("body"))?,
                params![below, limit as i64],
                |r| event_before_row(r),
            )
        })
        .await
    }
}
