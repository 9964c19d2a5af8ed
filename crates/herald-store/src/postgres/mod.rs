//! The scale-out backend: PostgreSQL, shared by any number of Herald
//! instances.
//!
//! - **Writes** of events and audit records go through one group-commit
//!   writer per instance (`writer.rs`, driving `crate::group_commit`):
//!   concurrent requests become one transaction of array-bound (`UNNEST`)
//!   statements, answered only after `COMMIT`. Other writes are single
//!   transactions on a pooled connection.
//! - **Commit order**: each group commit holds a transaction-level advisory
//!   lock from its first statement to its commit, so across all instances
//!   a later commit never has a smaller `seq`. Cursors over `seq` rely on
//!   that; so do idempotency keys and stream versions, which are decided
//!   inside the lock.
//! - **Reads** use a connection pool; queries are built with the shared
//!   builder (`query.rs`) in the PostgreSQL dialect.
//! - **Work claims** (`processing.rs`) use `FOR UPDATE SKIP LOCKED` and a
//!   lease, so several instances never process one event twice and a dead
//!   instance's claims come back; a finish must carry the newest claim's
//!   token, so a claimer that outlived its lease records nothing.
//! - Everything lives in one schema (`PgOptions::schema`), so one database
//!   can hold several independent Herald deployments (and tests run side by
//!   side); advisory lock keys are derived from the schema name.

mod audit;
mod columns;
mod cursors;
mod dead_letters;
mod definitions;
mod deliveries;
mod events;
#[cfg(any(test, feature = "bench"))]
pub mod floor;
mod lifecycle;
mod processing;
mod replays;
mod schema;
mod settings;
mod shared;
mod streams;
mod subscriptions;
mod tenants;
mod waits;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use herald_core::EventId;
use tokio::sync::mpsc;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

use crate::group_commit::{self, NoOther, WriterHandle};
use crate::query;
use crate::records::*;
use crate::rows::RowAccess;

pub use shared::Lease;

/// How to reach PostgreSQL and how to use it.
#[derive(Clone)]
pub struct PgOptions {
    /// `postgres://user@host:port/db` (any libpq-style URL tokio-postgres reads).
    pub url: String,
    /// The schema Herald keeps its tables in; created if missing.
    pub schema: String,
    /// Read connections, at most (the writer and the publisher lease have
    /// their own).
    pub pool_size: usize,
    /// Most events one group commit gathers.
    pub max_batch_events: usize,
    /// How long a claimed event stays claimed before another instance may
    /// take it back (its claimer presumably died).
    pub claim_lease: Duration,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PgOptions")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl PgOptions {
    pub fn new(url: impl Into<String>) -> PgOptions {
        PgOptions {
            url: url.into(),
            schema: "herald".into(),
            pool_size: 16,
            max_batch_events: 20_000,
            claim_lease: Duration::from_secs(60),
        }
    }
}

/// Whether `name` may be used as Herald's schema: a plain lower-case SQL
/// identifier, so it never needs quoting rules beyond double quotes.
pub fn valid_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

pub(crate) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    StoreError::unavailable("postgres", e)
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::unavailable("postgres pool", e)
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::UNIQUE_VIOLATION || *c == SqlState::FOREIGN_KEY_VIOLATION)
}

/// PostgreSQL text cannot hold NUL; indexed copies of values replace it
/// (the stored JSON body keeps the exact value, escaped).
pub(crate) fn clean(s: &str) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s.to_string()
    }
}

/// Advisory lock keys, per schema so deployments sharing a database never
/// contend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LockKeys {
    pub migrate: i64,
    pub commit: i64,
    pub publisher: i64,
}

impl LockKeys {
    fn for_schema(schema: &str) -> LockKeys {
        // FNV-1a: stable across builds and platforms, unlike `DefaultHasher`.
        let key = |purpose: &str| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in format!("herald:{schema}:{purpose}").bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h as i64
        };
        LockKeys {
            migrate: key("migrate"),
            commit: key("commit"),
            publisher: key("publisher"),
        }
    }
}

pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    schema: String,
    locks: LockKeys,
    claim_lease: Duration,
    writer: WriterHandle<NoOther>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// A dedicated connection (not pooled): its session is what holds a
/// session-level advisory lock.
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
) -> Result<tokio_postgres::Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(pg_err)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

/// The connection settings for Herald's schema in `url`.
fn config_for(url: &str, schema: &str) -> Result<tokio_postgres::Config, StoreError> {
    if !valid_schema_name(schema) {
        return Err(StoreError::invalid(format!(
            "database schema name `{schema}`: use lower-case letters, digits and `_`, starting with a letter or `_`"
        )));
    }
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| StoreError::invalid_because("database URL", e))?;
    config.options(format!("-c search_path={schema}"));
    Ok(config)
}

impl PgStore {
    /// Connects, creating the schema, applying migrations and creating the
    /// partitions from `now`'s month on.
    pub async fn open(
        options: PgOptions,
        now: time::OffsetDateTime,
    ) -> Result<PgStore, StoreError> {
        let mut config = config_for(&options.url, &options.schema)?;
        // An `application_name` in the URL wins, so an operator can tell
        // instances apart in `pg_stat_activity` (and the scale-out test can
        // tell which instance processed an event).
        if config.get_application_name().is_none() {
            config.application_name("herald");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let locks = LockKeys::for_schema(&options.schema);
        let mut client = connect(&config).await?;
        schema::migrate(&mut client, &options.schema, locks.migrate, now).await?;
        drop(client);

        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::invalid_because("postgres pool", e))?;

        let (tx, rx) = mpsc::unbounded_channel();
        let writer = WriterHandle::new(tx);
        tokio::spawn(group_commit::run(
            writer::PgCommitter::new(config.clone(), locks.commit),
            rx,
            options.max_batch_events.max(1),
            writer.observer_slot(),
        ));
        Ok(PgStore {
            pool,
            config,
            schema: options.schema,
            locks,
            claim_lease: options.claim_lease,
            writer,
        })
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        self.writer.append(events).await
    }

