//! The scale-out backend: PostgreSQL, shared by any number of Herald
//! instances (DESIGN.md §9).
//!
//! - **Writes** go through one group-commit writer per instance
//!   (`writer.rs`): concurrent requests become one transaction of
//!   array-bound (`UNNEST`) statements, answered only after `COMMIT`.
//! - **Commit order**: each group commit holds a transaction-level advisory
//!   lock from its first statement to its commit, so across all instances
//!   a later commit never has a smaller `seq`. The publisher's cursor over
//!   `seq` relies on that; so do idempotency keys and stream versions,
//!   which are decided inside the lock.
//! - **Reads** use a connection pool; queries are built with the SQLite
//!   backend's builder (`query.rs`) in the PostgreSQL dialect.
//! - **Work claims** (`claim_pending`) use `FOR UPDATE SKIP LOCKED` and a
//!   lease, so several instances never process one event twice and a dead
//!   instance's claims come back; a finish must carry the newest claim's
//!   token, so a claimer that outlived its lease records nothing.
//! - Everything lives in one schema (`PgOptions::schema`), so one database
//!   can hold several independent Herald deployments (and tests run side by
//!   side); advisory lock keys are derived from the schema name.

mod schema;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use herald_core::{CanonicalEvent, EventId, EventStatus, TenantId, Timestamp};
use herald_registry::EventDefinition;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

use crate::query;
use crate::records::*;
use crate::rows::*;

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
    StoreError::Unavailable(match e.as_db_error() {
        Some(db) => format!("postgres: {}: {}", db.code().code(), db.message()),
        None => format!("postgres: {e}"),
    })
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Unavailable(format!("postgres pool: {e}"))
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
    writer: mpsc::UnboundedSender<writer::WriteOp>,
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

