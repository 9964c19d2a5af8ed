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