    /// Runs a shared statement and maps every row.
    pub(crate) async fn select<T: Send + 'static>(
        &self,
        mut stmt: query::Stmt,
        map: query::MapRow<T>,
    ) -> Result<Vec<T>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query_typed(&query::numbered(&stmt.text), &typed(&mut stmt.args))
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| map(r))
    }

    /// The same as [`Self::select`]: PostgreSQL has no single writer.
    pub(crate) async fn write_select<T: Send + 'static>(
        &self,
        stmt: query::Stmt,
        map: query::MapRow<T>,
    ) -> Result<Vec<T>, StoreError> {
        self.select(stmt, map).await
    }

    /// Runs shared guarded statements in one transaction; which of them ran.
    pub(crate) async fn transact(
        &self,
        script: Vec<query::Guarded>,
    ) -> Result<Vec<bool>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let mut ran = Vec::with_capacity(script.len());
        for step in script {
            if let Some(mut guard) = step.guard {
                let rows = tx
                    .query_typed(&query::numbered(&guard.text), &typed(&mut guard.args))
                    .await
                    .map_err(pg_err)?;
                if rows.is_empty() {
                    ran.push(false);
                    continue;
                }
            }
            for mut then in step.then {
                tx.query_typed(&query::numbered(&then.text), &typed(&mut then.args))
                    .await
                    .map_err(pg_err)?;
            }
            ran.push(true);
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(ran)
    }

    pub fn record_audit(&self, record: AuditRecord) {
        self.writer.record_audit(record)
    }

    pub(crate) fn observe_commits(
        &self,
        observer: std::sync::Arc<dyn group_commit::CommitObserver>,
    ) -> bool {
        self.writer.observe(observer)
    }

    pub async fn close(&self) {
        self.writer.shutdown().await;
        self.pool.close();
    }
}

/// Runs a shared statement inside a transaction.
pub(crate) async fn run_stmt(
    tx: &deadpool_postgres::Transaction<'_>,
    mut stmt: query::Stmt,
) -> Result<(), StoreError> {
    tx.query_typed(&query::numbered(&stmt.text), &typed(&mut stmt.args))
        .await
        .map_err(pg_err)?;
    Ok(())
}

/// A PostgreSQL row read through the shared mappers.
pub(crate) struct PgRow<'a>(pub &'a tokio_postgres::Row);

impl PgRow<'_> {
    fn get<'a, T: tokio_postgres::types::FromSql<'a>>(&'a self, i: usize) -> Result<T, StoreError> {
        self.0.try_get(i).map_err(|e| StoreError::Corrupt {
            context: format!("column {i}").into(),
            source: Some(e.into()),
        })
    }
}

impl RowAccess for PgRow<'_> {
    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        self.get(i)
    }
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::corrupt(format!("column {i} is null")))
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match *self.0.columns()[i].type_() {
            Type::INT2 => Ok(self.get::<Option<i16>>(i)?.map(i64::from)),
            Type::INT4 => Ok(self.get::<Option<i32>>(i)?.map(i64::from)),
            _ => self.get(i),
        }
    }
    fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError> {
        self.get(i)
    }
    fn event_id(&self, i: usize) -> Result<EventId, StoreError> {
        crate::rows::corrupt(EventId::try_from(self.get::<uuid::Uuid>(i)?))
    }
    fn opt_event_id(&self, i: usize) -> Result<Option<EventId>, StoreError> {
        self.get::<Option<uuid::Uuid>>(i)?
            .map(|u| crate::rows::corrupt(EventId::try_from(u)))
            .transpose()
    }
}

/// A NULL bound as text.
static NULL_TEXT: Option<&str> = None;

/// Maps every row.
fn map_rows<T>(
    rows: &[tokio_postgres::Row],
    map: impl Fn(&PgRow<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    rows.iter().map(|r| map(&PgRow(r))).collect()
}

/// Query arguments with their types, for `query_typed` (one round trip, no
/// prepared statement to cache for a query shape that may never repeat).
/// Text is cleaned the way stored values were (see [`clean`]), so a value
/// with NUL still finds its row.
fn typed(args: &mut [query::Arg]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    for a in args.iter_mut() {
        if let query::Arg::Text(t) = a
            && t.contains('\0')
        {
            *t = clean(t);
        }
    }
    args.iter()
        .map(|a| match a {
            query::Arg::Text(t) => (t as &(dyn ToSql + Sync), Type::TEXT),
            query::Arg::Int(i) => (i as &(dyn ToSql + Sync), Type::INT8),
            query::Arg::EventId(id) => (id.as_uuid() as &(dyn ToSql + Sync), Type::UUID),
            query::Arg::Float(f) => (f as &(dyn ToSql + Sync), Type::FLOAT8),
            query::Arg::Null => (&NULL_TEXT as &(dyn ToSql + Sync), Type::TEXT),
        })
        .collect()
}
