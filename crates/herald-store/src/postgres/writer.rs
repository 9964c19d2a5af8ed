//! The PostgreSQL group-commit writer: one task per instance with its own
//! connection. It takes every request waiting in its queue, decides
//! idempotency and stream versions for all of them in order (as if they
//! had arrived one by one), writes them with a handful of array-bound
//! statements in one transaction, and answers only after `COMMIT`.
//!
//! If that transaction fails for any reason but a lost connection, the
//! batch is redone with one savepoint per request, so one request the
//! database refuses cannot fail its neighbours. A failed commit fails every
//! request in it: nothing is acknowledged that is not committed.

use std::collections::HashMap;

use herald_core::CanonicalEvent;
use herald_core::correlation::CorrelationKey;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, GenericClient};

use super::{clean, connect, pg_err};
use crate::records::*;
use crate::rows::{search_text, stored_event};

type Reply = oneshot::Sender<Result<Vec<AppendOutcome>, StoreError>>;

pub(crate) enum WriteOp {
    Append { events: Vec<NewEvent>, reply: Reply },
    Audit(AuditRecord),
    Shutdown(oneshot::Sender<()>),
}

/// One group commit's work.
#[derive(Default)]
struct Batch {
    requests: Vec<(Vec<NewEvent>, Reply)>,
    audits: Vec<AuditRecord>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Batch {
    fn add(&mut self, op: WriteOp) -> usize {
        match op {
            WriteOp::Append { events, reply } => {
                let n = events.len().max(1);
                self.requests.push((events, reply));
                n
            }
            WriteOp::Audit(a) => {
                self.audits.push(a);
                1
            }
            WriteOp::Shutdown(s) => {
                self.shutdown = Some(s);
                1
            }
        }
    }
}

pub(crate) async fn run(
    config: tokio_postgres::Config,
    commit_lock: i64,
    mut rx: mpsc::UnboundedReceiver<WriteOp>,
    max_batch: usize,
) {
    let mut client: Option<Client> = None;
    while let Some(first) = rx.recv().await {
        let mut batch = Batch::default();
        let mut weight = batch.add(first);
        while weight < max_batch {
            match rx.try_recv() {
                Ok(op) => weight += batch.add(op),
                Err(_) => break,
            }
        }
        let shutdown = batch.shutdown.take();
        commit(&config, &mut client, commit_lock, batch).await;
        if let Some(shutdown) = shutdown {
            rx.close();
            let mut rest = Batch::default();
            while let Ok(op) = rx.try_recv() {
                rest.add(op);
            }
            commit(&config, &mut client, commit_lock, rest).await;
            let _ = shutdown.send(());
            return;
        }
    }
}

async fn commit(
    config: &tokio_postgres::Config,
    client: &mut Option<Client>,
    commit_lock: i64,
    mut batch: Batch,
) {
    if batch.requests.is_empty() && batch.audits.is_empty() {
        return;
    }
    if client.as_ref().is_none_or(Client::is_closed) {
        match connect(config).await {
            Ok(c) => *client = Some(c),
            Err(e) => return fail_all(batch, &e.to_string()),
        }
    }
    let Some(c) = client.as_mut() else { return };
    let result = match commit_fast(c, commit_lock, &batch).await {
        Ok(outcomes) => Ok(outcomes),
        Err(e) if c.is_closed() => Err(e),
        Err(e) => {
            tracing::warn!(error = %pg_err(e), "group commit failed; redoing it request by request");
            commit_isolated(c, commit_lock, &batch).await
        }
    };
    match result {
        Ok(outcomes) => {
            for ((_, reply), outcome) in batch.requests.into_iter().zip(outcomes) {
                let _ = reply.send(outcome);
            }
        }
        Err(e) => {
            let why = pg_err(e).to_string();
            tracing::error!(error = %why, "group commit failed; failing every request in it");
            // Reply first: the audit records wait, the requests do not.
            let audits = std::mem::take(&mut batch.audits);
            fail_all(batch, &why);
            keep_audits(c, &audits).await;
        }
    }
}

/// The audit records of a failed group commit describe requests that did
/// happen (earlier ones, already answered): they get a commit of their own.
async fn keep_audits(c: &mut Client, audits: &[AuditRecord]) {
    if audits.is_empty() || c.is_closed() {
        if !audits.is_empty() {
            tracing::error!(
                records = audits.len(),
                "audit records not written: connection lost"
            );
        }
        return;
    }
    let kept = async {
        let tx = c.transaction().await?;
        insert_audits(&tx, audits).await?;
        tx.commit().await
    };
    if let Err(e) = kept.await {
        tracing::error!(error = %pg_err(e), records = audits.len(), "audit records not written");
    }
}

fn fail_all(batch: Batch, why: &str) {
    if !batch.audits.is_empty() {
        tracing::error!(
            records = batch.audits.len(),
            "audit records not written: {why}"
        );
    }
    for (_, reply) in batch.requests {
        let _ = reply.send(Err(StoreError::Unavailable(format!(
            "commit failed: {why}"
        ))));
    }
}

type Outcomes = Vec<Result<Vec<AppendOutcome>, StoreError>>;

/// Every request in one transaction with one set of statements.
async fn commit_fast(
    c: &mut Client,
    commit_lock: i64,
    batch: &Batch,
) -> Result<Outcomes, tokio_postgres::Error> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&commit_lock])
        .await?;
    let all: Vec<&NewEvent> = batch.requests.iter().flat_map(|(e, _)| e).collect();
    let mut outcomes = append_events(&tx, &all).await?.into_iter();
    insert_audits(&tx, &batch.audits).await?;
    tx.commit().await?;
    Ok(batch
        .requests
        .iter()
        .map(|(events, _)| Ok(outcomes.by_ref().take(events.len()).collect()))
        .collect())
}