impl PgStore {
    pub async fn open(options: PgOptions) -> Result<PgStore, StoreError> {
        if !valid_schema_name(&options.schema) {
            return Err(StoreError::Unavailable(format!(
                "database schema name `{}`: use lower-case letters, digits and `_`, starting with a letter or `_`",
                options.schema
            )));
        }
        let mut config = tokio_postgres::Config::from_str(&options.url)
            .map_err(|e| StoreError::Unavailable(format!("database URL: {e}")))?;
        config.options(format!("-c search_path={}", options.schema));
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
        schema::migrate(&mut client, &options.schema, locks.migrate).await?;
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
            .map_err(|e| StoreError::Unavailable(format!("postgres pool: {e}")))?;

        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer::run(
            config.clone(),
            locks.commit,
            rx,
            options.max_batch_events.max(1),
        ));
        Ok(PgStore {
            pool,
            config,
            schema: options.schema,
            locks,
            claim_lease: options.claim_lease,
            writer: tx,
        })
    }

    async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_err)
    }

    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(writer::WriteOp::Append { events, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub fn record_audit(&self, record: AuditRecord) {
        if self.writer.send(writer::WriteOp::Audit(record)).is_err() {
            tracing::warn!("audit record dropped: store is closed");
        }
    }

    pub async fn get_event(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT body::text, status, processed_at, processing_ms FROM events \
                 WHERE event_id = $1 AND tenant_id = $2",
            )
            .await
            .map_err(pg_err)?;
        let row = c
            .query_opt(&stmt, &[id.as_uuid(), &tenant.as_str()])
            .await
            .map_err(pg_err)?;
        row.map(|r| stored_event(r.get(0), r.get(1), r.get(2), r.get(3)))
            .transpose()
    }

    async fn run_query<T>(
        &self,
        tenant: &TenantId,
        q: &EventQuery,
        row_to: impl Fn(&tokio_postgres::Row) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let mut sql = query::build(query::Dialect::Postgres, tenant.as_str(), q);
        let c = self.conn().await?;
        let counted: i64 = c
            .query_typed(&sql.count_sql, &typed(&mut sql.count_args))
            .await
            .map_err(pg_err)?
            .first()
            .map(|r| r.get(0))
            .unwrap_or(0);
        let rows = c
            .query_typed(&sql.page_sql, &typed(&mut sql.page_args))
            .await
            .map_err(pg_err)?;
        let has_more = rows.len() > sql.limit;
        let mut events = Vec::with_capacity(rows.len().min(sql.limit));
        let mut last = None;
        for row in rows.iter().take(sql.limit) {
            events.push(row_to(row)?);
            last = Some(Cursor {
                ts_micros: row.get(4),
                seq: row.get(5),
            });
        }
        Ok(Page::assemble(
            events,
            counted as u64,
            q.exact_total,
            has_more,
            last,
        ))
    }

    pub async fn query_events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError> {
        self.run_query(tenant, query, |r| {
            stored_event(r.get(0), r.get(1), r.get(2), r.get(3))
        })
        .await
    }

    pub async fn query_events_json(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<Page<EventJson>, StoreError> {
        self.run_query(tenant, query, |r| {
            Ok(EventJson {
                body: r.get(0),
                status: status(r.get(1))?,
                processed_at: r.get(2),
                processing_ms: r.get(3),
                user_id: r.get(6),
            })
        })
        .await
    }

    pub async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "INSERT INTO tenants (tenant_id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[
                    &tenant.tenant_id.as_str(),
                    &clean(&tenant.name),
                    &tenant.created_at.to_string(),
                ],
            )
            .await
            .map_err(pg_err)?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "tenant {} already exists",
                tenant.tenant_id
            )));
        }
        Ok(())
    }

    pub async fn get_tenant(&self, tenant: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT tenant_id, name, created_at FROM tenants WHERE tenant_id = $1",
                &[&tenant.as_str()],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| {
            Ok(Tenant {
                tenant_id: corrupt(TenantId::parse(r.get::<_, String>(0)))?,
                name: r.get(1),
                created_at: corrupt(Timestamp::parse(r.get(2)))?,
            })
        })
        .transpose()
    }

    pub async fn insert_key(&self, key: ApiKey) -> Result<(), StoreError> {
        let c = self.conn().await?;
        let scopes = key
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        c.execute(
            "INSERT INTO api_keys (key_id, tenant_id, name, scopes, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&key.key_id, &key.tenant_id.as_str(), &clean(&key.name), &scopes, &key.secret_hash.as_slice(), &key.created_at.to_string()],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("key for tenant {} not inserted: {e}", key.tenant_id))
            } else {
                pg_err(e)
            }
        })?;
        Ok(())
    }

    pub async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT key_id, tenant_id, name, scopes, created_at FROM api_keys \
                 WHERE secret_hash = $1 AND revoked_at IS NULL",
            )
            .await
            .map_err(pg_err)?;
        let row = c
            .query_opt(&stmt, &[&hash.as_slice()])
            .await
            .map_err(pg_err)?;
        row.map(|r| {
            Ok(ApiKey {
                key_id: r.get(0),
                tenant_id: corrupt(TenantId::parse(r.get::<_, String>(1)))?,
                name: r.get(2),
                scopes: r
                    .get::<_, &str>(3)
                    .split(',')
                    .filter_map(Scope::parse)
                    .collect(),
                secret_hash: hash,
                created_at: corrupt(Timestamp::parse(r.get(4)))?,
            })
        })
        .transpose()
    }

    pub async fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND key_id = $2 AND revoked_at IS NULL",
                &[&tenant.as_str(), &clean(key_id), &Timestamp::now().to_string()],
            )
            .await
            .map_err(pg_err)?;
        Ok(n > 0)
    }

    pub async fn query_audit(&self, q: &AuditQuery) -> Result<AuditPage, StoreError> {
        let (sql, mut args, limit) = query::audit(q);
        let c = self.conn().await?;
        let rows = c
            .query_typed(&query::numbered(&sql), &typed(&mut args))
            .await
            .map_err(pg_err)?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok((
                    r.get::<_, i64>(0),
                    AuditRecord {
                        at: corrupt(Timestamp::parse(r.get(1)))?,
                        tenant_id: r.get(2),
                        key_id: r.get(3),
                        operation: r.get(4),
                        resource: r.get(5),
                        outcome: r.get(6),
                        status_code: r.get::<_, i32>(7) as u16,
                        request_id: r.get(8),
                        duration_us: r.get::<_, i64>(9) as u64,
                        detail: r.get(10),
                    },
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(AuditPage::assemble(rows, limit))
    }

    /// Claims with `FOR UPDATE SKIP LOCKED`: instances claiming at once get
    /// disjoint events. A claim older than the lease is taken back; the
    /// incremented `attempts` is the claim's token.
    pub async fn claim_pending(&self, limit: usize) -> Result<Vec<ClaimedEvent>, StoreError> {
        let c = self.conn().await?;
        let now = Timestamp::now().unix_micros();
        let until = now + self.claim_lease.as_micros() as i64;
        let stmt = c
            .prepare_cached(
                "UPDATE events e SET status = 'processing', attempts = e.attempts + 1, claimed_until = $2 \
                 FROM (SELECT seq, ts FROM events \
                       WHERE status IN ('pending', 'processing') \
                         AND (status = 'pending' OR claimed_until < $3) \
                       ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) c \
                 WHERE e.seq = c.seq AND e.ts = c.ts RETURNING e.body::text, e.attempts",
            )
            .await
            .map_err(pg_err)?;
        let rows = c
            .query(&stmt, &[&(limit as i64), &until, &now])
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                let mut event = decode_body(r.get(0))?;
                event.status = EventStatus::Processing;
                Ok(ClaimedEvent {
                    event,
                    claim: ClaimToken::new(i64::from(r.get::<_, i32>(1))),
                })
            })
            .collect()
    }

    /// Finishes only rows still claimed with the result's token (the row
    /// lock makes a concurrent re-claim wait, then re-check it), and queues
    /// lifecycle rows for exactly the rows `RETURNING` names.
    pub async fn finish_processing(
        &self,
        results: Vec<ProcessingResult>,
        lifecycle: bool,
    ) -> Result<Vec<EventId>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let ids: Vec<uuid::Uuid> = results.iter().map(|r| *r.event_id.as_uuid()).collect();
        let claims: Vec<i64> = results.iter().map(|r| r.claim.get()).collect();
        let statuses: Vec<&str> = results.iter().map(|r| r.status.as_str()).collect();
        let at: Vec<String> = results.iter().map(|r| r.finished_at.to_string()).collect();
        let ms: Vec<f64> = results.iter().map(|r| r.duration_ms).collect();
        let rows = tx
            .query(
                "UPDATE events e SET status = u.status, processed_at = u.at, processing_ms = u.ms, claimed_until = NULL \
                 FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::float8[]) \
                      WITH ORDINALITY AS u(id, claim, status, at, ms, n) \
                 WHERE e.event_id = u.id AND e.status = 'processing' AND e.attempts = u.claim \
                 RETURNING e.tenant_id, e.category, e.event_type, u.n",
                &[&ids, &claims, &statuses, &at, &ms],
            )
            .await
            .map_err(pg_err)?;
        let mut finished = Vec::with_capacity(rows.len());
        let mut records = Vec::new();
        for r in &rows {
            let done = usize::try_from(r.get::<_, i64>(3) - 1)
                .ok()
                .and_then(|i| results.get(i))
                .ok_or_else(|| StoreError::Corrupt("finish: a row no result asked for".into()))?;
            finished.push(done.event_id);
            if lifecycle {
                records.push(LifecycleRecord::processed(
                    r.get(0),
                    done.event_id,
                    r.get(1),
                    r.get(2),
                    done.status,
                    done.duration_ms,
                    done.finished_at,
                ));
            }
        }
        insert_lifecycle(&tx, &records).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(finished)
    }

    pub async fn complete_pending(
        &self,
        limit: usize,
        lifecycle: bool,
    ) -> Result<usize, StoreError> {
        let mut c = self.conn().await?;
        let at = Timestamp::now();
        let tx = c.transaction().await.map_err(pg_err)?;
        let rows = tx
            .query(
                "UPDATE events e SET status = 'processed', processed_at = $1, processing_ms = 0, \
                 attempts = e.attempts + 1 \
                 FROM (SELECT seq, ts FROM events WHERE status IN ('pending', 'processing') AND status = 'pending' \
                       ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) c \
                 WHERE e.seq = c.seq AND e.ts = c.ts \
                 RETURNING e.tenant_id, e.event_id, e.category, e.event_type",
                &[&at.to_string(), &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        if lifecycle && !rows.is_empty() {
            let records: Vec<LifecycleRecord> = rows
                .iter()
                .map(|r| {
                    Ok(LifecycleRecord::processed(
                        r.get(0),
                        corrupt(EventId::try_from(r.get::<_, uuid::Uuid>(1)))?,
                        r.get(2),
                        r.get(3),
                        EventStatus::Processed,
                        0.0,
                        at,
                    ))
                })
                .collect::<Result<_, StoreError>>()?;
            insert_lifecycle(&tx, &records).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(rows.len())
    }

    pub async fn events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT seq, event_id, tenant_id, category, event_type, body::text FROM events \
                 WHERE seq > $1 ORDER BY seq LIMIT $2",
            )
            .await
            .map_err(pg_err)?;
        let rows = c
            .query(&stmt, &[&after, &(limit as i64)])
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(SequencedEvent {
                    seq: r.get(0),
                    event_id: corrupt(EventId::try_from(r.get::<_, uuid::Uuid>(1)))?,
                    tenant_id: r.get(2),
                    category: r.get(3),
                    event_type: r.get(4),
                    body: r.get(5),
                })
            })
            .collect()
    }

    pub async fn publish_cursor(&self, name: &str) -> Result<i64, StoreError> {
        let c = self.conn().await?;
        Ok(
            c.query_opt("SELECT seq FROM publish_cursors WHERE name = $1", &[&name])
                .await
                .map_err(pg_err)?
                .map(|r| r.get(0))
                .unwrap_or(0),
        )
    }

    pub async fn advance_publish_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO publish_cursors (name, seq) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET seq = GREATEST(publish_cursors.seq, excluded.seq)",
            &[&name, &seq],
        )
        .await
        .map_err(pg_err)?;
        Ok(())
    }

    pub async fn pending_lifecycle(
        &self,
        limit: usize,
    ) -> Result<Vec<PendingLifecycle>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT id, tenant_id, event_id, kind, payload FROM lifecycle_outbox ORDER BY id LIMIT $1",
                &[&(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(PendingLifecycle {
                    id: r.get(0),
                    record: LifecycleRecord {
                        tenant_id: r.get(1),
                        event_id: corrupt(EventId::try_from(r.get::<_, uuid::Uuid>(2)))?,
                        kind: r.get(3),
                        payload: r.get(4),
                    },
                })
            })
            .collect()
    }

    pub async fn delete_lifecycle(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        let c = self.conn().await?;
        c.execute("DELETE FROM lifecycle_outbox WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    /// A session-level advisory lock on a connection of its own: held until
    /// the lease is dropped or the session dies.
    pub async fn try_publisher_lease(&self) -> Result<Option<Lease>, StoreError> {
        let client = connect(&self.config).await?;
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.locks.publisher])
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(got.then_some(Lease { client }))
    }

    pub async fn tenant_revision(&self, tenant: &TenantId) -> Result<i64, StoreError> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached("SELECT revision FROM tenant_revisions WHERE tenant_id = $1")
            .await
            .map_err(pg_err)?;
        Ok(c.query_opt(&stmt, &[&tenant.as_str()])
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0))
            .unwrap_or(0))
    }

    pub async fn shared_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<(String, bool), StoreError> {
        let c = self.conn().await?;
        let inserted = c
            .execute(
                "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&name, &candidate],
            )
            .await
            .map_err(pg_err)?;
        let value: String = c
            .query_one("SELECT value FROM server_secrets WHERE name = $1", &[&name])
            .await
            .map_err(pg_err)?
            .get(0);
        Ok((value, inserted == 1))
    }

    pub async fn maintain(&self) -> Result<(), StoreError> {
        self.maintain_at(time::OffsetDateTime::now_utc()).await
    }

    /// Upkeep as if it were `now`: the partitions from `now`'s month to
    /// `MONTHS_AHEAD` later exist afterwards, holding the rows the default
    /// partition had for them.
    pub async fn maintain_at(&self, now: time::OffsetDateTime) -> Result<(), StoreError> {
        let mut client = connect(&self.config).await?;
        schema::ensure_partitions(&mut client, &self.schema, self.locks.migrate, now).await
    }

    pub async fn insert_definition(
        &self,
        tenant: &TenantId,
        d: EventDefinition,
    ) -> Result<(), StoreError> {
        let v = DefinitionValues::of(&d)?;
        let tenant = tenant.as_str();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO event_definitions (tenant_id, definition_id, version, event_type, is_pattern, category, \
             event_category, name, description, payload_schema, allowed_sources, examples, ui, compatibility, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
            &[
                &tenant, &v.id, &(v.version as i32), &v.event_type, &v.is_pattern, &v.category, &v.event_category,
                &clean(&v.name), &v.description.as_deref().map(clean), &v.schema, &v.sources, &v.examples, &v.ui,
                &v.compatibility, &v.created, &v.updated,
            ],
        )
        .await
        .map_err(|e| if is_unique_violation(&e) { v.conflict(tenant) } else { pg_err(e) })?;
        bump_revision(&tx, tenant).await?;
        tx.commit().await.map_err(pg_err)
    }

    pub async fn definitions(&self, tenant: &TenantId) -> Result<Vec<EventDefinition>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {DEFINITION_COLUMNS} FROM event_definitions WHERE tenant_id = $1 \
                     ORDER BY definition_id, version"
                ),
                &[&tenant.as_str()],
            )
            .await
            .map_err(pg_err)?;
        rows.iter().map(definition_row).collect()
    }

    pub async fn get_definition(
        &self,
        tenant: &TenantId,
        definition_id: &str,
        version: Option<u32>,
    ) -> Result<Option<EventDefinition>, StoreError> {
        let c = self.conn().await?;
        let version = version.map(|v| v as i32);
        let row = c
            .query_opt(
                &format!(
                    "SELECT {DEFINITION_COLUMNS} FROM event_definitions WHERE tenant_id = $1 AND definition_id = $2 \
                     AND ($3::integer IS NULL OR version = $3) ORDER BY version DESC LIMIT 1"
                ),
                &[&tenant.as_str(), &clean(definition_id), &version],
            )
            .await
            .map_err(pg_err)?;
        row.as_ref().map(definition_row).transpose()
    }

    pub async fn get_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT settings FROM tenant_settings WHERE tenant_id = $1",
                &[&tenant.as_str()],
            )
            .await
            .map_err(pg_err)?;
        match row {
            Some(r) => corrupt(serde_json::from_str(r.get(0))),
            None => Ok(TenantSettings::default()),
        }
    }

    pub async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: TenantSettings,
    ) -> Result<(), StoreError> {
        let body = to_json(&settings)?;
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO tenant_settings (tenant_id, settings) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings",
            &[&tenant.as_str(), &body],
        )
        .await
        .map_err(pg_err)?;
        bump_revision(&tx, tenant.as_str()).await?;
        tx.commit().await.map_err(pg_err)
    }

    pub async fn close(&self) {
        let (reply, rx) = oneshot::channel();
        if self.writer.send(writer::WriteOp::Shutdown(reply)).is_ok() {
            let _ = rx.await;
        }
        self.pool.close();
    }
}

