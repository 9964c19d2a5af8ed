//! Herald's store contract: one [`Store`] type that every other crate
//! talks to, over interchangeable backends: the embedded SQLite backend and
//! PostgreSQL for scale-out. Both pass the same conformance suite
//! (`tests/conformance.rs`). No backend type leaks through this interface.
//!
//! The contract is written once, one file per concern under `store/`; each
//! backend is split the same way and holds only what differs between them
//! (SQL and how it is run). Row mapping (`rows.rs`), query building
//! (`query.rs`) and the group-commit policy (`group_commit.rs`) are shared.
//! The store never reads the clock: callers pass `now`.

mod error;
mod group_commit;
pub mod postgres;
mod query;
mod records;
mod rows;
pub mod sqlite;

/// Calls the same method on whichever backend this is.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

mod store;

use std::sync::Arc;

pub use group_commit::{CommitObserver, CommitReport};
pub use records::*;
pub use store::PublisherLease;
pub use store::backlog::Backlog;
pub use store::processors::DeadJobFilter;
pub use store::stats::{
    Cover, Dims, Level, Measures, ROLLUP_CURSOR, SeriesRow, Tallies, cover, micros, rollups_answer,
};
pub use store::streams::{
    Direction, FoldEvent, FoldRules, Projection, ProjectionAt, Snapshot, StreamInfo, StreamPage,
    StreamRead,
};

/// The one handle on Herald's storage.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(Arc<sqlite::SqliteStore>),
    Postgres(Arc<postgres::PgStore>),
}

impl Store {
    /// Opens (creating if needed) the embedded store in `dir`.
    pub fn open_sqlite(
        dir: &std::path::Path,
        options: sqlite::SqliteOptions,
    ) -> Result<Store, StoreError> {
        Ok(Store::Sqlite(Arc::new(sqlite::SqliteStore::open(
            dir, options,
        )?)))
    }

    /// Connects to PostgreSQL, creating the schema and applying migrations
    /// (under an advisory lock, so instances starting together do not
    /// race), and the events partitions from `now`'s month on.
    pub async fn open_postgres(
        options: postgres::PgOptions,
        now: time::OffsetDateTime,
    ) -> Result<Store, StoreError> {
        Ok(Store::Postgres(Arc::new(
            postgres::PgStore::open(options, now).await?,
        )))
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether several Herald instances may share this store (and so must
    /// share generated secrets and see each other's changes).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Commits what is queued and stops the writer.
    pub async fn close(&self) {
        each!(self, s => s.close().await)
    }
}
