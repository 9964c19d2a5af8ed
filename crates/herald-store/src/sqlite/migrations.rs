//! The embedded store's schema: versions applied in order at open;
//! `PRAGMA user_version` records the last. Never edit one that has
//! shipped: add a new one.

use rusqlite::Connection;

use super::keys;
use crate::records::StoreError;

/// Schema versions, applied in order; `PRAGMA user_version` records the last.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE tenants (
    tenant_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants (tenant_id),
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;

CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    event_id BLOB NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    ts INTEGER NOT NULL,
    processing_ts INTEGER NOT NULL,
    category TEXT NOT NULL,
    event_category TEXT,
    event_type TEXT NOT NULL,
    event_source TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome_status TEXT NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    correlation_id TEXT,
    request_id TEXT,
    order_id TEXT,
    session_id TEXT,
    ticket_id TEXT,
    user_id TEXT,
    email_hash TEXT,
    environment TEXT NOT NULL,
    service TEXT,
    stream_id TEXT,
    stream_version INTEGER,
    idempotency_key TEXT,
    processed_at TEXT,
    processing_ms REAL,
    body TEXT NOT NULL
) STRICT;

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
CREATE UNIQUE INDEX events_idempotency ON events (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX events_stream ON events (tenant_id, stream_id, stream_version) WHERE stream_id IS NOT NULL;

CREATE VIRTUAL TABLE events_fts USING fts5 (text, content = '');

CREATE TABLE audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    tenant_id TEXT,
    key_id TEXT,
    operation TEXT NOT NULL,
    resource TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    duration_us INTEGER NOT NULL,
    detail TEXT
) STRICT;
CREATE INDEX audit_tenant_at ON audit (tenant_id, at_us);
"#,
    r#"
CREATE TABLE event_definitions (
    tenant_id TEXT NOT NULL,
    definition_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version > 0),
    event_type TEXT NOT NULL,
    is_pattern INTEGER NOT NULL,
    category TEXT NOT NULL,
    event_category TEXT,
    name TEXT NOT NULL,
    description TEXT,
    payload_schema TEXT,
    allowed_sources TEXT NOT NULL,
    examples TEXT NOT NULL,
    ui TEXT NOT NULL,
    compatibility TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, definition_id, version)
) STRICT;
-- A definition's type never changes, so one version 1 per type means one
-- definition per type.
CREATE UNIQUE INDEX event_definitions_type ON event_definitions (tenant_id, event_type) WHERE version = 1;

CREATE TABLE tenant_settings (
    tenant_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL
) STRICT;
"#,
    r#"
CREATE TABLE publish_cursors (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) STRICT;

CREATE TABLE lifecycle_outbox (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    event_id BLOB NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
) STRICT;
"#,
    // Claim tokens: each claim increments it, and a finish must name the
    // newest claim (as on PostgreSQL). A constant default: no table rewrite.
    r#"
ALTER TABLE events ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
"#,
    // The audit listing pages newest first within a tenant.
    r#"
CREATE INDEX audit_tenant_seq ON audit (tenant_id, seq);
"#,
    // Correlation keys in one FTS5 table instead of nine B-tree indexes.
    keys::MIGRATION,
    // Webhook subscriptions: the definition as one JSON document, the
    // columns a listing filters on beside it, secrets in clear (delivery
    // signs with them).
    r#"
CREATE TABLE subscriptions (
    subscription_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    subscriber_name TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    spec TEXT NOT NULL,
    secret TEXT NOT NULL,
    previous_secret TEXT,
    previous_secret_expires_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (tenant_id, subscriber_name)
) STRICT;

CREATE INDEX subscriptions_tenant ON subscriptions (tenant_id, subscription_id);
"#,
    // Webhook deliveries: one row per (subscription, matching event),
    // times in microseconds since the epoch. A subscription holds at most
    // one delivery per event outside replays, so a repeated fan-out adds
    // nothing.
    r#"
