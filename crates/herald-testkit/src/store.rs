//! A fresh store on one backend for one test, for the tests below the
//! server (herald-store's conformance suites, herald-workers' followers):
//! SQLite in a temp dir, PostgreSQL in the test's own schema. Pair it with
//! `on_each_backend!(open = open_store; …)`.

use herald_store::{Store, postgres, sqlite};

use crate::services::{Backend, PgSchema};

/// A store opened for one test, with what keeps it alive (its data dir, or
/// its PostgreSQL schema, dropped with it).
#[derive(Debug)]
pub struct StoreUnderTest {
    /// `sqlite` or `postgres`, for assertion messages.
    pub name: &'static str,
    pub store: Store,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl StoreUnderTest {
    /// The SQLite store's data dir (`None` on PostgreSQL), for tests that
    /// reach into the database file itself.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }
}

/// The options of a store in `schema` (a small pool: tests run in parallel).
pub fn pg_options(schema: &PgSchema) -> postgres::PgOptions {
    postgres::PgOptions {
        schema: schema.name.clone(),
        pool_size: 4,
        ..postgres::PgOptions::new(&schema.url)
    }
}

/// Opens a fresh store on `backend`.
pub async fn open_store(backend: Backend) -> StoreUnderTest {
    match &backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Store::open_sqlite(dir.path(), sqlite::SqliteOptions::default())
                .expect("open sqlite");
            StoreUnderTest {
                name: "sqlite",
                store,
                backend,
                _dir: Some(dir),
            }
        }
        Backend::Postgres(schema) => {
            let store = Store::open_postgres(pg_options(schema), time::OffsetDateTime::now_utc())
                .await
                .unwrap_or_else(|e| {
                    panic!("HERALD_TEST_DATABASE_URL is set but PostgreSQL failed: {e}")
                });
            StoreUnderTest {
                name: "postgres",
                store,
                backend,
                _dir: None,
            }
        }
    }
}
