//! The PostgreSQL schema: versioned migrations applied at start inside one
//! transaction holding an advisory lock (instances starting together wait
//! for each other instead of racing), and the monthly partitions of
//! `events`, created ahead of time.
//!
//! `events` is range-partitioned by event time (`ts`, microseconds) into
//! one partition per month, plus a default partition for events far in the
//! past or future. A month's partition is created with the rows the default
//! partition already holds for it, then attached, so creating partitions
//! ahead never fails on earlier out-of-range events.

use time::{Date, Month, OffsetDateTime, Time};
use tokio_postgres::Client;

use crate::records::StoreError;

use super::pg_err;

/// Schema versions in order; `schema_migrations` records which were applied.
/// Never edit one that has shipped: add a new one.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    tenant_id text PRIMARY KEY,
    name text NOT NULL,
    created_at text NOT NULL
);

CREATE TABLE api_keys (
    key_id text PRIMARY KEY,
    tenant_id text NOT NULL REFERENCES tenants (tenant_id),
    name text NOT NULL,
    scopes text NOT NULL,
    secret_hash bytea NOT NULL UNIQUE,
    created_at text NOT NULL,
    revoked_at text
);

CREATE SEQUENCE events_seq;

CREATE TABLE events (
    seq bigint NOT NULL DEFAULT nextval('events_seq'),
    event_id uuid NOT NULL,
    tenant_id text NOT NULL,
    ts bigint NOT NULL,
    processing_ts bigint NOT NULL,
    category text NOT NULL,
    event_category text,
    event_type text NOT NULL,
    event_source text NOT NULL,
    status text NOT NULL,
    outcome_status text NOT NULL,
    trace_id text,
    span_id text,
    correlation_id text,
    request_id text,
    order_id text,
    session_id text,
    ticket_id text,
    user_id text,
    email_hash text,
    environment text NOT NULL,
    service text,
    stream_id text,
    stream_version bigint,
    idempotency_key text,
    processed_at text,
    processing_ms double precision,
    attempts integer NOT NULL DEFAULT 0,
    claimed_until bigint,
    body json NOT NULL,
    search tsvector NOT NULL
) PARTITION BY RANGE (ts);

CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE INDEX events_tenant_ts ON events (tenant_id, ts, seq);
CREATE INDEX events_tenant_category ON events (tenant_id, category, ts);
CREATE INDEX events_tenant_type ON events (tenant_id, event_type, ts);
CREATE INDEX events_tenant_source ON events (tenant_id, event_source, ts);
CREATE INDEX events_tenant_status ON events (tenant_id, status, ts);
CREATE INDEX events_tenant_environment ON events (tenant_id, environment, ts);
CREATE INDEX events_tenant_service ON events (tenant_id, service, ts) WHERE service IS NOT NULL;
CREATE INDEX events_pending ON events (seq) WHERE status IN ('pending', 'processing');
CREATE INDEX events_trace_id ON events (tenant_id, trace_id, ts) WHERE trace_id IS NOT NULL;
CREATE INDEX events_span_id ON events (tenant_id, span_id, ts) WHERE span_id IS NOT NULL;
CREATE INDEX events_correlation_id ON events (tenant_id, correlation_id, ts) WHERE correlation_id IS NOT NULL;
CREATE INDEX events_request_id ON events (tenant_id, request_id, ts) WHERE request_id IS NOT NULL;
CREATE INDEX events_order_id ON events (tenant_id, order_id, ts) WHERE order_id IS NOT NULL;
CREATE INDEX events_session_id ON events (tenant_id, session_id, ts) WHERE session_id IS NOT NULL;
CREATE INDEX events_ticket_id ON events (tenant_id, ticket_id, ts) WHERE ticket_id IS NOT NULL;
CREATE INDEX events_user_id ON events (tenant_id, user_id, ts) WHERE user_id IS NOT NULL;
CREATE INDEX events_email_hash ON events (tenant_id, email_hash, ts) WHERE email_hash IS NOT NULL;
CREATE INDEX events_stream ON events (tenant_id, stream_id, stream_version) WHERE stream_id IS NOT NULL;
CREATE INDEX events_event_id ON events (event_id);
CREATE INDEX events_seq_idx ON events (seq);
CREATE INDEX events_search ON events USING gin (search);

