//! How the embedded store runs a group commit's statements: one thread
//! owns the write connection and drives the shared group commit
//! (`crate::group_commit`) on it. A unit of appends is one savepoint, so a
//! refused unit is undone and the transaction goes on.

use std::any::Any;

use herald_core::CanonicalEvent;
use herald_core::correlation::CorrelationKey;
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot};

use super::keys;
use crate::group_commit::{self, Attempt, CommitTx, Committer, Decision, Settle, WriteOp};
use crate::records::*;
use crate::rows::{search_text, stored_event_row};

type AnyBox = Box<dyn Any + Send>;
type ExecFn = Box<dyn FnOnce(&Connection) -> Result<AnyBox, StoreError> + Send>;
type ExecReply = oneshot::Sender<Result<AnyBox, StoreError>>;

/// A write other than an append: a closure run in the next group commit,
/// alone in a savepoint, its result held until the commit is settled.
pub(crate) struct Exec {
    f: Option<ExecFn>,
    result: Option<Result<AnyBox, StoreError>>,
    reply: ExecReply,
}

impl Exec {
    pub(crate) fn new<T: Send + 'static>(
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> (Exec, oneshot::Receiver<Result<AnyBox, StoreError>>) {
        let (reply, rx) = oneshot::channel();
        let f: ExecFn = Box::new(move |c| f(c).map(|t| Box::new(t) as AnyBox));
        (
            Exec {
                f: Some(f),
                result: None,
                reply,
            },
            rx,
        )
    }
}

impl Settle for Exec {
    fn settle(self, committed: Result<(), &StoreError>) {
        let result = match committed {
            Ok(()) => self
                .result
                .unwrap_or_else(|| Err(StoreError::corrupt("a write was never run"))),
            Err(e) => Err(e.for_each_waiter()),
        };
        let _ = self.reply.send(result);
    }
}

/// Starts the writer thread. `blocking_recv` and a current-thread runtime
/// cost the same: both park the thread until the queue has work.
pub(crate) fn spawn(
    conn: Connection,
    rx: mpsc::UnboundedReceiver<WriteOp<Exec>>,
    max_batch: usize,
    observer: group_commit::ObserverSlot,
) -> Result<(), StoreError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| StoreError::unavailable("cannot start the writer's runtime", e))?;
    std::thread::Builder::new()
        .name("herald-sqlite-writer".into())
        .spawn(move || {
            runtime.block_on(group_commit::run(
                SqliteCommitter(conn),
                rx,
                max_batch,
                observer,
            ))
        })
        .map_err(|e| StoreError::unavailable("cannot start the writer thread", e))?;
    Ok(())
}

struct SqliteCommitter(Connection);

struct SqliteTx<'c>(rusqlite::Transaction<'c>);

impl Committer for SqliteCommitter {
    type Other = Exec;
    type Tx<'a> = SqliteTx<'a>;

    async fn begin(&mut self) -> Result<SqliteTx<'_>, StoreError> {
        Ok(SqliteTx(self.0.transaction()?))
    }
}

impl SqliteTx<'_> {
    /// `f` in a savepoint: kept if it succeeds, undone if not.
    fn alone<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<Result<T, StoreError>, StoreError> {
        let sp = self.0.savepoint()?;
        match f(&sp) {
            Ok(t) => {
                sp.commit()?;
                Ok(Ok(t))
            }
            // Dropping the savepoint rolls it back.
            Err(e) => Ok(Err(e)),
        }
    }
}

impl CommitTx for SqliteTx<'_> {
    type Other = Exec;

    async fn run_others(&mut self, others: &mut [Exec]) -> Result<(), StoreError> {
        for exec in others {
            if let Some(f) = exec.f.take() {
                exec.result = Some(self.alone(f)?);
            }
        }
        Ok(())
    }

    async fn append_together(&mut self, events: &mut [&mut NewEvent]) -> Attempt {
        self.alone(|c| events.iter_mut().map(|e| append_one(c, e)).collect())
    }

    async fn append_alone(&mut self, events: &mut [NewEvent]) -> Attempt {
        self.alone(|c| events.iter_mut().map(|e| append_one(c, e)).collect())
    }

    async fn insert_audits(&mut self, audits: &[AuditRecord]) -> Result<(), StoreError> {
        for record in audits {
            insert_audit(&self.0, record)?;
        }
        Ok(())
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.0
            .commit()
            .map_err(|e| StoreError::unavailable("commit failed", e))
    }
}