async fn insert_lifecycle(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[LifecycleRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = records.iter().map(|l| l.tenant_id.as_str()).collect();
    let ids: Vec<uuid::Uuid> = records.iter().map(|l| *l.event_id.as_uuid()).collect();
    let kinds: Vec<&str> = records.iter().map(|l| l.kind.as_str()).collect();
    let payloads: Vec<&str> = records.iter().map(|l| l.payload.as_str()).collect();
    tx.execute(
        "INSERT INTO lifecycle_outbox (tenant_id, event_id, kind, payload) \
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[])",
        &[&tenants, &ids, &kinds, &payloads],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

async fn bump_revision(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO tenant_revisions (tenant_id, revision) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET revision = tenant_revisions.revision + 1",
        &[&tenant],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

fn definition_row(r: &tokio_postgres::Row) -> Result<EventDefinition, StoreError> {
    DefinitionRow {
        id: r.get(0),
        version: r.get::<_, i32>(1) as u32,
        event_type: r.get(2),
        category: r.get(3),
        event_category: r.get(4),
        name: r.get(5),
        description: r.get(6),
        schema: r.get(7),
        sources: r.get(8),
        examples: r.get(9),
        ui: r.get(10),
        compatibility: r.get(11),
        created: r.get(12),
        updated: r.get(13),
    }
    .parse()
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
        })
        .collect()
}

/// The publisher lease: a session holding `pg_try_advisory_lock`.
#[derive(Debug)]
pub struct Lease {
    client: tokio_postgres::Client,
}

impl Lease {
    pub fn is_held(&self) -> bool {
        !self.client.is_closed()
    }
}

/// The PostgreSQL storage floor for `herald-bench`: Herald's schema and
/// indexes, rows written by binary `COPY` into a staging table and moved
/// with one `INSERT ... SELECT` per batch (the full-text vector is computed
/// there), one transaction per batch; no HTTP, decoding, queue, idempotency
/// or stream bookkeeping.
pub mod floor {
    use super::*;

    /// Creates Herald's schema `schema` (dropping an older one) and returns a
    /// connection using it.
    pub async fn open(url: &str, schema: &str) -> Result<tokio_postgres::Client, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("database URL: {e}")))?;
        config.options(format!("-c search_path={schema}"));
        let mut client = connect(&config).await?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
            .map_err(pg_err)?;
        schema::migrate(&mut client, schema, LockKeys::for_schema(schema).migrate).await?;
        Ok(client)
    }

    /// Drops the floor's schema.
    pub async fn drop_schema(client: &tokio_postgres::Client, schema: &str) {
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await;
    }

    /// Inserts one batch in one transaction.
    pub async fn insert_batch(
        client: &mut tokio_postgres::Client,
        events: &[CanonicalEvent],
    ) -> Result<(), StoreError> {
        writer::copy_batch(client, events).await
    }
}