CREATE TABLE deliveries (
    delivery_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    subscription_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    stream_id TEXT,
    stream_version INTEGER,
    webhook_id TEXT NOT NULL,
    replay_id TEXT,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_status INTEGER,
    last_error_class TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

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
    delivery_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status_code INTEGER,
    duration_ms INTEGER NOT NULL,
    error_class TEXT,
    response_snippet TEXT,
    next_attempt_at INTEGER,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;
"#,
    // Redrive: `attempts` at the last redrive, so the retry schedule starts
    // over while attempt numbers go on; dead letters listed per tenant.
    r#"
ALTER TABLE deliveries ADD COLUMN attempt_base INTEGER NOT NULL DEFAULT 0;
CREATE INDEX deliveries_dead ON deliveries (tenant_id, delivery_id) WHERE state = 'dead';
"#,
    // Replays: a request to deliver stored events again, its selection as
    // given, its target subscriptions, the last `seq` committed when it was
    // made (it reads no later event), and how far the worker got (a
    // cursor over the commit `seq` and its counts). Times in microseconds.
    r#"
CREATE TABLE replays (
    replay_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    selection TEXT NOT NULL,
    targets TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    state TEXT NOT NULL,
    until_seq INTEGER NOT NULL,
    cursor_seq INTEGER NOT NULL,
    events_scanned INTEGER NOT NULL,
    events_matched INTEGER NOT NULL,
    deliveries_created INTEGER NOT NULL,
    error TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    completed_at INTEGER
) STRICT;

CREATE INDEX replays_unfinished ON replays (created_at, replay_id) WHERE state IN ('pending', 'running');
"#,
    // Lifecycle notices about no one event (a subscription turned off, a
    // replay) have no event id. SQLite cannot drop a NOT NULL: the table
    // is rebuilt, ids kept.
    r#"
CREATE TABLE lifecycle_outbox_new (
    id INTEGER PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    event_id BLOB,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL
) STRICT;
INSERT INTO lifecycle_outbox_new (id, tenant_id, event_id, kind, payload)
    SELECT id, tenant_id, event_id, kind, payload FROM lifecycle_outbox;
DROP TABLE lifecycle_outbox;
ALTER TABLE lifecycle_outbox_new RENAME TO lifecycle_outbox;
"#, // Stream order: finding the earlier unfinished deliveries of one
    // subscription's stream is a range of this index.
    r#"
CREATE INDEX deliveries_stream_order ON deliveries (subscription_id, stream_id, stream_version)
    WHERE replay_id IS NULL AND state IN ('pending', 'in_flight');
"#, // When a subscription's unbroken run of failed deliveries began
    // (microseconds since the epoch; NULL after a success): delivery turns
    // it off once the run is too long.
    r#"
ALTER TABLE subscriptions ADD COLUMN failing_since INTEGER;
"#, // An event definition's projection rule (JSON: fold and path), and the
    // folded state of a stream kept every N versions so a projection read
    // folds at most N events. `rules` is the fingerprint of the tenant's
    // fold rules the state was folded under; a read uses only snapshots
    // with the current one, and a newer fold overwrites a version's row.
    // `max_processing_ts` is the latest processing time among the events
    // up to `version`: a snapshot serves `?at=` only when it is not after.
    r#"
ALTER TABLE event_definitions ADD COLUMN projection TEXT;
CREATE TABLE projection_snapshots (
    tenant_id TEXT NOT NULL,
    stream_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    rules TEXT NOT NULL,
    state TEXT NOT NULL,
    last_event_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    max_processing_ts INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, stream_id, version)
) STRICT;
"#,
    // A write key's collection settings (allowed origins, webhook secret)
    // as one JSON document; NULL: none.
    r#"
ALTER TABLE api_keys ADD COLUMN collect TEXT;
"#,
    // Processors (one JSON definition per row, name unique per tenant),
    // processing jobs (one per event that matched a processor: its retry
    // schedule, lease and dead-letter state, kept beside the event rather
    // than in its row) and each processor's last result on an event.
    // Times in microseconds since the epoch.
    r#"
CREATE TABLE processors (
    processor_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    spec TEXT NOT NULL,
    secret TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX processors_name ON processors (tenant_id, name);
CREATE TABLE processing_jobs (
    job_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    attempt_base INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    event_type TEXT NOT NULL
) STRICT;
CREATE INDEX processing_jobs_due ON processing_jobs (priority DESC, seq) WHERE state = 'pending';
CREATE INDEX processing_jobs_leased ON processing_jobs (lease_until) WHERE state = 'in_flight';
CREATE INDEX processing_jobs_dead ON processing_jobs (tenant_id, job_id) WHERE state = 'dead';
CREATE TABLE processing_results (
    event_id TEXT NOT NULL,
    processor_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    processor_name TEXT NOT NULL,
    processor_type TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    duration_ms REAL NOT NULL,
    result TEXT,
    error TEXT,
    finished_at INTEGER NOT NULL,
    PRIMARY KEY (event_id, processor_id)
) STRICT;
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
    wait_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    workflow_instance_id TEXT NOT NULL,
    event_types TEXT NOT NULL,
    spec TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    timeout_at INTEGER NOT NULL,
    created_seq INTEGER NOT NULL,
    ended_at INTEGER,
    event_id TEXT,
    event TEXT,
    callback_url TEXT,
    webhook_secret TEXT,
    callback_state TEXT,
    callback_attempts INTEGER NOT NULL DEFAULT 0,
    callback_next_at INTEGER,
    callback_lease_until INTEGER,
    callback_last_status INTEGER,
    callback_last_error TEXT
) STRICT;

CREATE INDEX waits_tenant ON waits (tenant_id, wait_id);
CREATE INDEX waits_workflow ON waits (tenant_id, workflow_instance_id) WHERE status = 'open';
CREATE INDEX waits_open_seq ON waits (created_seq) WHERE status = 'open';
CREATE INDEX waits_open_timeout ON waits (timeout_at) WHERE status = 'open';
CREATE INDEX waits_callback_due ON waits (callback_next_at) WHERE callback_state = 'pending';
CREATE INDEX waits_callback_leased ON waits (callback_lease_until) WHERE callback_state = 'in_flight';
"#,
    r#"
CREATE TABLE rollup_levels (
    level INTEGER PRIMARY KEY,
    width INTEGER NOT NULL
) STRICT;
INSERT INTO rollup_levels (level, width) VALUES (0, 60000000), (1, 3600000000), (2, 86400000000), (3, 0);

CREATE TABLE stats_rollups (
    tenant_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    event_source TEXT NOT NULL,
    category TEXT NOT NULL,
    event_category TEXT NOT NULL,
    events INTEGER NOT NULL,
    processed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    processing_ms REAL NOT NULL,
    PRIMARY KEY (tenant_id, level, bucket, event_type, event_source, category, event_category)
) STRICT, WITHOUT ROWID;

CREATE TABLE stats_top_users (
    tenant_id TEXT NOT NULL,
    level INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    event_type TEXT NOT NULL,
    event_source TEXT NOT NULL,
    category TEXT NOT NULL,
    event_category TEXT NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (tenant_id, level, bucket, event_type, event_source, category, event_category)
) STRICT, WITHOUT ROWID;

INSERT INTO publish_cursors (name, seq) VALUES ('rollups', 0) ON CONFLICT (name) DO NOTHING;
"#,
];

pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        return Err(StoreError::invalid(format!(
            "database schema version {version} is newer than this Herald ({}); upgrade Herald",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