/// Decides one event's fate and stores it if it is new, assigning its
/// stream version in place.
fn append_one(c: &Connection, new: &mut NewEvent) -> Result<Decision, StoreError> {
    let event = &mut new.event;
    let tenant = event.tenant_id.as_str();
    if let Some(key) = &event.idempotency_key {
        let mut stmt = c.prepare_cached(&format!(
            "SELECT {} FROM events WHERE tenant_id = ?1 AND idempotency_key = ?2",
            super::events::EVENT_COLUMNS
        ))?;
        if let Some(existing) =
            super::map_row(&mut stmt, params![tenant, key], |r| stored_event_row(r))?
        {
            return Ok(Decision::Duplicate(existing));
        }
    }
    if let Some(stream) = &event.stream_id {
        let current: i64 = c
            .prepare_cached("SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE tenant_id = ?1 AND stream_id = ?2")?
            .query_row(params![tenant, stream.as_str()], |r| r.get(0))?;
        let current = current as u64;
        let expected = new.expected_version;
        if !expected.admits(current) {
            return Ok(Decision::Conflict {
                stream_id: stream.to_string(),
                expected,
                actual: current,
            });
        }
        event.stream_version = Some(current + 1);
    }
    insert_row(c, event)?;
    Ok(Decision::Stored)
}

/// Writes one event row and its full-text entry: the whole cost of storing
/// an event, shared by `append` and the benchmark's storage floor.
pub(super) fn insert_row(c: &Connection, event: &CanonicalEvent) -> Result<(), StoreError> {
    let tenant = event.tenant_id.as_str();
    let body = crate::rows::to_json(event)?;
    let key = |k: CorrelationKey| k.value_in(event);
    c.prepare_cached(
        "INSERT INTO events (event_id, tenant_id, ts, processing_ts, category, event_category, event_type, event_source, \
         status, outcome_status, trace_id, span_id, correlation_id, request_id, order_id, session_id, ticket_id, user_id, \
         email_hash, environment, service, stream_id, stream_version, idempotency_key, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
    )?
    .execute(params![
        event.event_id.as_bytes().as_slice(),
        tenant,
        event.timestamp.unix_micros(),
        event.processing_timestamp.unix_micros(),
        event.category.as_str(),
        event.event_category.map(|c| c.as_str()),
        event.event_type.as_str(),
        event.event_source.as_str(),
        event.status.as_str(),
        event.outcome.status.as_str(),
        key(CorrelationKey::TraceId),
        key(CorrelationKey::SpanId),
        key(CorrelationKey::CorrelationId),
        key(CorrelationKey::RequestId),
        key(CorrelationKey::OrderId),
        key(CorrelationKey::SessionId),
        key(CorrelationKey::TicketId),
        key(CorrelationKey::UserId),
        key(CorrelationKey::EmailHash),
        &event.context.environment,
        &event.context.service,
        event.stream_id.as_ref().map(|s| s.as_str()),
        event.stream_version.map(|v| v as i64),
        &event.idempotency_key,
        body,
    ])?;
    let seq = c.last_insert_rowid();
    c.prepare_cached("INSERT INTO events_fts (rowid, text) VALUES (?1, ?2)")?
        .execute(params![seq, search_text(event)])?;
    if let Some(tokens) = keys::tokens(event) {
        c.prepare_cached("INSERT INTO events_keys (rowid, keys) VALUES (?1, ?2)")?
            .execute(params![seq, tokens])?;
    }
    Ok(())
}

/// One audit record (the writer's batches and lifecycle notices alike).
pub(super) fn insert_audit(c: &Connection, r: &AuditRecord) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "INSERT INTO audit (at, at_us, tenant_id, key_id, operation, resource, outcome, status_code, request_id, duration_us, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        r.at.to_string(),
        r.at.unix_micros(),
        r.tenant_id,
        r.key_id,
        r.operation,
        r.resource,
        r.outcome.as_str(),
        r.status_code,
        r.request_id,
        r.duration_us as i64,
        r.detail
    ])
}
