//! Named durable cursors over the commit order on the embedded store
//! (kept in the `publish_cursors` table, whose name predates other
//! followers).

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::records::*;

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
    Ok(
        c.prepare_cached("SELECT seq FROM publish_cursors WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?
            .unwrap_or(0),
    )
}

/// Applies `m` inside the caller's transaction, so a follower's effects
/// and its cursor move commit together: `Conflict(CursorMoved)` when the
/// cursor is no longer at `m.from`.
pub(crate) fn apply_cursor_move(c: &Connection, m: &CursorMove) -> Result<(), StoreError> {
    let mut moved = c
        .prepare_cached("UPDATE publish_cursors SET seq = ?3 WHERE name = ?1 AND seq = ?2")?
        .execute(params![m.name, m.from, m.to])?;
    if moved == 0 && m.from == 0 {
        moved = c
            .prepare_cached(
                "INSERT INTO publish_cursors (name, seq) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            )?
            .execute(params![m.name, m.to])?;
    }
    if moved == 0 {
        return Err(m.moved(cursor_at(c, &m.name)?));
    }
    Ok(())
}
