//! Configuration, layered: defaults → `herald.toml` → `HERALD_*` environment
//! variables → command-line flags, validated once at start into a `Config`
//! that names every bad setting at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use herald_workers::delivery::network::{AllowedNetworks, NetworkListError};
use serde::Deserialize;

mod settings;

pub use settings::{SETTINGS, Setting};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

/// The most detailed log lines written: each level includes the ones after
/// it (`trace` everything, `error` errors only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub const ALL: [LogLevel; 5] = [
        LogLevel::Trace,
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    /// The allowed values, for help and error messages.
    pub fn allowed() -> String {
        LogLevel::ALL.map(LogLevel::as_str).join(", ")
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<LogLevel, String> {
        LogLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s.trim())
            .ok_or_else(|| format!("expected one of {}", LogLevel::allowed()))
    }
}

impl From<LogLevel> for tracing::Level {
    fn from(level: LogLevel) -> tracing::Level {
        match level {
            LogLevel::Trace => tracing::Level::TRACE,
            LogLevel::Debug => tracing::Level::DEBUG,
            LogLevel::Info => tracing::Level::INFO,
            LogLevel::Warn => tracing::Level::WARN,
            LogLevel::Error => tracing::Level::ERROR,
        }
    }
}

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Herald's settings. Every field has a default, so an empty file works.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `HERALD_LISTEN`: address to listen on.
    pub listen: SocketAddr,
    /// `HERALD_DATA_DIR`: where the embedded store and generated keys live.
    pub data_dir: PathBuf,
    /// `HERALD_ROOT_KEY`: the operator key; generated into the data dir when unset.
    pub root_key: Option<Secret>,
    /// `HERALD_HASH_SECRET`: key for per-tenant email hashes; generated into
    /// the data dir when unset. Instances sharing a store must share it.
    pub hash_secret: Option<Secret>,
    /// `HERALD_LOG`: `text` or `json`.
    pub log: LogFormat,
    /// `HERALD_LOG_LEVEL`: `trace`, `debug`, `info`, `warn` or `error`.
    pub log_level: LogLevel,
    /// `HERALD_MAX_EVENT_BYTES`: largest single event.
    pub max_event_bytes: usize,
    /// `HERALD_MAX_BATCH_EVENTS`: most events in one batch request.
    pub max_batch_events: usize,
    /// `HERALD_MAX_BATCH_BYTES`: largest batch request body (after gunzip).
    pub max_batch_bytes: usize,
    /// `HERALD_MAX_QUERY_BYTES`: largest event query body.
    pub max_query_bytes: usize,
    /// `HERALD_MAX_DEFINITION_BYTES`: largest event definition body (schema,
    /// examples and UI metadata included).
    pub max_definition_bytes: usize,
    /// `HERALD_MAX_SETTINGS_BYTES`: largest tenant settings body.
    pub max_settings_bytes: usize,
    /// `HERALD_MAX_ADMIN_BYTES`: largest admin request body (a tenant or a key).
    pub max_admin_bytes: usize,
    /// `HERALD_MAX_INFLIGHT_EVENTS`: events accepted but not yet committed,
    /// at most; beyond it ingest answers 503 with `Retry-After`.
    pub max_inflight_events: usize,
    /// `HERALD_SYNC_FULL`: fsync every commit (`true`, the default).
    pub sync_full: bool,
    /// `HERALD_WORKER_IDLE_MS`: how often the processing worker looks for work
    /// when nothing woke it.
    pub worker_idle_ms: u64,
    /// `HERALD_DATABASE_URL`: PostgreSQL (`postgres://user@host:5432/db`)
    /// instead of the embedded store, for several instances sharing one store.
    pub database_url: Option<Secret>,
    /// `HERALD_DATABASE_SCHEMA`: the PostgreSQL schema Herald's tables live in.
    pub database_schema: String,
    /// `HERALD_DATABASE_POOL_SIZE`: PostgreSQL read connections per instance.
    pub database_pool_size: usize,
    /// `HERALD_REGISTRY_REFRESH_MS`: on a shared store, how stale this
    /// instance's view of a tenant's definitions and settings may get when
    /// another instance changes them.
    pub registry_refresh_ms: u64,
    /// `HERALD_NATS_URL`: publish every stored event and lifecycle event to
    /// NATS JetStream (`nats://127.0.0.1:4222`).
    pub nats_url: Option<String>,
    /// `HERALD_NATS_STREAM`: the JetStream stream (created if missing).
    pub nats_stream: String,
    /// `HERALD_NATS_SUBJECT_PREFIX`: first token of every subject.
    pub nats_subject_prefix: String,
    /// `HERALD_NATS_MAX_AGE_SECS`: stream retention by age; 0 keeps messages
    /// until `nats_max_bytes` says otherwise.
    pub nats_max_age_secs: u64,
    /// `HERALD_NATS_MAX_BYTES`: stream retention by size; 0 is unbounded.
    pub nats_max_bytes: u64,
    /// `HERALD_NATS_DUPLICATE_WINDOW_SECS`: how long JetStream drops
    /// repeated message ids (repeats after a crash mid-publish).
    pub nats_duplicate_window_secs: u64,
    /// `HERALD_SHUTDOWN_GRACE_SECS`: on SIGTERM, how long in-flight requests
    /// may take to finish before their connections are closed (work already
    /// handed to the store still commits).
    pub shutdown_grace_secs: u64,
    /// `HERALD_DELIVERY_ALLOWED_NETWORKS`: comma-separated CIDR ranges a
    /// webhook may reach beyond the public internet (e.g. `127.0.0.0/8`
    /// for local testing); empty: public addresses only.
    pub delivery_allowed_networks: String,
    /// `HERALD_DELIVERY_SECRET_OVERLAP_SECS`: after a webhook secret's
    /// rotation, how long the previous secret still signs deliveries.
    pub delivery_secret_overlap_secs: u64,
    /// `HERALD_DELIVERY_TIMEOUT_SECS`: how long one webhook attempt may
    /// take before it counts as a timeout.
    pub delivery_timeout_secs: u64,
    /// `HERALD_DELIVERY_CONCURRENCY`: webhook attempts in flight at once,
    /// across all endpoints.
    pub delivery_concurrency: usize,
    /// `HERALD_DELIVERY_ENDPOINT_CONCURRENCY`: webhook attempts to one
    /// callback URL in flight at once; a slow endpoint holds no more.
    pub delivery_endpoint_concurrency: usize,
    /// `HERALD_DELIVERY_DISABLE_AFTER_DAYS`: a subscription whose deliveries
    /// fail without a success for this many days is turned off; 0: never.
    pub delivery_disable_after_days: u64,
    /// `HERALD_PROJECTION_SNAPSHOT_EVERY`: keep a projection's folded state
    /// every this many stream versions, so a read folds at most this many
    /// events; 0: no snapshots.
    pub projection_snapshot_every: u64,
    /// `HERALD_PROJECTION_CACHE_ENTRIES`: current projections kept in
    /// memory (the most recently read); 0: no cache.
    pub projection_cache_entries: usize,
    /// `HERALD_TAIL_HEARTBEAT_MS`: the live tail sends an SSE comment after
    /// this long without an event, so proxies keep idle connections open.
    pub tail_heartbeat_ms: u64,
    /// `HERALD_TAIL_BUFFER_EVENTS`: events waiting for one tail client, at
    /// most; a client further behind is sent an `overflow` event and
    /// disconnected, so a slow reader never grows the server's memory.
    pub tail_buffer_events: usize,
    /// `HERALD_TAIL_POLL_MS`: how often the tail hub reads the commit log
    /// when this instance committed nothing (events stored by other
    /// instances sharing a PostgreSQL store arrive within it).
    pub tail_poll_ms: u64,
    /// `HERALD_ROLLUPS`: whether the rollup follower runs.
    pub rollups: bool,
    /// `HERALD_ROLLUP_INTERVAL_MS`: how often the rollup follower folds
    /// new events into the statistics rollups when less than a batch came.
    pub rollup_interval_ms: u64,
    /// `HERALD_WAIT_POLL_MS`: how often the wait matcher reads the commit
    /// log and times out due waits without a local commit (events and
    /// waits of other instances sharing a PostgreSQL store), and how often
    /// a long poll re-reads its wait.
    pub wait_poll_ms: u64,
    /// `HERALD_WAIT_MAX_TIMEOUT_SECS`: the longest a wait may stay open.
    pub wait_max_timeout_secs: u64,
    /// `HERALD_WAIT_MAX_LOOKBACK_SECS`: the longest lookback a wait may ask.
    pub wait_max_lookback_secs: u64,
    /// `HERALD_WAIT_LONG_POLL_MAX_SECS`: the longest `?wait=` a read of a
    /// wait may hold its request open.
    pub wait_long_poll_max_secs: u64,
    /// `HERALD_COLLECT_TRUSTED_PROXIES`: comma-separated addresses or CIDR
    /// ranges of the proxies in front of Herald; only their
    /// `X-Forwarded-For` names a collection client's address.
    pub collect_trusted_proxies: String,
    /// `HERALD_COLLECT_CLIENT_IP`: what collection keeps of a client's
    /// address: `keep`, `truncate` (/24, /48), `hash` or `drop`.
    pub collect_client_ip: String,
    /// `HERALD_COLLECT_KEY_RATE`: collection requests a second one write
    /// key may make (bursts of one second's worth); beyond, 429.
    pub collect_key_rate: u32,
    /// `HERALD_COLLECT_IP_RATE`: collection requests a second one client
    /// address may make (bursts of one second's worth); beyond, 429.
    pub collect_ip_rate: u32,
    /// `HERALD_SEGMENT_MAX_MESSAGE_BYTES`: the largest Segment-API message
    /// (a single call's body; one message of a batch), as Segment's 32 KB.
    pub segment_max_message_bytes: usize,
    /// `HERALD_SEGMENT_MAX_BATCH_BYTES`: the largest Segment-API batch
    /// body, as Segment's 500 KB.
    pub segment_max_batch_bytes: usize,
    /// `HERALD_METRICS_TOKEN`: when set, `GET /metrics` wants it as a
    /// bearer token; unset, the endpoint is open on the listen address.
    pub metrics_token: Option<Secret>,
    /// `HERALD_SELF_EVENTS`: store each API request's outcome as a
    /// `system` event of the operator tenant ([`crate::self_events::OPERATOR_TENANT`]).
    pub self_events: bool,
    /// `HERALD_SELF_EVENTS_BUFFER`: self events waiting to be stored, at
    /// most; a request finding it full drops its event (counted in
    /// `/metrics`) rather than wait.
    pub self_events_buffer: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("./herald-data"),
            root_key: None,
            hash_secret: None,
            log: LogFormat::Text,
            log_level: LogLevel::Info,
            max_event_bytes: 64 * 1024,
            max_batch_events: 1000,
            max_batch_bytes: 5 * 1024 * 1024,
            max_query_bytes: 64 * 1024,
            max_definition_bytes: 512 * 1024,
            max_settings_bytes: 16 * 1024,
            max_admin_bytes: 16 * 1024,
            max_inflight_events: 100_000,
            sync_full: true,
            worker_idle_ms: 500,
            database_url: None,
            database_schema: "herald".into(),
            database_pool_size: 16,
            registry_refresh_ms: 1000,
            nats_url: None,
            nats_stream: "HERALD".into(),
            nats_subject_prefix: "herald".into(),
            nats_max_age_secs: 7 * 24 * 3600,
            nats_max_bytes: 0,
            nats_duplicate_window_secs: 600,
            shutdown_grace_secs: 30,
            delivery_allowed_networks: String::new(),
            delivery_secret_overlap_secs: 86_400,
            delivery_timeout_secs: 15,
            delivery_concurrency: 64,
            delivery_endpoint_concurrency: 8,
            delivery_disable_after_days: 5,
            projection_snapshot_every: 100,
            projection_cache_entries: 10_000,
            tail_heartbeat_ms: 15_000,
            tail_buffer_events: 1000,
            tail_poll_ms: 250,
            rollups: true,
            rollup_interval_ms: 1000,
            wait_poll_ms: 250,
            wait_max_timeout_secs: 30 * 86_400,
            wait_max_lookback_secs: 86_400,
            wait_long_poll_max_secs: 60,
            collect_trusted_proxies: String::new(),
            collect_client_ip: "truncate".into(),
            collect_key_rate: 1000,
            collect_ip_rate: 100,
            segment_max_message_bytes: 32 * 1024,
            segment_max_batch_bytes: 500 * 1024,
            metrics_token: None,
            self_events: true,
            self_events_buffer: 10_000,
        }
    }
}

