//! The commit log and named durable cursors over it: a follower (the
//! publisher, and later delivery, rollups) reads `events_after` its cursor
//! and moves the cursor by compare-and-set, so two followers sharing a name
//! can never both move it. A backend applies a [`CursorMove`] inside a
//! transaction with one internal function (`apply_cursor_move`), so a
//! store method writing a follower's effects can commit its move with them.

use crate::{CursorMove, SequencedEvent, Store, StoreError};

impl Store {
    /// Up to `limit` stored events with `seq > after`, in commit order.
    pub async fn events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        each!(self, s => s.events_after(after, limit).await)
    }

    /// Where the cursor named `name` is: the last `seq` its follower is
    /// done with (0 at first).
    pub async fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        each!(self, s => s.cursor(name).await)
    }

    /// Moves the cursor from `from` to `to` if it is still at `from`:
    /// `Conflict(CursorMoved)` when another follower moved it first,
    /// `Invalid` when `to < from`.
    pub async fn advance_cursor(&self, name: &str, from: i64, to: i64) -> Result<(), StoreError> {
        let m = CursorMove {
            name: name.to_string(),
            from,
            to,
        };
        each!(self, s => s.advance_cursor(m).await)
    }
}

/// The statements of a cursor move, `?` placeholders, for both backends.
/// A move is: `MOVE` (name, from, to); if nothing moved and `from` is 0,
/// `START` (name, to), as the cursor may never have moved; if still
/// nothing moved, the cursor is elsewhere: read it with `AT` (name) for the
/// conflict. The table is `publish_cursors` for its history: it holds
/// every named cursor.
pub(crate) mod sql {
    pub(crate) const AT: &str = "SELECT seq FROM publish_cursors WHERE name = ?";
    pub(crate) const MOVE: &str = "UPDATE publish_cursors SET seq = ? WHERE name = ? AND seq = ?";
    pub(crate) const START: &str =
        "INSERT INTO publish_cursors (name, seq) VALUES (?, ?) ON CONFLICT (name) DO NOTHING";
}