/// The slow path: a savepoint per request, so a refused request fails alone.
async fn commit_isolated(
    c: &mut Client,
    commit_lock: i64,
    batch: &Batch,
) -> Result<Outcomes, tokio_postgres::Error> {
    let mut tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&commit_lock])
        .await?;
    let mut outcomes = Vec::with_capacity(batch.requests.len());
    for (events, _) in &batch.requests {
        let sp = tx.savepoint("request").await?;
        let refs: Vec<&NewEvent> = events.iter().collect();
        match append_events(&sp, &refs).await {
            Ok(o) => {
                sp.commit().await?;
                outcomes.push(Ok(o));
            }
            Err(e) => {
                sp.rollback().await?;
                outcomes.push(Err(pg_err(e)));
            }
        }
    }
    insert_audits(&tx, &batch.audits).await?;
    tx.commit().await?;
    Ok(outcomes)
}

type Key = (String, String);

/// Appends `events` in order inside the caller's transaction, which holds
/// the commit lock: nothing else decides keys or versions meanwhile.
async fn append_events(
    tx: &impl GenericClient,
    events: &[&NewEvent],
) -> Result<Vec<AppendOutcome>, tokio_postgres::Error> {
    let tenant_key = |e: &CanonicalEvent, k: &str| (e.tenant_id.as_str().to_string(), clean(k));

    // Idempotency keys already stored, with their first events.
    let mut keyed: Vec<Key> = events
        .iter()
        .filter_map(|n| {
            n.event
                .idempotency_key
                .as_deref()
                .map(|k| tenant_key(&n.event, k))
        })
        .collect();
    keyed.sort();
    keyed.dedup();
    let mut existing: HashMap<Key, StoredEvent> = HashMap::new();
    if !keyed.is_empty() {
        let (tenants, keys): (Vec<&str>, Vec<&str>) =
            keyed.iter().map(|(t, k)| (t.as_str(), k.as_str())).unzip();
        let rows = tx
            .query(
                "SELECT k.tenant_id, k.key, e.body::text, e.status, e.processed_at, e.processing_ms \
                 FROM UNNEST($1::text[], $2::text[]) AS q(tenant_id, key) \
                 JOIN idempotency_keys k ON k.tenant_id = q.tenant_id AND k.key = q.key \
                 JOIN events e ON e.event_id = k.event_id AND e.tenant_id = k.tenant_id",
                &[&tenants, &keys],
            )
            .await?;
        for r in rows {
            // A row that does not decode is answered as corrupt, below.
            if let Ok(stored) = stored_event(r.get(2), r.get(3), r.get(4), r.get(5)) {
                existing.insert((r.get(0), r.get(1)), stored);
            }
        }
    }

    // Current stream versions.
    let mut streams: Vec<Key> = events
        .iter()
        .filter_map(|n| {
            n.event
                .stream_id
                .as_ref()
                .map(|s| tenant_key(&n.event, s.as_str()))
        })
        .collect();
    streams.sort();
    streams.dedup();
    let mut heads: HashMap<Key, u64> = HashMap::new();
    if !streams.is_empty() {
        let (tenants, ids): (Vec<&str>, Vec<&str>) = streams
            .iter()
            .map(|(t, s)| (t.as_str(), s.as_str()))
            .unzip();
        for r in tx
            .query(
                "SELECT h.tenant_id, h.stream_id, h.version FROM UNNEST($1::text[], $2::text[]) AS q(tenant_id, stream_id) \
                 JOIN stream_heads h ON h.tenant_id = q.tenant_id AND h.stream_id = q.stream_id",
                &[&tenants, &ids],
            )
            .await?
        {
            heads.insert((r.get(0), r.get(1)), r.get::<_, i64>(2) as u64);
        }
    }

    // Decide each event in order, as if appended one at a time.
    let mut outcomes: Vec<AppendOutcome> = Vec::with_capacity(events.len());
    let mut first_in_batch: HashMap<Key, usize> = HashMap::new();
    let mut moved_heads: HashMap<Key, u64> = HashMap::new();
    let mut stored_keys: Vec<(Key, uuid::Uuid)> = Vec::new();
    for new in events {
        let key = new
            .event
            .idempotency_key
            .as_deref()
            .map(|k| tenant_key(&new.event, k));
        if let Some(key) = &key {
            if let Some(first) = existing.get(key) {
                outcomes.push(AppendOutcome::Duplicate(first.clone()));
                continue;
            }
            if let Some(&i) = first_in_batch.get(key)
                && let AppendOutcome::Stored(first) = &outcomes[i]
            {
                outcomes.push(AppendOutcome::Duplicate(StoredEvent {
                    event: first.clone(),
                    processed_at: None,
                    processing_ms: None,
                }));
                continue;
            }
        }
        let mut event = new.event.clone();
        if let Some(stream) = &event.stream_id {
            let head = tenant_key(&event, stream.as_str());
            let current = heads.get(&head).copied().unwrap_or(0);
            if let Some(expected) = new.expected_version
                && expected != current
            {
                outcomes.push(AppendOutcome::VersionConflict {
                    stream_id: stream.to_string(),
                    expected,
                    actual: current,
                });
                continue;
            }
            event.stream_version = Some(current + 1);
            heads.insert(head.clone(), current + 1);
            moved_heads.insert(head, current + 1);
        }
        if let Some(key) = key {
            first_in_batch.insert(key.clone(), outcomes.len());
            stored_keys.push((key, *event.event_id.as_uuid()));
        }
        outcomes.push(AppendOutcome::Stored(event));
    }

    if !stored_keys.is_empty() {
        let tenants: Vec<&str> = stored_keys.iter().map(|((t, _), _)| t.as_str()).collect();
        let keys: Vec<&str> = stored_keys.iter().map(|((_, k), _)| k.as_str()).collect();
        let ids: Vec<uuid::Uuid> = stored_keys.iter().map(|(_, id)| *id).collect();
        tx.execute(
            "INSERT INTO idempotency_keys (tenant_id, key, event_id) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::uuid[])",
            &[&tenants, &keys, &ids],
        )
        .await?;
    }
    if !moved_heads.is_empty() {
        let tenants: Vec<&str> = moved_heads.keys().map(|(t, _)| t.as_str()).collect();
        let ids: Vec<&str> = moved_heads.keys().map(|(_, s)| s.as_str()).collect();
        let versions: Vec<i64> = moved_heads.values().map(|&v| v as i64).collect();
        tx.execute(
            "INSERT INTO stream_heads (tenant_id, stream_id, version) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[]) \
             ON CONFLICT (tenant_id, stream_id) DO UPDATE SET version = excluded.version",
            &[&tenants, &ids, &versions],
        )
        .await?;
    }
    let stored: Vec<&CanonicalEvent> = outcomes
        .iter()
        .filter_map(|o| match o {
            AppendOutcome::Stored(e) => Some(e),
            _ => None,
        })
        .collect();
    if !stored.is_empty() {
        let columns = Columns::of(&stored);
        tx.execute(&insert_events_from(UNNEST_COLUMNS), &columns.params())
            .await?;
    }
    Ok(outcomes)
}