/// Flag values, which win over everything else: `(key, value)` pairs,
/// the key naming a [`Setting`].
#[derive(Debug, Clone, Default)]
pub struct Overrides(Vec<(String, String)>);

impl Overrides {
    /// Sets the setting `key` (as in `herald.toml`) to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.push((key.to_string(), value.into()));
    }

    /// The same, chained.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }
}

/// Every problem found while loading; shown to the operator all at once.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// `HERALD_*` names that belong to Herald's test suite and bench tool, not
/// to the server.
const OTHER_TOOLS: &[&str] = &["HERALD_TEST_", "HERALD_BENCH_"];

impl Config {
    /// Loads the layers. `file` is `--config`; without it `./herald.toml` is
    /// read when present. `env` is the process environment (a parameter so
    /// tests need not touch the real one).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        flags: Overrides,
    ) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut config = match file.map(Path::to_path_buf).or_else(|| {
            let default = PathBuf::from("herald.toml");
            default.exists().then_some(default)
        }) {
            None => Config::default(),
            // A file that cannot be used is one problem among the others:
            // the rest is still checked over the defaults.
            Some(path) => match std::fs::read_to_string(&path) {
                Err(e) => {
                    problems.push(format!("cannot read {}: {e}", path.display()));
                    Config::default()
                }
                Ok(text) => toml::from_str(&text).unwrap_or_else(|e| {
                    problems.push(format!("{}: {e}", path.display()));
                    Config::default()
                }),
            },
        };

        for (name, value) in env {
            if !name.starts_with("HERALD_") {
                continue;
            }
            match Setting::by_env(&name) {
                Some(setting) => {
                    if let Err(e) = setting.apply(&mut config, &value) {
                        problems.push(format!("{name}={value:?}: {e}"));
                    }
                }
                None if OTHER_TOOLS.iter().any(|p| name.starts_with(p)) => {}
                // A misspelt setting would otherwise be silently ignored.
                None => problems.push(format!(
                    "{name}: not a Herald setting{}",
                    closest(&name).map_or(String::new(), |c| format!(" (did you mean {c}?)"))
                )),
            }
        }

        for (key, value) in flags.0 {
            match Setting::by_key(&key) {
                Some(setting) => {
                    if let Err(e) = setting.apply(&mut config, &value) {
                        let flag = setting.flag.unwrap_or(setting.key);
                        problems.push(format!("--{flag} {value:?}: {e}"));
                    }
                }
                None => problems.push(format!("--{key}: not a Herald setting")),
            }
        }

        problems.extend(config.check());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError(problems))
        }
    }

    /// The ranges `delivery_allowed_networks` allows (checked when loading).
    pub fn allowed_networks(&self) -> Result<AllowedNetworks, NetworkListError> {
        AllowedNetworks::parse(&self.delivery_allowed_networks)
    }

    /// The proxies `collect_trusted_proxies` names (checked when loading).
    pub fn trusted_proxies(&self) -> Result<Vec<herald_collect::client::IpNet>, String> {
        herald_collect::client::parse_networks(&self.collect_trusted_proxies)
    }

    /// What collection keeps of a client's address (checked when loading).
    pub fn client_ip_policy(&self) -> Result<herald_collect::client::IpPolicy, String> {
        herald_collect::client::IpPolicy::parse(&self.collect_client_ip)
            .ok_or_else(|| "expected keep, truncate, hash or drop".to_string())
    }

    fn check(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = self.trusted_proxies() {
            p.push(format!("collect_trusted_proxies: {e}"));
        }
        if let Err(e) = self.client_ip_policy() {
            p.push(format!(
                "collect_client_ip `{}`: {e}",
                self.collect_client_ip
            ));
        }
        for (key, bytes) in [
            ("segment_max_message_bytes", self.segment_max_message_bytes),
            ("segment_max_batch_bytes", self.segment_max_batch_bytes),
        ] {
            if !(256..=16 * 1024 * 1024).contains(&bytes) {
                p.push(format!("{key} {bytes}: expected 256 ..= 16777216"));
            }
        }
        for (key, rate) in [
            ("collect_key_rate", self.collect_key_rate),
            ("collect_ip_rate", self.collect_ip_rate),
        ] {
            if rate == 0 {
                p.push(format!("{key}: must be at least 1"));
            }
        }
        if !(256..=16 * 1024 * 1024).contains(&self.max_event_bytes) {
            p.push(format!(
                "max_event_bytes {}: expected 256 ..= 16777216",
                self.max_event_bytes
            ));
        }
        for (key, bytes) in [
            ("max_query_bytes", self.max_query_bytes),
            ("max_definition_bytes", self.max_definition_bytes),
            ("max_settings_bytes", self.max_settings_bytes),
            ("max_admin_bytes", self.max_admin_bytes),
        ] {
            if !(256..=16 * 1024 * 1024).contains(&bytes) {
                p.push(format!("{key} {bytes}: expected 256 ..= 16777216"));
            }
        }
        if let Err(e) = self.allowed_networks() {
            p.push(format!("delivery_allowed_networks: {e}"));
        }
        if !(1..=100_000).contains(&self.max_batch_events) {
            p.push(format!(
                "max_batch_events {}: expected 1 ..= 100000",
                self.max_batch_events
            ));
        }
        if self.max_batch_bytes < self.max_event_bytes {
            p.push(format!(
                "max_batch_bytes {} is below max_event_bytes {}: a batch must hold at least one event",
                self.max_batch_bytes, self.max_event_bytes
            ));
        }
        if let Some(Secret(k)) = &self.root_key
            && k.len() < 16
        {
            p.push("root_key: must be at least 16 characters".into());
        }
        if let Some(Secret(k)) = &self.hash_secret
            && k.len() < 16
        {
            p.push("hash_secret: must be at least 16 characters".into());
        }
        if let Some(Secret(k)) = &self.metrics_token
            && k.len() < 16
        {
            p.push("metrics_token: must be at least 16 characters".into());
        }
        if self.self_events_buffer == 0 {
            p.push("self_events_buffer: must be at least 1".into());
        }
        if let Some(Secret(url)) = &self.database_url
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            p.push("database_url: expected postgres://user@host:port/database".into());
        }
        if !herald_store::postgres::valid_schema_name(&self.database_schema) {
            p.push(format!(
                "database_schema {:?}: use lower-case letters, digits and `_`, starting with a letter or `_` (at most 63)",
                self.database_schema
            ));
        }
        if !(1..=1000).contains(&self.database_pool_size) {
            p.push(format!(
                "database_pool_size {}: expected 1 ..= 1000",
                self.database_pool_size
            ));
        }
        if self.nats_stream.is_empty()
            || !self
                .nats_stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            p.push(format!(
                "nats_stream {:?}: use ASCII letters, digits, `-` and `_`",
                self.nats_stream
            ));
        }
        if self.nats_subject_prefix.is_empty()
            || !self.nats_subject_prefix.split('.').all(|t| {
                !t.is_empty()
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        {
            p.push(format!(
                "nats_subject_prefix {:?}: dot-separated tokens of ASCII letters, digits, `-` and `_`",
                self.nats_subject_prefix
            ));
        }
        if self.tail_heartbeat_ms == 0 {
            p.push("tail_heartbeat_ms: must be at least 1".into());
        }
        if !(1..=1_000_000).contains(&self.tail_buffer_events) {
            p.push(format!(
                "tail_buffer_events {}: expected 1 ..= 1000000",
                self.tail_buffer_events
            ));
        }
        if self.tail_poll_ms == 0 {
            p.push("tail_poll_ms: must be at least 1".into());
        }
        if self.rollup_interval_ms == 0 {
            p.push("rollup_interval_ms: must be at least 1".into());
        }
        if self.wait_poll_ms == 0 {
            p.push("wait_poll_ms: must be at least 1".into());
        }
        if self.wait_max_timeout_secs == 0 {
            p.push("wait_max_timeout_secs: must be at least 1".into());
        }
        if !(1..=3_600).contains(&self.wait_long_poll_max_secs) {
            p.push(format!(
                "wait_long_poll_max_secs {}: expected 1 ..= 3600",
                self.wait_long_poll_max_secs
            ));
        }
        if self.delivery_timeout_secs == 0 {
            p.push("delivery_timeout_secs: must be at least 1".into());
        }
        if self.delivery_concurrency == 0 {
            p.push("delivery_concurrency: must be at least 1".into());
        }
        if self.delivery_endpoint_concurrency == 0 {
            p.push("delivery_endpoint_concurrency: must be at least 1".into());
        }
        if self.nats_duplicate_window_secs == 0 {
            p.push("nats_duplicate_window_secs: must be at least 1".into());
        }
        if self.nats_max_age_secs > 0 && self.nats_duplicate_window_secs > self.nats_max_age_secs {
            p.push(format!(
                "nats_duplicate_window_secs {} exceeds nats_max_age_secs {}: JetStream requires the window within the retention",
                self.nats_duplicate_window_secs, self.nats_max_age_secs
            ));
        }
        p
    }
}