-- Uniqueness that a table partitioned by time cannot enforce itself.
CREATE TABLE idempotency_keys (
    tenant_id text NOT NULL,
    key text NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE stream_heads (
    tenant_id text NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    PRIMARY KEY (tenant_id, stream_id)
);

CREATE TABLE audit (
    seq bigserial PRIMARY KEY,
    at text NOT NULL,
    at_us bigint NOT NULL,
    tenant_id text,
    key_id text,
    operation text NOT NULL,
    resource text NOT NULL,
    outcome text NOT NULL,
    status_code integer NOT NULL,
    request_id text NOT NULL,
    duration_us bigint NOT NULL,
    detail text
);
CREATE INDEX audit_tenant_at ON audit (tenant_id, at_us);

CREATE TABLE event_definitions (
    tenant_id text NOT NULL,
    definition_id text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    event_type text NOT NULL,
    is_pattern boolean NOT NULL,
    category text NOT NULL,
    event_category text,
    name text NOT NULL,
    description text,
    payload_schema text,
    allowed_sources text NOT NULL,
    examples text NOT NULL,
    ui text NOT NULL,
    compatibility text,
    created_at text NOT NULL,
    updated_at text NOT NULL,
    PRIMARY KEY (tenant_id, definition_id, version)
);
CREATE UNIQUE INDEX event_definitions_type ON event_definitions (tenant_id, event_type) WHERE version = 1;

CREATE TABLE tenant_settings (
    tenant_id text PRIMARY KEY,
    settings text NOT NULL
);

-- Bumped with every definition or settings change, so other instances
-- know to reload the tenant's registry snapshot.
CREATE TABLE tenant_revisions (
    tenant_id text PRIMARY KEY,
    revision bigint NOT NULL
);

CREATE TABLE publish_cursors (
    name text PRIMARY KEY,
    seq bigint NOT NULL
);

CREATE TABLE lifecycle_outbox (
    id bigserial PRIMARY KEY,
    tenant_id text NOT NULL,
    event_id uuid NOT NULL,
    kind text NOT NULL,
    payload text NOT NULL
);

-- Secrets every instance must share (the email hash key, the root key's hash).
CREATE TABLE server_secrets (
    name text PRIMARY KEY,
    value text NOT NULL
);
"#,
    // The audit listing pages newest first within a tenant.
    r#"
CREATE INDEX audit_tenant_seq ON audit (tenant_id, seq);
"#,
    // Webhook subscriptions: the definition as one JSON document, the
    // columns a listing filters on beside it, secrets in clear (delivery
    // signs with them). Ids compare bytewise, as on SQLite.
    r#"
CREATE TABLE subscriptions (
    subscription_id text COLLATE "C" PRIMARY KEY,
    tenant_id text NOT NULL,
    subscriber_name text NOT NULL,
    enabled boolean NOT NULL,
    spec text NOT NULL,
    secret text NOT NULL,
    previous_secret text,
    previous_secret_expires_at text,
    created_at text NOT NULL,
    updated_at text NOT NULL,
    UNIQUE (tenant_id, subscriber_name)
);

CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id, subscription_id);
"#,
    // Webhook deliveries: one row per (subscription, matching event),
    // times in microseconds since the epoch. A subscription holds at most
    // one delivery per event outside replays, so a repeated fan-out adds
    // nothing. Ids compare bytewise, as on SQLite.
    r#"
CREATE TABLE deliveries (
    delivery_id text COLLATE "C" PRIMARY KEY,
    tenant_id text NOT NULL,
    subscription_id text NOT NULL,
    event_id text NOT NULL,
    seq bigint NOT NULL,
    stream_id text,
    stream_version bigint,
    webhook_id text NOT NULL,
    replay_id text,
    state text NOT NULL,
    attempts bigint NOT NULL,
    next_attempt_at bigint NOT NULL,
    lease_until bigint,
    last_status bigint,
    last_error_class text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);

CREATE UNIQUE INDEX deliveries_once ON deliveries (subscription_id, event_id) WHERE replay_id IS NULL;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE state = 'in_flight';
CREATE INDEX deliveries_event ON deliveries (tenant_id, event_id);
CREATE INDEX deliveries_subscription ON deliveries (tenant_id, subscription_id, delivery_id);
"#,
    // One row per attempt at a delivery: what the receiver answered and
    // when the next attempt is due, for the delivery listings.
    r#"
CREATE TABLE delivery_attempts (
    delivery_id text COLLATE "C" NOT NULL,
    attempt bigint NOT NULL,
    at bigint NOT NULL,
    status_code bigint,
    duration_ms bigint NOT NULL,
    error_class text,
    response_snippet text,
    next_attempt_at bigint,
    PRIMARY KEY (delivery_id, attempt)
);
"#,
    // Redrive: `attempts` at the last redrive, so the retry schedule starts
    // over while attempt numbers go on; dead letters listed per tenant.
    r#"
ALTER TABLE deliveries ADD COLUMN attempt_base bigint NOT NULL DEFAULT 0;
CREATE INDEX deliveries_dead ON deliveries (tenant_id, delivery_id) WHERE state = 'dead';
"#,
    // Replays: a request to deliver stored events again, its selection as
    // given, its target subscriptions, the last `seq` committed when it was
    // made (it reads no later event), and how far the worker got (a
    // cursor over the commit `seq` and its counts). Times in microseconds;
    // ids compare bytewise, as on SQLite.
    r#"
CREATE TABLE replays (
    replay_id text COLLATE "C" PRIMARY KEY,
    tenant_id text NOT NULL,
    selection text NOT NULL,
    targets text NOT NULL,
    dry_run bigint NOT NULL,
    state text NOT NULL,
    until_seq bigint NOT NULL,
    cursor_seq bigint NOT NULL,
    events_scanned bigint NOT NULL,
    events_matched bigint NOT NULL,
    deliveries_created bigint NOT NULL,
    error text,
    created_at bigint NOT NULL,
    started_at bigint,
    completed_at bigint
);

CREATE INDEX replays_unfinished ON replays (created_at, replay_id) WHERE state IN ('pending', 'running');
"#,
    // Lifecycle notices about no one event (a subscription turned off, a
    // replay) have no event id.
    r#"
ALTER TABLE lifecycle_outbox ALTER COLUMN event_id DROP NOT NULL;
"#, // Stream order: finding the earlier unfinished deliveries of one
    // subscription's stream is a range of this index.
    r#"
CREATE INDEX deliveries_stream_order ON deliveries (subscription_id, stream_id, stream_version)
    WHERE replay_id IS NULL AND state IN ('pending', 'in_flight');
"#, // When a subscription's unbroken run of failed deliveries began
    // (microseconds since the epoch; NULL after a success): delivery turns
    // it off once the run is too long.
    r#"
ALTER TABLE subscriptions ADD COLUMN failing_since bigint;
"#, // An event definition's projection rule (JSON: fold and path), and the
    // folded state of a stream kept every N versions so a projection read
    // folds at most N events. `rules` is the fingerprint of the tenant's
    // fold rules the state was folded under; a read uses only snapshots
    // with the current one, and a newer fold overwrites a version's row.
    // `max_processing_ts` is the latest processing time among the events
    // up to `version`: a snapshot serves `?at=` only when it is not after.
    r#"
ALTER TABLE event_definitions ADD COLUMN projection text;
CREATE TABLE projection_snapshots (
    tenant_id text NOT NULL,
    stream_id text NOT NULL,
    version bigint NOT NULL,
    rules text NOT NULL,
    state text NOT NULL,
    last_event_id text NOT NULL,
    updated_at bigint NOT NULL,
    max_processing_ts bigint NOT NULL,
    PRIMARY KEY (tenant_id, stream_id, version)
);
"#,
    // A write key's collection settings (allowed origins, webhook secret)
    // as one JSON document; NULL: none.
    r#"
ALTER TABLE api_keys ADD COLUMN collect text;
"#,
    // Processors (one JSON definition per row, name unique per tenant),
    // processing jobs (one per event that matched a processor: its retry
    // schedule, lease and dead-letter state, kept beside the event rather
    // than in its row) and each processor's last result on an event.
    // Times in microseconds since the epoch.
    r#"
CREATE TABLE processors (
    processor_id text COLLATE "C" PRIMARY KEY,
    tenant_id text NOT NULL,
    name text NOT NULL,
    enabled bigint NOT NULL,
    priority bigint NOT NULL,
    spec text NOT NULL,
    secret text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);
CREATE UNIQUE INDEX processors_name ON processors (tenant_id, name);
CREATE TABLE processing_jobs (
    job_id text COLLATE "C" PRIMARY KEY,
    tenant_id text NOT NULL,
    event_id text NOT NULL,
    seq bigint NOT NULL,
    priority bigint NOT NULL,
    state text NOT NULL,
    attempts bigint NOT NULL,
    attempt_base bigint NOT NULL,
    next_attempt_at bigint NOT NULL,
    lease_until bigint,
    last_error text,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL,
    event_type text NOT NULL
);
CREATE INDEX processing_jobs_due ON processing_jobs (priority DESC, seq) WHERE state = 'pending';
CREATE INDEX processing_jobs_leased ON processing_jobs (lease_until) WHERE state = 'in_flight';
CREATE INDEX processing_jobs_dead ON processing_jobs (tenant_id, job_id) WHERE state = 'dead';
CREATE TABLE processing_results (
    event_id text NOT NULL,
    processor_id text NOT NULL,
    tenant_id text NOT NULL,
    processor_name text NOT NULL,
    processor_type text NOT NULL,
    priority bigint NOT NULL,
    status text NOT NULL,
    attempt bigint NOT NULL,
    duration_ms double precision NOT NULL,
    result text,
    error text,
    finished_at bigint NOT NULL,
    PRIMARY KEY (event_id, processor_id)
);
"#,
    // Workflow waits: what a workflow waits for (`spec`: alternatives of
    // type pattern and filter, its context, its lookback), until when, and
    // how it ended (exactly once: `status` leaves `open` by a
    // compare-and-set). `created_seq` is the last `seq` committed when it
    // was stored; `event_types` its types and patterns between spaces, for
    // listing by type. With a callback URL the row is its own outbox
    // (`callback_*`). Times in microseconds.
    r#"
CREATE TABLE waits (
    wait_id text PRIMARY KEY,
    tenant_id text NOT NULL,
    workflow_instance_id text NOT NULL,
    event_types text NOT NULL,
    spec text NOT NULL,
    status text NOT NULL,
    created_at bigint NOT NULL,
    timeout_at bigint NOT NULL,
    created_seq bigint NOT NULL,
    ended_at bigint,
    event_id text,
    event text,
    callback_url text,
    webhook_secret text,
    callback_state text,
    callback_attempts bigint NOT NULL DEFAULT 0,
    callback_next_at bigint,
    callback_lease_until bigint,
    callback_last_status bigint,
    callback_last_error text
);

CREATE INDEX waits_tenant ON waits (tenant_id, wait_id);
CREATE INDEX waits_workflow ON waits (tenant_id, workflow_instance_id) WHERE status = 'open';
CREATE INDEX waits_open_seq ON waits (created_seq) WHERE status = 'open';
CREATE INDEX waits_open_timeout ON waits (timeout_at) WHERE status = 'open';
CREATE INDEX waits_callback_due ON waits (callback_next_at) WHERE callback_state = 'pending';
CREATE INDEX waits_callback_leased ON waits (callback_lease_until) WHERE callback_state = 'in_flight';
"#,
    r#"
CREATE TABLE rollup_levels (
    level bigint PRIMARY KEY,
    width bigint NOT NULL
);
INSERT INTO rollup_levels (level, width) VALUES (0, 60000000), (1, 3600000000), (2, 86400000000), (3, 0);

CREATE TABLE stats_rollups (
    tenant_id text NOT NULL,
    level bigint NOT NULL,
    bucket bigint NOT NULL,
    event_type text NOT NULL,
    event_source text NOT NULL,
    category text NOT NULL,
    event_category text NOT NULL,
    events bigint NOT NULL,
    processed bigint NOT NULL,
    failed bigint NOT NULL,
    processing_ms double precision NOT NULL,
    PRIMARY KEY (tenant_id, level, bucket, event_type, event_source, category, event_category)
);

CREATE TABLE stats_top_users (
    tenant_id text NOT NULL,
    level bigint NOT NULL,
    bucket bigint NOT NULL,
    event_type text NOT NULL,
    event_source text NOT NULL,
    category text NOT NULL,
    event_category text NOT NULL,
    summary text NOT NULL,
    PRIMARY KEY (tenant_id, level, bucket, event_type, event_source, category, event_category)
);

INSERT INTO publish_cursors (name, seq) VALUES ('rollups', 0) ON CONFLICT (name) DO NOTHING;
"#,
];

