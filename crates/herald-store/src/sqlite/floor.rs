//! The storage floor for `herald-bench` (feature `bench`): Herald's schema
//! and row insert, one transaction per batch, nothing else (no HTTP, no
//! decoding, no queue).

use std::path::Path;

use herald_core::CanonicalEvent;
use rusqlite::Connection;

use crate::records::StoreError;

/// Creates a database at `path` with Herald's schema.
pub fn open(path: &Path, synchronous_full: bool) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    super::tune_writer(&conn, synchronous_full)?;
    super::migrations::migrate(&mut conn)?;
    Ok(conn)
}

/// Inserts one batch in one transaction.
pub fn insert_batch(conn: &mut Connection, events: &[CanonicalEvent]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for e in events {
        super::writer::insert_row(&tx, e)?;
    }
    tx.commit()?;
    Ok(())
}