/// The known variable nearest to a misspelt one (edit distance ≤ 3).
fn closest(name: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let here = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb))
                    .min(row[j] + 1)
                    .min(here + 1);
                prev = here;
            }
        }
        row[b.len()]
    }
    SETTINGS
        .iter()
        .map(|s| (distance(name, s.env), s.env))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order_and_every_problem_is_named() {
        let dir = std::env::temp_dir().join(format!("herald-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("herald.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\nmax_batch_events = 10\nlog = \"json\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&file),
            env(&[("HERALD_LISTEN", "127.0.0.1:9001"), ("PATH", "/bin")]),
            Overrides::default().with("listen", "127.0.0.1:9002"),
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9002, "flag wins");
        assert_eq!(c.max_batch_events, 10, "file beats default");
        assert_eq!(c.log, LogFormat::Json);

        let err = Config::load(
            Some(&file),
            env(&[
                ("HERALD_MAX_EVENT_BYTES", "lots"),
                ("HERALD_LOG", "xml"),
                ("HERALD_LOG_LEVEL", "loud"),
            ]),
            Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");

        // A broken file, a misspelt variable and a bad value: all named.
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nmax_batch_evnts = 10\n").unwrap();
        let err = Config::load(
            Some(&file),
            env(&[
                ("HERALD_DATABSE_URL", "postgres://x@y/z"),
                ("HERALD_LOG", "xml"),
                ("HERALD_TEST_NATS_URL", "nats://127.0.0.1:4222"),
            ]),
            Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(err.0[0].contains("max_batch_evnts"), "{err}");
        assert!(
            err.0
                .iter()
                .any(|p| p.contains("did you mean HERALD_DATABASE_URL?")),
            "{err}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_bad_log_level_is_refused_with_the_allowed_values_in_every_layer() {
        let allowed = "expected one of trace, debug, info, warn, error";
        let err = Config::load(
            None,
            env(&[("HERALD_LOG_LEVEL", "loud")]),
            Overrides::default().with("log_level", "verbose"),
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            [
                format!("HERALD_LOG_LEVEL=\"loud\": {allowed}"),
                format!("--log-level \"verbose\": {allowed}"),
            ],
        );

        let dir = tempfile_dir("log-level");
        let file = dir.join("herald.toml");
        std::fs::write(&file, "log_level = \"chatty\"\n").unwrap();
        let err = Config::load(Some(&file), env(&[]), Overrides::default()).unwrap_err();
        assert!(
            err.0[0].contains("expected one of `trace`, `debug`, `info`, `warn`, `error`"),
            "{err}"
        );
        std::fs::write(&file, "log_level = \"warn\"\n").unwrap();
        let c = Config::load(
            Some(&file),
            env(&[("HERALD_LOG_LEVEL", "debug")]),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            c.log_level,
            LogLevel::Debug,
            "the environment beats the file"
        );
        assert_eq!(tracing::Level::from(c.log_level), tracing::Level::DEBUG);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn the_delivery_allow_list_is_checked_when_loading() {
        let c = Config::load(
            None,
            env(&[("HERALD_DELIVERY_ALLOWED_NETWORKS", "127.0.0.0/8, ::1/128")]),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.allowed_networks().unwrap().networks().len(), 2);
        let err = Config::load(
            None,
            env(&[("HERALD_DELIVERY_ALLOWED_NETWORKS", "127.0.0.1/8")]),
            Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("delivery_allowed_networks: entry 1 `127.0.0.1/8`"),
            "{err}"
        );
    }

    #[test]
    fn every_body_limit_is_configurable_and_bounded() {
        let c = Config::load(
            None,
            env(&[
                ("HERALD_MAX_QUERY_BYTES", "1000"),
                ("HERALD_MAX_DEFINITION_BYTES", "2000"),
            ]),
            Overrides::default()
                .with("max_settings_bytes", "3000")
                .with("max_admin_bytes", "4000"),
        )
        .unwrap();
        assert_eq!(
            (
                c.max_query_bytes,
                c.max_definition_bytes,
                c.max_settings_bytes,
                c.max_admin_bytes
            ),
            (1000, 2000, 3000, 4000)
        );
        let err = Config::load(
            None,
            env(&[("HERALD_MAX_ADMIN_BYTES", "10")]),
            Overrides::default().with("max_query_bytes", "99999999"),
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            [
                "max_query_bytes 99999999: expected 256 ..= 16777216",
                "max_admin_bytes 10: expected 256 ..= 16777216",
            ],
        );
    }

    /// A fresh directory of this test's own under the temp dir.
    fn tempfile_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herald-config-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn flags_go_through_the_settings_table_and_are_named_by_flag() {
        let c = Config::load(
            None,
            env(&[("HERALD_NATS_STREAM", "FROM_ENV")]),
            Overrides::default()
                .with("nats_stream", "FROM_FLAG")
                .with("database_pool_size", "8"),
        )
        .unwrap();
        assert_eq!(
            (c.nats_stream.as_str(), c.database_pool_size),
            ("FROM_FLAG", 8)
        );
        let err = Config::load(
            None,
            env(&[]),
            Overrides::default()
                .with("listen", "nowhere")
                .with("log", "xml")
                .with("colour", "blue"),
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(err.0[0].starts_with("--listen \"nowhere\": "), "{err}");
        assert_eq!(err.0[1], "--log \"xml\": expected `text` or `json`");
        assert_eq!(err.0[2], "--colour: not a Herald setting");
    }
}