/// How many months of partitions exist ahead of the current one.
pub(crate) const MONTHS_AHEAD: u32 = 3;

/// Creates the schema if needed and applies every pending migration, then
/// the partitions; all under the migration lock, in one transaction.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    lock_key: i64,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let tx = locked(client, lock_key).await?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS \"{schema}\"; SET LOCAL search_path TO \"{schema}\";
         CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at text NOT NULL);"
    ))
    .await
    .map_err(pg_err)?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    let applied = applied as usize;
    if applied > MIGRATIONS.len() {
        return Err(StoreError::invalid(format!(
            "database schema version {applied} is newer than this Herald ({}); upgrade Herald",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[
                &((i + 1) as i32),
                &herald_core::Timestamp::from(now).to_string(),
            ],
        )
        .await
        .map_err(pg_err)?;
    }
    ensure_partitions_in(&tx, schema, now).await?;
    tx.commit().await.map_err(pg_err)
}

/// A transaction holding the migration lock until it ends.
async fn locked(
    client: &mut Client,
    lock_key: i64,
) -> Result<tokio_postgres::Transaction<'_>, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key])
        .await
        .map_err(pg_err)?;
    Ok(tx)
}

/// Creates the partitions from the month of `now` to `MONTHS_AHEAD` later
/// that do not exist yet, under the migration lock.
pub(crate) async fn ensure_partitions(
    client: &mut Client,
    schema: &str,
    lock_key: i64,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let tx = locked(client, lock_key).await?;
    ensure_partitions_in(&tx, schema, now).await?;
    tx.commit().await.map_err(pg_err)
}