/// `INSERT INTO events ... SELECT ... FROM {source} AS u(...)`: the events
/// insert from any row source with Herald's event columns in this order.
fn insert_events_from(source: &str) -> String {
    format!(
        "INSERT INTO events (event_id, tenant_id, ts, processing_ts, category, event_category, \
event_type, event_source, status, outcome_status, trace_id, span_id, correlation_id, request_id, order_id, \
session_id, ticket_id, user_id, email_hash, environment, service, stream_id, stream_version, idempotency_key, \
body, search) \
SELECT u.event_id, u.tenant_id, u.ts, u.processing_ts, u.category, u.event_category, u.event_type, u.event_source, \
u.status, u.outcome_status, u.trace_id, u.span_id, u.correlation_id, u.request_id, u.order_id, u.session_id, \
u.ticket_id, u.user_id, u.email_hash, u.environment, u.service, u.stream_id, u.stream_version, u.idempotency_key, \
u.body::json, to_tsvector('simple', u.search) \
FROM {source} AS u(event_id, tenant_id, ts, processing_ts, category, event_category, event_type, event_source, status, \
outcome_status, trace_id, span_id, correlation_id, request_id, order_id, session_id, ticket_id, user_id, \
email_hash, environment, service, stream_id, stream_version, idempotency_key, body, search)"
    )
}

