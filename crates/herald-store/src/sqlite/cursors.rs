//! Named durable cursors over the commit order on the embedded store
//! (kept in the `publish_cursors` table, whose name predates other
//! followers).

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::records::*;
use crate::store::cursors::sql;

impl SqliteStore {
    pub async fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        let name = name.to_string();
        self.read(move |c| cursor_at(c, &name)).await
    }

    pub async fn advance_cursor(&self, to: CursorMove) -> Result<(), StoreError> {
        to.check()?;
        self.write(move |c| apply_cursor_move(c, &to)).await
    }
}

fn cursor_at(c: &Connection, name: &str) -> Result<i64, StoreError> {
    Ok(c.prepare_cached(sql::AT)?
        .query_row([name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Applies `m` inside the caller's transaction, so a follower's effects
/// and its cursor move commit together: `Conflict(CursorMoved)` when the
/// cursor is no longer at `m.from`.
pub(crate) fn apply_cursor_move(c: &Connection, m: &CursorMove) -> Result<(), StoreError> {
    let mut moved = c
        .prepare_cached(sql::MOVE)?
        .execute(params![m.to, m.name, m.from])?;
    if moved == 0 && m.from == 0 {
        moved = c
            .prepare_cached(sql::START)?
            .execute(params![m.name, m.to])?;
    }
    if moved == 0 {
        return Err(m.moved(cursor_at(c, &m.name)?));
    }
    Ok(())
}
