//! The table of every setting: its key in `herald.toml` (the `Config`
//! field), its `HERALD_*` variable, its command-line flag, its help line,
//! its default (read from `Config::default()`) and how a text value sets
//! it. The environment and flag layers read values through this table and
//! `herald serve --help` is printed from it, so what is documented is what
//! is accepted.

use std::path::PathBuf;

use super::{Config, LogFormat, LogLevel, Secret};

/// One setting.
#[derive(Debug)]
pub struct Setting {
    /// The key in `herald.toml`, and the `Config` field.
    pub key: &'static str,
    /// The environment variable: `HERALD_` and the key in upper case.
    pub env: &'static str,
    /// The flag (`--{flag}`: the key with `-` for `_`), or `None` for a
    /// secret: a flag's value is visible to every user of the host in the
    /// process list.
    pub flag: Option<&'static str>,
    /// What the value is, for help (`ADDR`, `BYTES`, ...).
    pub value_name: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// The default as help shows it.
    pub default: fn(&Config) -> String,
    set: fn(&mut Config, &str) -> Result<(), String>,
}

impl Setting {
    /// Sets this setting of `config` from a text value (an environment
    /// variable's or a flag's); the error says what was expected.
    pub fn apply(&self, config: &mut Config, value: &str) -> Result<(), String> {
        (self.set)(config, value)
    }

    /// The setting with this key.
    pub fn by_key(key: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.key == key)
    }

    /// The setting read from this environment variable.
    pub fn by_env(name: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.env == name)
    }
}

fn parse_into<T: std::str::FromStr>(s: &str, slot: &mut T) -> Result<(), String>
where
    T::Err: std::fmt::Display,
{
    *slot = s.trim().parse().map_err(|e: T::Err| e.to_string())?;
    Ok(())
}

fn parse_log(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected `text` or `json`".into()),
    }
}

fn unset() -> String {
    "unset".into()
}