/// The arrays `Columns::params` binds, as a row source.
const UNNEST_COLUMNS: &str = "UNNEST($1::uuid[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[], \
$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], \
$16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::int8[], $24::text[], \
$25::text[], $26::text[])";

/// Herald's event columns as arrays: bound whole to `UNNEST_COLUMNS`, or
/// row by row to the floor's `COPY`.
struct Columns {
    event_id: Vec<uuid::Uuid>,
    tenant_id: Vec<String>,
    ts: Vec<i64>,
    processing_ts: Vec<i64>,
    category: Vec<&'static str>,
    event_category: Vec<Option<&'static str>>,
    event_type: Vec<String>,
    event_source: Vec<&'static str>,
    status: Vec<&'static str>,
    outcome_status: Vec<&'static str>,
    keys: [Vec<Option<String>>; 9],
    environment: Vec<String>,
    service: Vec<Option<String>>,
    stream_id: Vec<Option<String>>,
    stream_version: Vec<Option<i64>>,
    idempotency_key: Vec<Option<String>>,
    body: Vec<String>,
    search: Vec<String>,
}

impl Columns {
    fn of(events: &[&CanonicalEvent]) -> Columns {
        let n = events.len();
        let opt = |s: &Option<String>| s.as_deref().map(clean);
        let mut c = Columns {
            event_id: Vec::with_capacity(n),
            tenant_id: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            processing_ts: Vec::with_capacity(n),
            category: Vec::with_capacity(n),
            event_category: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            event_source: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            outcome_status: Vec::with_capacity(n),
            keys: std::array::from_fn(|_| Vec::with_capacity(n)),
            environment: Vec::with_capacity(n),
            service: Vec::with_capacity(n),
            stream_id: Vec::with_capacity(n),
            stream_version: Vec::with_capacity(n),
            idempotency_key: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
            search: Vec::with_capacity(n),
        };
        for e in events {
            c.event_id.push(*e.event_id.as_uuid());
            c.tenant_id.push(e.tenant_id.as_str().to_string());
            c.ts.push(e.timestamp.unix_micros());
            c.processing_ts.push(e.processing_timestamp.unix_micros());
            c.category.push(e.category.as_str());
            c.event_category.push(e.event_category.map(|x| x.as_str()));
            c.event_type.push(clean(e.event_type.as_str()));
            c.event_source.push(e.event_source.as_str());
            c.status.push(e.status.as_str());
            c.outcome_status.push(e.outcome.status.as_str());
            for (i, k) in CorrelationKey::ALL.into_iter().enumerate() {
                c.keys[i].push(k.value_in(e).map(clean));
            }
            c.environment.push(clean(&e.context.environment));
            c.service.push(opt(&e.context.service));
            c.stream_id
                .push(e.stream_id.as_ref().map(|s| clean(s.as_str())));
            c.stream_version.push(e.stream_version.map(|v| v as i64));
            c.idempotency_key.push(opt(&e.idempotency_key));
            // serde_json escapes every control character, NUL included.
            c.body.push(serde_json::to_string(e).unwrap_or_default());
            c.search.push(clean(&search_text(e)));
        }
        c
    }