async fn ensure_partitions_in(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError> {
    let mut month = first_of_month(now.date());
    for _ in 0..=MONTHS_AHEAD {
        let next = next_month(month);
        let name = format!("events_p{:04}_{:02}", month.year(), month.month() as u8);
        let exists = tx
            .query_opt(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &name],
            )
            .await
            .map_err(pg_err)?
            .is_some();
        if !exists {
            let (from, to) = (micros(month), micros(next));
            tx.batch_execute(&format!(
                "CREATE TABLE {name} (LIKE events INCLUDING DEFAULTS);
                 INSERT INTO {name} SELECT * FROM events_default WHERE ts >= {from} AND ts < {to};
                 DELETE FROM events_default WHERE ts >= {from} AND ts < {to};
                 ALTER TABLE events ATTACH PARTITION {name} FOR VALUES FROM ({from}) TO ({to});"
            ))
            .await
            .map_err(pg_err)?;
            tracing::info!(partition = %name, "created events partition");
        }
        month = next;
    }
    Ok(())
}

fn first_of_month(d: Date) -> Date {
    Date::from_calendar_date(d.year(), d.month(), 1).unwrap_or(d)
}

fn next_month(d: Date) -> Date {
    let (year, month) = match d.month() {
        Month::December => (d.year() + 1, Month::January),
        m => (d.year(), m.next()),
    };
    Date::from_calendar_date(year, month, 1).unwrap_or(d)
}

fn micros(d: Date) -> i64 {
    (d.with_time(Time::MIDNIGHT)
        .assume_utc()
        .unix_timestamp_nanos()
        / 1000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn months_roll_over_the_year_and_bounds_are_utc_midnights() {
        assert_eq!(next_month(date!(2026 - 12 - 01)), date!(2027 - 01 - 01));
        assert_eq!(first_of_month(date!(2026 - 02 - 17)), date!(2026 - 02 - 01));
        assert_eq!(micros(date!(1970 - 01 - 02)), 86_400_000_000);
    }
}
