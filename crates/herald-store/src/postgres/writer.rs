//! How PostgreSQL runs a group commit's statements (`crate::group_commit`
//! holds the policy): one task per instance with its own connection. Each
//! transaction first takes the commit lock, a transaction-level advisory
//! lock, so across instances a later commit never has a smaller `seq` and
//! idempotency keys and stream versions are decided by one writer at a
//! time. The appends of a batch are decided in memory (as if they had
//! arrived one by one) and written with a handful of array-bound
//! (`UNNEST`) statements.
//!
//! A refused unit of appends aborts a PostgreSQL transaction, so together
//! the fast path has no savepoint to pay for: it rolls back and starts the
//! transaction again (it holds nothing else yet); alone, a request gets a
//! savepoint.

use std::collections::HashMap;

use herald_core::CanonicalEvent;
use tokio_postgres::{Client, GenericClient};

use super::columns::{Columns, UNNEST_COLUMNS, insert_events_from};
use super::{clean, connect, pg_err};
use crate::group_commit::{Attempt, CommitTx, Committer, Decision, NoOther};
use crate::records::*;
use crate::rows::stored_event;

pub(crate) struct PgCommitter {
    config: tokio_postgres::Config,
    commit_lock: i64,
    client: Option<Client>,
    /// A transaction is open on `client`: one an error left uncommitted.
    open: bool,
}

impl PgCommitter {
    pub(crate) fn new(config: tokio_postgres::Config, commit_lock: i64) -> PgCommitter {
        PgCommitter {
            config,
            commit_lock,
            client: None,
            open: false,
        }
    }
}

pub(crate) struct PgTx<'c> {
    client: &'c mut Client,
    open: &'c mut bool,
    commit_lock: i64,
}

impl Committer for PgCommitter {
    type Other = NoOther;
    type Tx<'a> = PgTx<'a>;

    async fn begin(&mut self) -> Result<PgTx<'_>, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.open = false;
            self.client = Some(connect(&self.config).await?);
        }
        let Some(client) = self.client.as_mut() else {
            return Err(StoreError::unavailable_because("no connection"));
        };
        if self.open {
            // An error left this transaction open (its `PgTx` was dropped).
            client.batch_execute("ROLLBACK").await.map_err(pg_err)?;
            self.open = false;
        }
        let mut tx = PgTx {
            client,
            open: &mut self.open,
            commit_lock: self.commit_lock,
        };
        tx.start().await?;
        Ok(tx)
    }
}

impl PgTx<'_> {
    async fn start(&mut self) -> Result<(), StoreError> {
        *self.open = true;
        self.client.batch_execute("BEGIN").await.map_err(pg_err)?;
        self.client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&self.commit_lock])
            .await
            .map_err(pg_err)?;
        Ok(())
    }

    /// The inner error when the database refused the statement and the
    /// connection lives on; the outer one when the connection is gone.
    fn refused<T>(&self, e: tokio_postgres::Error) -> Result<Result<T, StoreError>, StoreError> {
        if self.client.is_closed() {
            Err(pg_err(e))
        } else {
            Ok(Err(pg_err(e)))
        }
    }
}