/// Every setting, in the order help lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "listen",
        env: "HERALD_LISTEN",
        flag: Some("listen"),
        value_name: "ADDR",
        help: "Address to listen on",
        default: |c| c.listen.to_string(),
        set: |c, v| parse_into(v, &mut c.listen),
    },
    Setting {
        key: "data_dir",
        env: "HERALD_DATA_DIR",
        flag: Some("data-dir"),
        value_name: "DIR",
        help: "Where the embedded store and generated keys live",
        default: |c| c.data_dir.display().to_string(),
        set: |c, v| {
            c.data_dir = PathBuf::from(v);
            Ok(())
        },
    },
    Setting {
        key: "root_key",
        env: "HERALD_ROOT_KEY",
        flag: None,
        value_name: "KEY",
        help: "The operator key (16+ characters)",
        default: |_| "generated into the data dir".into(),
        set: |c, v| {
            c.root_key = Some(Secret(v.to_string()));
            Ok(())
        },
    },
    Setting {
        key: "hash_secret",
        env: "HERALD_HASH_SECRET",
        flag: None,
        value_name: "SECRET",
        help: "Key of the per-tenant email hashes (16+ characters); instances sharing a store share it",
        default: |_| "generated into the data dir, or the database's".into(),
        set: |c, v| {
            c.hash_secret = Some(Secret(v.to_string()));
            Ok(())
        },
    },
    Setting {
        key: "log",
        env: "HERALD_LOG",
        flag: Some("log"),
        value_name: "text|json",
        help: "Log format",
        default: |c| match c.log {
            LogFormat::Text => "text".into(),
            LogFormat::Json => "json".into(),
        },
        set: |c, v| parse_log(v).map(|l| c.log = l),
    },
    Setting {
        key: "log_level",
        env: "HERALD_LOG_LEVEL",
        flag: Some("log-level"),
        value_name: "trace|debug|info|warn|error",
        help: "The most detailed log lines written",
        default: |c| c.log_level.as_str().into(),
        set: |c, v| v.parse::<LogLevel>().map(|l| c.log_level = l),
    },
    Setting {
        key: "max_event_bytes",
        env: "HERALD_MAX_EVENT_BYTES",
        flag: Some("max-event-bytes"),
        value_name: "BYTES",
        help: "Largest single event",
        default: |c| c.max_event_bytes.to_string(),
        set: |c, v| parse_into(v, &mut c.max_event_bytes),
    },
    Setting {
        key: "max_batch_events",
        env: "HERALD_MAX_BATCH_EVENTS",
        flag: Some("max-batch-events"),
        value_name: "N",
        help: "Most events in one batch request",
        default: |c| c.max_batch_events.to_string(),
        set: |c, v| parse_into(v, &mut c.max_batch_events),
    },
    Setting {
        key: "max_batch_bytes",
        env: "HERALD_MAX_BATCH_BYTES",
        flag: Some("max-batch-bytes"),
        value_name: "BYTES",
        help: "Largest batch request body (after gunzip)",
        default: |c| c.max_batch_bytes.to_string(),
        set: |c, v| parse_into(v, &mut c.max_batch_bytes),
    },
    Setting {
        key: "max_query_bytes",
        env: "HERALD_MAX_QUERY_BYTES",
        flag: Some("max-query-bytes"),
        value_name: "BYTES",
        help: "Largest event query body",
        default: |c| c.max_query_bytes.to_string(),
        set: |c, v| parse_into(v, &mut c.max_query_bytes),
    },
    Setting {
        key: "max_definition_bytes",
        env: "HERALD_MAX_DEFINITION_BYTES",
        flag: Some("max-definition-bytes"),
        value_name: "BYTES",
        help: "Largest event definition body (schema, examples and UI metadata included)",
        default: |c| c.max_definition_bytes.to_string(),
        set: |c, v| parse_into(v, &mut c.max_definition_bytes),
    },
    Setting {
        key: "max_settings_bytes",
        env: "HERALD_MAX_SETTINGS_BYTES",
        flag: Some("max-settings-bytes"),
        value_name: "BYTES",
        help: "Largest tenant settings body",
        default: |c| c.max_settings_bytes.to_string(),
        set: |c, v| parse_into(v, &mut c.max_settings_bytes),
    },
    Setting {
        key: "max_admin_bytes",
        env: "HERALD_MAX_ADMIN_BYTES",
        flag: Some("max-admin-bytes"),
        value_name: "BYTES",
        help: "Largest admin request body (a tenant or a key)",
        default: |c| c.max_admin_bytes.to_string(),
        set: |c, v| parse_into(v, &mut c.max_admin_bytes),
    },
    Setting {
        key: "max_inflight_events",
        env: "HERALD_MAX_INFLIGHT_EVENTS",
        flag: Some("max-inflight-events"),
        value_name: "N",
        help: "Events accepted but not yet committed, at most; beyond it ingest answers 503",
        default: |c| c.max_inflight_events.to_string(),
        set: |c, v| parse_into(v, &mut c.max_inflight_events),
    },
    Setting {
        key: "sync_full",
        env: "HERALD_SYNC_FULL",
        flag: Some("sync-full"),
        value_name: "true|false",
        help: "fsync every commit",
        default: |c| c.sync_full.to_string(),
        set: |c, v| parse_into(v, &mut c.sync_full),
    },
    Setting {
        key: "worker_idle_ms",
        env: "HERALD_WORKER_IDLE_MS",
        flag: Some("worker-idle-ms"),
        value_name: "MS",
        help: "How often the processing worker looks for work when nothing woke it (at most 1 s)",
        default: |c| c.worker_idle_ms.to_string(),
        set: |c, v| parse_into(v, &mut c.worker_idle_ms),
    },
    Setting {
        key: "shutdown_grace_secs",
        env: "HERALD_SHUTDOWN_GRACE_SECS",
        flag: Some("shutdown-grace-secs"),
        value_name: "SECS",
        help: "On SIGTERM, how long requests in flight may take before their connections close",
        default: |c| c.shutdown_grace_secs.to_string(),
        set: |c, v| parse_into(v, &mut c.shutdown_grace_secs),
    },
    Setting {
        key: "database_url",
        env: "HERALD_DATABASE_URL",
        flag: Some("database-url"),
        value_name: "URL",
        help: "PostgreSQL (postgres://user@host:5432/db) instead of the embedded store, shared by several instances; empty: unset (a password in a flag shows in the process list)",
        default: |_| unset(),
        set: |c, v| {
            c.database_url = (!v.is_empty()).then(|| Secret(v.to_string()));
            Ok(())
        },
    },
    Setting {
        key: "database_schema",
        env: "HERALD_DATABASE_SCHEMA",
        flag: Some("database-schema"),
        value_name: "NAME",
        help: "The PostgreSQL schema Herald's tables live in",
        default: |c| c.database_schema.clone(),
        set: |c, v| {
            c.database_schema = v.to_string();
            Ok(())
        },
    },
    Setting {
        key: "database_pool_size",
        env: "HERALD_DATABASE_POOL_SIZE",
        flag: Some("database-pool-size"),
        value_name: "N",
        help: "PostgreSQL read connections per instance",
        default: |c| c.database_pool_size.to_string(),
        set: |c, v| parse_into(v, &mut c.database_pool_size),
    },
    Setting {
        key: "registry_refresh_ms",
        env: "HERALD_REGISTRY_REFRESH_MS",
        flag: Some("registry-refresh-ms"),
        value_name: "MS",
        help: "On a shared store, how stale this instance's view of another instance's definition or settings change may get",
        default: |c| c.registry_refresh_ms.to_string(),
        set: |c, v| parse_into(v, &mut c.registry_refresh_ms),
    },
    Setting {
        key: "nats_url",
        env: "HERALD_NATS_URL",
        flag: Some("nats-url"),
        value_name: "URL",
        help: "Publish every stored event and lifecycle event to NATS JetStream (nats://127.0.0.1:4222); empty: unset",
        default: |_| unset(),
        set: |c, v| {
            c.nats_url = (!v.is_empty()).then(|| v.to_string());
            Ok(())
        },
    },
    Setting {
        key: "nats_stream",
        env: "HERALD_NATS_STREAM",
        flag: Some("nats-stream"),
        value_name: "NAME",
        help: "The JetStream stream (created if missing)",
        default: |c| c.nats_stream.clone(),
        set: |c, v| {
            c.nats_stream = v.to_string();
            Ok(())
        },
    },
    Setting {
        key: "nats_subject_prefix",
        env: "HERALD_NATS_SUBJECT_PREFIX",
        flag: Some("nats-subject-prefix"),
        value_name: "PREFIX",
        help: "First token of every subject",
        default: |c| c.nats_subject_prefix.clone(),
        set: |c, v| {
            c.nats_subject_prefix = v.to_string();
            Ok(())
        },
    },
    Setting {
        key: "nats_max_age_secs",
        env: "HERALD_NATS_MAX_AGE_SECS",
        flag: Some("nats-max-age-secs"),
        value_name: "SECS",
        help: "Stream retention by age; 0 keeps messages until the size bound drops them",
        default: |c| c.nats_max_age_secs.to_string(),
        set: |c, v| parse_into(v, &mut c.nats_max_age_secs),
    },
    Setting {
        key: "nats_max_bytes",
        env: "HERALD_NATS_MAX_BYTES",
        flag: Some("nats-max-bytes"),
        value_name: "BYTES",
        help: "Stream retention by size; 0 is unbounded",
        default: |c| c.nats_max_bytes.to_string(),
        set: |c, v| parse_into(v, &mut c.nats_max_bytes),
    },
    Setting {
        key: "nats_duplicate_window_secs",
        env: "HERALD_NATS_DUPLICATE_WINDOW_SECS",
        flag: Some("nats-duplicate-window-secs"),
        value_name: "SECS",
        help: "How long JetStream drops repeated message ids (repeats after a crash mid-publish)",
        default: |c| c.nats_duplicate_window_secs.to_string(),
        set: |c, v| parse_into(v, &mut c.nats_duplicate_window_secs),
    },
    Setting {
        key: "delivery_allowed_networks",
        env: "HERALD_DELIVERY_ALLOWED_NETWORKS",
        flag: Some("delivery-allowed-networks"),
        value_name: "CIDRS",
        help: "Comma-separated CIDR ranges webhooks may reach beyond public addresses (127.0.0.0/8 for local testing); empty: public only",
        default: |c| {
            if c.delivery_allowed_networks.is_empty() {
                unset()
            } else {
                c.delivery_allowed_networks.clone()
            }
        },
        set: |c, v| {
            c.delivery_allowed_networks = v.to_string();
            Ok(())
        },
    },
    Setting {
        key: "delivery_secret_overlap_secs",
        env: "HERALD_DELIVERY_SECRET_OVERLAP_SECS",
        flag: Some("delivery-secret-overlap-secs"),
        value_name: "SECS",
        help: "After a webhook secret is rotated, how long the previous one still signs deliveries",
        default: |c| c.delivery_secret_overlap_secs.to_string(),
        set: |c, v| parse_into(v, &mut c.delivery_secret_overlap_secs),
    },
    Setting {
        key: "delivery_timeout_secs",
        env: "HERALD_DELIVERY_TIMEOUT_SECS",
        flag: Some("delivery-timeout-secs"),
        value_name: "SECS",
        help: "How long one webhook attempt may take before it counts as a timeout",
        default: |c| c.delivery_timeout_secs.to_string(),
        set: |c, v| parse_into(v, &mut c.delivery_timeout_secs),
    },
    Setting {
        key: "delivery_concurrency",
        env: "HERALD_DELIVERY_CONCURRENCY",
        flag: Some("delivery-concurrency"),
        value_name: "N",
        help: "Webhook attempts in flight at once, across all endpoints",
        default: |c| c.delivery_concurrency.to_string(),
        set: |c, v| parse_into(v, &mut c.delivery_concurrency),
    },
    Setting {
        key: "delivery_endpoint_concurrency",
        env: "HERALD_DELIVERY_ENDPOINT_CONCURRENCY",
        flag: Some("delivery-endpoint-concurrency"),
        value_name: "N",
        help: "Webhook attempts to one callback URL in flight at once; more wait, unattempted, so a slow endpoint cannot hold the others up",
        default: |c| c.delivery_endpoint_concurrency.to_string(),
        set: |c, v| parse_into(v, &mut c.delivery_endpoint_concurrency),
    },
    Setting {
        key: "projection_snapshot_every",
        env: "HERALD_PROJECTION_SNAPSHOT_EVERY",
        flag: Some("projection-snapshot-every"),
        value_name: "N",
        help: "Keep a projection's folded state every N stream versions, so a read folds at most N events (0: no snapshots)",
        default: |c| c.projection_snapshot_every.to_string(),
        set: |c, v| parse_into(v, &mut c.projection_snapshot_every),
    },
    Setting {
        key: "projection_cache_entries",
        env: "HERALD_PROJECTION_CACHE_ENTRIES",
        flag: Some("projection-cache-entries"),
        value_name: "N",
        help: "Current projections kept in memory, the most recently read (0: no cache)",
        default: |c| c.projection_cache_entries.to_string(),
        set: |c, v| parse_into(v, &mut c.projection_cache_entries),
    },
    Setting {
        key: "delivery_disable_after_days",
        env: "HERALD_DELIVERY_DISABLE_AFTER_DAYS",
        flag: Some("delivery-disable-after-days"),
        value_name: "DAYS",
        help: "A subscription whose deliveries fail without a success for this many days is disabled; 0: never",
        default: |c| c.delivery_disable_after_days.to_string(),
        set: |c, v| parse_into(v, &mut c.delivery_disable_after_days),
    },
    Setting {
        key: "tail_heartbeat_ms",
        env: "HERALD_TAIL_HEARTBEAT_MS",
        flag: Some("tail-heartbeat-ms"),
        value_name: "MS",
        help: "Live tail: an SSE comment after this long without an event, so proxies keep idle connections open",
        default: |c| c.tail_heartbeat_ms.to_string(),
        set: |c, v| parse_into(v, &mut c.tail_heartbeat_ms),
    },
    Setting {
        key: "tail_buffer_events",
        env: "HERALD_TAIL_BUFFER_EVENTS",
        flag: Some("tail-buffer-events"),
        value_name: "EVENTS",
        help: "Live tail: events waiting for one client, at most; a client further behind gets an `overflow` event and is disconnected",
        default: |c| c.tail_buffer_events.to_string(),
        set: |c, v| parse_into(v, &mut c.tail_buffer_events),
    },
    Setting {
        key: "tail_poll_ms",
        env: "HERALD_TAIL_POLL_MS",
        flag: Some("tail-poll-ms"),
        value_name: "MS",
        help: "Live tail: how often the commit log is read without a local commit (events other instances stored)",
        default: |c| c.tail_poll_ms.to_string(),
        set: |c, v| parse_into(v, &mut c.tail_poll_ms),
    },
    Setting {
        key: "rollups",
        env: "HERALD_ROLLUPS",
        flag: Some("rollups"),
        value_name: "true|false",
        help: "Statistics: keep rollups from the commit log (false: every statistics answer counts the events themselves, slowly on a big store)",
        default: |c| c.rollups.to_string(),
        set: |c, v| parse_into(v, &mut c.rollups),
    },
    Setting {
        key: "rollup_interval_ms",
        env: "HERALD_ROLLUP_INTERVAL_MS",
        flag: Some("rollup-interval-ms"),
        value_name: "MS",
        help: "Statistics: how often new events are folded into the rollups when fewer than a batch arrived (answers also count the events not folded yet, so they stay exact)",
        default: |c| c.rollup_interval_ms.to_string(),
        set: |c, v| parse_into(v, &mut c.rollup_interval_ms),
    },
    Setting {
        key: "wait_poll_ms",
        env: "HERALD_WAIT_POLL_MS",
        flag: Some("wait-poll-ms"),
        value_name: "MS",
        help: "Workflow waits: how often the matcher reads the commit log and times out due waits without a local commit (other instances' events and waits), and how often a long poll re-reads its wait",
        default: |c| c.wait_poll_ms.to_string(),
        set: |c, v| parse_into(v, &mut c.wait_poll_ms),
    },
    Setting {
        key: "wait_max_timeout_secs",
        env: "HERALD_WAIT_MAX_TIMEOUT_SECS",
        flag: Some("wait-max-timeout-secs"),
        value_name: "SECS",
        help: "Workflow waits: the longest timeout a wait may ask",
        default: |c| c.wait_max_timeout_secs.to_string(),
        set: |c, v| parse_into(v, &mut c.wait_max_timeout_secs),
    },
    Setting {
        key: "wait_max_lookback_secs",
        env: "HERALD_WAIT_MAX_LOOKBACK_SECS",
        flag: Some("wait-max-lookback-secs"),
        value_name: "SECS",
        help: "Workflow waits: the longest lookback a wait may ask (events stored that long before it still match)",
        default: |c| c.wait_max_lookback_secs.to_string(),
        set: |c, v| parse_into(v, &mut c.wait_max_lookback_secs),
    },
    Setting {
        key: "wait_long_poll_max_secs",
        env: "HERALD_WAIT_LONG_POLL_MAX_SECS",
        flag: Some("wait-long-poll-max-secs"),
        value_name: "SECS",
        help: "Workflow waits: the longest ?wait= a GET of a wait may hold the request open",
        default: |c| c.wait_long_poll_max_secs.to_string(),
        set: |c, v| parse_into(v, &mut c.wait_long_poll_max_secs),
    },
    Setting {
        key: "collect_trusted_proxies",
        env: "HERALD_COLLECT_TRUSTED_PROXIES",
        flag: Some("collect-trusted-proxies"),
        value_name: "CIDRS",
        help: "Comma-separated addresses or CIDR ranges of proxies whose X-Forwarded-For names a collection client; empty: the socket's peer is the client",
        default: |c| {
            if c.collect_trusted_proxies.is_empty() {
                unset()
            } else {
                c.collect_trusted_proxies.clone()
            }
        },
        set: |c, v| {
            c.collect_trusted_proxies = v.to_string();
            Ok(())
        },
    },
    Setting {
        key: "collect_client_ip",
        env: "HERALD_COLLECT_CLIENT_IP",
        flag: Some("collect-client-ip"),
        value_name: "POLICY",
        help: "What collection keeps of a client's IP: keep, truncate (/24, /48), hash or drop",
        default: |c| c.collect_client_ip.clone(),
        set: |c, v| {
            c.collect_client_ip = v.trim().to_string();
            Ok(())
        },
    },
    Setting {
        key: "collect_key_rate",
        env: "HERALD_COLLECT_KEY_RATE",
        flag: Some("collect-key-rate"),
        value_name: "N",
        help: "Collection requests a second per write key (bursts of one second's worth); beyond: 429",
        default: |c| c.collect_key_rate.to_string(),
        set: |c, v| parse_into(v, &mut c.collect_key_rate),
    },
    Setting {
        key: "collect_ip_rate",
        env: "HERALD_COLLECT_IP_RATE",
        flag: Some("collect-ip-rate"),
        value_name: "N",
        help: "Collection requests a second per client IP (bursts of one second's worth); beyond: 429",
        default: |c| c.collect_ip_rate.to_string(),
        set: |c, v| parse_into(v, &mut c.collect_ip_rate),
    },
    Setting {
        key: "segment_max_message_bytes",
        env: "HERALD_SEGMENT_MAX_MESSAGE_BYTES",
        flag: Some("segment-max-message-bytes"),
        value_name: "BYTES",
        help: "Largest Segment-API message: a single call's body (400 beyond) or one message of a batch (rejected alone)",
        default: |c| c.segment_max_message_bytes.to_string(),
        set: |c, v| parse_into(v, &mut c.segment_max_message_bytes),
    },
    Setting {
        key: "segment_max_batch_bytes",
        env: "HERALD_SEGMENT_MAX_BATCH_BYTES",
        flag: Some("segment-max-batch-bytes"),
        value_name: "BYTES",
        help: "Largest Segment-API batch body (400 beyond)",
        default: |c| c.segment_max_batch_bytes.to_string(),
        set: |c, v| parse_into(v, &mut c.segment_max_batch_bytes),
    },
    Setting {
        key: "metrics_token",
        env: "HERALD_METRICS_TOKEN",
        flag: None,
        value_name: "TOKEN",
        help: "GET /metrics answers only requests sending `Authorization: Bearer <it>` (16+ characters); unset: open on the listen address",
        default: |_| "unset".into(),
        set: |c, v| {
            c.metrics_token = (!v.is_empty()).then(|| Secret(v.to_string()));
            Ok(())
        },
    },
    Setting {
        key: "self_events",
        env: "HERALD_SELF_EVENTS",
        flag: Some("self-events"),
        value_name: "true|false",
        help: "Store each API request's outcome as a `system` event of the operator tenant `_herald` (queryable with the root key)",
        default: |c| c.self_events.to_string(),
        set: |c, v| parse_into(v, &mut c.self_events),
    },
    Setting {
        key: "self_events_buffer",
        env: "HERALD_SELF_EVENTS_BUFFER",
        flag: Some("self-events-buffer"),
        value_name: "EVENTS",
        help: "Self events waiting to be stored, at most; beyond, new ones are dropped and counted in /metrics (herald_self_events_total{outcome=\"dropped_buffer_full\"})",
        default: |c| c.self_events_buffer.to_string(),
        set: |c, v| parse_into(v, &mut c.self_events_buffer),
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Config` fields, read from its pretty `Debug` output (one field
    /// per line at the first indent).
    fn config_fields() -> Vec<String> {
        format!("{:#?}", Config::default())
            .lines()
            .filter_map(|l| l.strip_prefix("    ")?.split_once(": ").map(|(k, _)| k))
            .filter(|k| !k.starts_with(' '))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_config_field_has_one_setting_named_consistently() {
        let fields = config_fields();
        let keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        let mut sorted_fields = fields.clone();
        sorted_fields.sort();
        let mut sorted_keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        sorted_keys.sort();
        assert_eq!(sorted_keys, sorted_fields, "one row per Config field");
        for s in SETTINGS {
            assert_eq!(s.env, format!("HERALD_{}", s.key.to_uppercase()), "{s:?}");
            if let Some(flag) = s.flag {
                assert_eq!(flag, s.key.replace('_', "-"), "{s:?}");
            }
        }
    }

    #[test]
    fn each_shown_default_is_the_default() {
        // Secrets and the unset URLs show words, not values.
        let words = [
            "root_key",
            "hash_secret",
            "database_url",
            "nats_url",
            "delivery_allowed_networks",
            "collect_trusted_proxies",
            "metrics_token",
        ];
        for s in SETTINGS.iter().filter(|s| !words.contains(&s.key)) {
            let shown = (s.default)(&Config::default());
            let mut c = Config::default();
            s.apply(&mut c, &shown)
                .unwrap_or_else(|e| panic!("{}: default {shown:?}: {e}", s.key));
            assert_eq!(
                format!("{c:?}"),
                format!("{:?}", Config::default()),
                "{}: the default shown ({shown}) is not the default",
                s.key
            );
        }
    }
}