    fn row(&self, i: usize) -> Vec<&(dyn ToSql + Sync)> {
        let mut r: Vec<&(dyn ToSql + Sync)> = vec![
            &self.event_id[i],
            &self.tenant_id[i],
            &self.ts[i],
            &self.processing_ts[i],
            &self.category[i],
            &self.event_category[i],
            &self.event_type[i],
            &self.event_source[i],
            &self.status[i],
            &self.outcome_status[i],
        ];
        r.extend(self.keys.iter().map(|k| &k[i] as &(dyn ToSql + Sync)));
        r.extend([
            &self.environment[i] as &(dyn ToSql + Sync),
            &self.service[i],
            &self.stream_id[i],
            &self.stream_version[i],
            &self.idempotency_key[i],
            &self.body[i],
            &self.search[i],
        ]);
        r
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![
            &self.event_id,
            &self.tenant_id,
            &self.ts,
            &self.processing_ts,
            &self.category,
            &self.event_category,
            &self.event_type,
            &self.event_source,
            &self.status,
            &self.outcome_status,
        ];
        p.extend(self.keys.iter().map(|k| k as &(dyn ToSql + Sync)));
        p.extend([
            &self.environment as &(dyn ToSql + Sync),
            &self.service,
            &self.stream_id,
            &self.stream_version,
            &self.idempotency_key,
            &self.body,
            &self.search,
        ]);
        p
    }
}

async fn insert_audits(
    tx: &impl GenericClient,
    audits: &[AuditRecord],
) -> Result<(), tokio_postgres::Error> {
    if audits.is_empty() {
        return Ok(());
    }
    let at: Vec<String> = audits.iter().map(|a| a.at.to_string()).collect();
    let at_us: Vec<i64> = audits.iter().map(|a| a.at.unix_micros()).collect();
    let text = |f: fn(&AuditRecord) -> &str| audits.iter().map(|a| clean(f(a))).collect::<Vec<_>>();
    let opt = |f: fn(&AuditRecord) -> &Option<String>| {
        audits
            .iter()
            .map(|a| f(a).as_deref().map(clean))
            .collect::<Vec<_>>()
    };
    let status: Vec<i32> = audits.iter().map(|a| i32::from(a.status_code)).collect();
    let duration: Vec<i64> = audits.iter().map(|a| a.duration_us as i64).collect();
    tx.execute(
        "INSERT INTO audit (at, at_us, tenant_id, key_id, operation, resource, outcome, status_code, request_id, \
         duration_us, detail) SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[], $8::int4[], $9::text[], $10::int8[], $11::text[])",
        &[
            &at,
            &at_us,
            &opt(|a| &a.tenant_id),
            &opt(|a| &a.key_id),
            &text(|a| &a.operation),
            &text(|a| &a.resource),
            &text(|a| &a.outcome),
            &status,
            &text(|a| &a.request_id),
            &duration,
            &opt(|a| &a.detail),
        ],
    )
    .await?;
    Ok(())
}

/// The storage floor's write: binary `COPY` into a staging table, then one
/// `INSERT ... SELECT` that computes the full-text vector, one transaction.
pub(crate) async fn copy_batch(
    client: &mut Client,
    events: &[CanonicalEvent],
) -> Result<(), StoreError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;

    let refs: Vec<&CanonicalEvent> = events.iter().collect();
    let columns = Columns::of(&refs);
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS events_stage (event_id uuid, tenant_id text, ts int8, processing_ts int8, \
         category text, event_category text, event_type text, event_source text, status text, outcome_status text, \
         trace_id text, span_id text, correlation_id text, request_id text, order_id text, session_id text, \
         ticket_id text, user_id text, email_hash text, environment text, service text, stream_id text, \
         stream_version int8, idempotency_key text, body text, search text) ON COMMIT DELETE ROWS",
    )
    .await
    .map_err(pg_err)?;
    let mut types = vec![Type::UUID, Type::TEXT, Type::INT8, Type::INT8];
    types.extend([Type::TEXT; 18]);
    types.push(Type::INT8);
    types.extend([Type::TEXT; 3]);
    let sink = tx
        .copy_in("COPY events_stage FROM STDIN BINARY")
        .await
        .map_err(pg_err)?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    for i in 0..events.len() {
        writer
            .as_mut()
            .write(&columns.row(i))
            .await
            .map_err(pg_err)?;
    }
    writer.finish().await.map_err(pg_err)?;
    tx.execute(&insert_events_from("events_stage"), &[])
        .await
        .map_err(pg_err)?;
    tx.commit().await.map_err(pg_err)
}