impl CommitTx for PgTx<'_> {
    type Other = NoOther;

    async fn run_others(&mut self, others: &mut [NoOther]) -> Result<(), StoreError> {
        match others.first() {
            None => Ok(()),
            Some(never) => match *never {},
        }
    }

    async fn append_together(&mut self, events: &mut [&mut NewEvent]) -> Attempt {
        match append_events(&*self.client, events).await {
            Ok(decisions) => Ok(Ok(decisions)),
            Err(e) => {
                let refused = self.refused(e)?;
                self.client
                    .batch_execute("ROLLBACK")
                    .await
                    .map_err(pg_err)?;
                *self.open = false;
                self.start().await?;
                Ok(refused)
            }
        }
    }

    async fn append_alone(&mut self, events: &mut [NewEvent]) -> Attempt {
        self.client
            .batch_execute("SAVEPOINT request")
            .await
            .map_err(pg_err)?;
        let mut refs: Vec<&mut NewEvent> = events.iter_mut().collect();
        match append_events(&*self.client, &mut refs).await {
            Ok(decisions) => {
                self.client
                    .batch_execute("RELEASE SAVEPOINT request")
                    .await
                    .map_err(pg_err)?;
                Ok(Ok(decisions))
            }
            Err(e) => {
                let refused = self.refused(e)?;
                self.client
                    .batch_execute("ROLLBACK TO SAVEPOINT request")
                    .await
                    .map_err(pg_err)?;
                Ok(refused)
            }
        }
    }

    async fn insert_audits(&mut self, audits: &[AuditRecord]) -> Result<(), StoreError> {
        insert_audits(&*self.client, audits).await.map_err(pg_err)
    }

    async fn commit(self) -> Result<(), StoreError> {
        let committed = self.client.batch_execute("COMMIT").await;
        // A failed COMMIT ends the transaction too (or the connection).
        *self.open = false;
        committed.map_err(|e| StoreError::unavailable("commit failed", e))
    }
}

type Key = (String, String);

/// Appends `events` in order inside the caller's transaction, which holds
/// the commit lock: nothing else decides keys or versions meanwhile.
async fn append_events(
    tx: &impl GenericClient,
    events: &mut [&mut NewEvent],
) -> Result<Vec<Decision>, tokio_postgres::Error> {
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
    let mut decisions: Vec<Decision> = Vec::with_capacity(events.len());
    let mut first_in_batch: HashMap<Key, usize> = HashMap::new();
    let mut moved_heads: HashMap<Key, u64> = HashMap::new();
    let mut stored_keys: Vec<(Key, uuid::Uuid)> = Vec::new();
    for i in 0..events.len() {
        let new = &*events[i];
        let key = new
            .event
            .idempotency_key
            .as_deref()
            .map(|k| tenant_key(&new.event, k));
        if let Some(key) = &key {
            if let Some(first) = existing.get(key) {
                decisions.push(Decision::Duplicate(first.clone()));
                continue;
            }
            if let Some(&first) = first_in_batch.get(key) {
                decisions.push(Decision::Duplicate(StoredEvent {
                    event: events[first].event.clone(),
                    processed_at: None,
                    processing_ms: None,
                }));
                continue;
            }
        }
        let new = &mut *events[i];
        if let Some(stream) = &new.event.stream_id {
            let head = tenant_key(&new.event, stream.as_str());
            let current = heads.get(&head).copied().unwrap_or(0);
            let expected = new.expected_version;
            if !expected.admits(current) {
                decisions.push(Decision::Conflict {
                    stream_id: stream.to_string(),
                    expected,
                    actual: current,
                });
                continue;
            }
            new.event.stream_version = Some(current + 1);
            heads.insert(head.clone(), current + 1);
            moved_heads.insert(head, current + 1);
        }
        if let Some(key) = key {
            first_in_batch.insert(key.clone(), i);
            stored_keys.push((key, *new.event.event_id.as_uuid()));
        }
        decisions.push(Decision::Stored);
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
    let stored: Vec<&CanonicalEvent> = events
        .iter()
        .zip(&decisions)
        .filter_map(|(n, d)| matches!(d, Decision::Stored).then_some(&n.event))
        .collect();
    if !stored.is_empty() {
        let columns = Columns::of(&stored);
        tx.execute(&insert_events_from(UNNEST_COLUMNS), &columns.params())
            .await?;
    }
    Ok(decisions)
}

/// Audit records in one statement (the writer's batches and lifecycle
/// notices alike).
pub(super) async fn insert_audits(
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
            &audits.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(),
            &status,
            &text(|a| &a.request_id),
            &duration,
            &opt(|a| &a.detail),
        ],
    )
    .await?;
    Ok(())
}
