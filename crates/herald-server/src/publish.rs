//! Publishing to NATS JetStream (DESIGN.md §9, seed 003 §9.4).
//!
//! Every stored event goes to JetStream **after** its commit, from a
//! durable cursor over the store's commit order, never from the request
//! path: a NATS outage cannot slow or fail ingest, and loses nothing. When
//! NATS is back the backlog goes out in commit order. Each message carries
//! `Nats-Msg-Id` (the event id), so JetStream drops the repeats a crash or
//! timeout between publishing and moving the cursor can cause, within the
//! stream's duplicate window.
//!
//! Subjects (`{p}` is `nats_subject_prefix`, default `herald`):
//!
//! | what | subject |
//! |---|---|
//! | a stored event (its canonical JSON) | `{p}.events.{tenant}.{category}.{event_type}` |
//! | lifecycle (`event.stored`, `event.processed.success`, `event.processed.failed`) | `{p}.lifecycle.{tenant}.{kind}` |
//!
//! An event type's dots stay subject separators, so `order.created` can be
//! matched by `{p}.events.acme.business.order.>`. Within a token, every
//! byte outside `A-Z a-z 0-9 - _` is written `~XX` (its hex), `~` included,
//! and an empty token (as in `a..b`) is `~`; spaces, `*`, `>` and non-ASCII
//! text are therefore always safe. [`subject_token`] and [`type_tokens`]
//! implement it; [`unescape_token`] reverses it.
//!
//! With several instances on one PostgreSQL, one at a time publishes: the
//! one holding the store's publisher lease.
//!
//! The stream is created if missing; an existing one is brought to the
//! configured retention and given the prefix's subjects
//! ([`reconcile_stream`]), since JetStream otherwise keeps the settings it
//! was created with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, message::PublishMessage as Publish};
use bytes::Bytes;
use herald_store::{SequencedEvent, Store, StoreError};
use tokio::sync::{Notify, watch};

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub url: String,
    /// The JetStream stream, created if missing.
    pub stream: String,
    pub subject_prefix: String,
    /// Retention: messages older than this are dropped (`None`: kept).
    pub max_age: Option<Duration>,
    /// Retention: the stream's size bound in bytes (`None`: unbounded).
    pub max_bytes: Option<i64>,
    /// How long JetStream remembers message ids to drop repeats.
    pub duplicate_window: Duration,
}

/// What the publisher has done, for `/health`.
#[derive(Debug, Default)]
pub struct PublisherStatus {
    pub published: AtomicU64,
    pub last_error: std::sync::Mutex<Option<String>>,
    client: std::sync::Mutex<Option<async_nats::Client>>,
}

impl PublisherStatus {
    pub fn connected(&self) -> bool {
        self.client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|c| c.connection_state() == async_nats::connection::State::Connected)
    }

    fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    pub fn error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Why a publishing step stopped.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("nats: {0}")]
    Nats(String),
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Published this many messages.
    Published(usize),
    /// Nothing was waiting.
    Idle,
}

/// One escaped subject token (see the module doc).
pub fn subject_token(s: &str) -> String {
    if s.is_empty() {
        return "~".into();
    }
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// An event type as subject tokens: its dots separate tokens.
pub fn type_tokens(event_type: &str) -> String {
    event_type
        .split('.')
        .map(subject_token)
        .collect::<Vec<_>>()
        .join(".")
}

/// The text of one escaped token; `None` if it is not a valid escape.
pub fn unescape_token(token: &str) -> Option<String> {
    if token == "~" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'~' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The subject of a stored event.
pub fn event_subject(prefix: &str, tenant: &str, category: &str, event_type: &str) -> String {
    format!(
        "{prefix}.events.{}.{}.{}",
        subject_token(tenant),
        subject_token(category),
        type_tokens(event_type)
    )
}

/// The subject of a lifecycle notification (`kind` like `event.stored`).
pub fn lifecycle_subject(prefix: &str, tenant: &str, kind: &str) -> String {
    format!(
        "{prefix}.lifecycle.{}.{}",
        subject_token(tenant),
        type_tokens(kind)
    )
}

/// Publishes from the store's cursor; one `step` per call (tests drive it
/// directly), [`Publisher::run`] is the loop.
pub struct Publisher {
    store: Store,
    settings: NatsSettings,
    js: jetstream::Context,
    stream_ready: bool,
    cursor: String,
    batch: usize,
    pub status: Arc<PublisherStatus>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Connects in the background: Herald starts (and ingests) whether or
    /// not NATS is up, and the client keeps reconnecting.
    pub async fn connect(store: Store, settings: NatsSettings) -> Result<Publisher, PublishError> {
        let client = async_nats::ConnectOptions::new()
            .name("herald")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100u64 << attempts.min(5)).min(2000))
            })
            .connect(settings.url.as_str())
            .await
            .map_err(|e| PublishError::Nats(format!("{}: {e}", settings.url)))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_secs(5));
        let status = Arc::new(PublisherStatus::default());
        *status.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        Ok(Publisher {
            cursor: format!("nats:{}", settings.stream),
            store,
            settings,
            js,
            stream_ready: false,
            batch: 500,
            status,
        })
    }

    /// The stream as configured: created so if missing, and an existing
    /// one brought to the configured retention and subjects (see
    /// [`reconcile_stream`]), saying what changed.
    async fn ensure_stream(&mut self) -> Result<(), PublishError> {
        if self.stream_ready {
            return Ok(());
        }
        let s = &self.settings;
        let wanted = jetstream::stream::Config {
            name: s.stream.clone(),
            subjects: vec![format!("{}.>", s.subject_prefix)],
            max_age: s.max_age.unwrap_or_default(),
            max_bytes: s.max_bytes.unwrap_or(-1),
            duplicate_window: s.duplicate_window,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let stream = self
            .js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| PublishError::Nats(format!("stream {}: {e}", s.stream)))?;
        if let Some((updated, changes)) = reconcile_stream(&stream.cached_info().config, &wanted) {
            self.js.update_stream(&updated).await.map_err(|e| {
                PublishError::Nats(format!(
                    "stream {}: cannot apply {}: {e}",
                    s.stream,
                    changes.join(", ")
                ))
            })?;
            tracing::info!(stream = %s.stream, changes = %changes.join(", "), "updated the JetStream stream to the configured settings");
        }
        self.stream_ready = true;
        Ok(())
    }

    /// Publishes the next stored events and lifecycle notifications, waits
    /// for JetStream's acks, then moves the cursor (and forgets the
    /// published notifications). Nothing moves unless every ack came back.
    pub async fn step(&mut self) -> Result<Step, PublishError> {
        self.ensure_stream().await?;
        let after = self.store.cursor(&self.cursor).await?;
        let events = self.store.events_after(after, self.batch).await?;
        let mut published = 0;
        if let Some(last) = events.last().map(|e| e.seq) {
            let mut acks = Vec::with_capacity(events.len() * 2);
            for e in &events {
                acks.push(self.send(self.event_message(e)).await?);
                acks.push(self.send(self.stored_message(e)).await?);
            }
            published += self.confirm(acks).await?;
            self.store.advance_cursor(&self.cursor, after, last).await?;
        }
        let pending = self.store.pending_lifecycle(self.batch).await?;
        if !pending.is_empty() {
            let mut acks = Vec::with_capacity(pending.len());
            for p in &pending {
                let r = &p.record;
                let msg = Publish::build()
                    .payload(Bytes::from(r.payload.clone()))
                    .message_id(format!("{}.{}.{}", r.event_id, r.kind, p.id))
                    .header("Content-Type", "application/json");
                acks.push(
                    self.send((
                        lifecycle_subject(
                            &self.settings.subject_prefix,
                            &r.tenant_id,
                            r.kind.as_str(),
                        ),
                        msg,
                    ))
                    .await?,
                );
            }
            published += self.confirm(acks).await?;
            self.store
                .delete_lifecycle(pending.iter().map(|p| p.id).collect())
                .await?;
        }
        self.status
            .published
            .fetch_add(published as u64, Ordering::Relaxed);
        Ok(if published == 0 {
            Step::Idle
        } else {
            Step::Published(published)
        })
    }

    fn event_message(&self, e: &SequencedEvent) -> (String, Publish) {
        let subject = event_subject(
            &self.settings.subject_prefix,
            &e.tenant_id,
            &e.category,
            &e.event_type,
        );
        let msg = Publish::build()
            .payload(Bytes::from(e.body.clone()))
            .message_id(e.event_id.to_string())
            .header("Content-Type", "application/json")
            .header("Herald-Tenant", e.tenant_id.as_str())
            .header("Herald-Seq", e.seq.to_string().as_str());
        (subject, msg)
    }

    fn stored_message(&self, e: &SequencedEvent) -> (String, Publish) {
        let body = serde_json::json!({
            "type": "event.stored",
            "event_id": e.event_id,
            "tenant_id": e.tenant_id,
            "category": e.category,
            "event_type": e.event_type,
        });
        let msg = Publish::build()
            .payload(Bytes::from(body.to_string()))
            .message_id(format!("{}.stored", e.event_id))
            .header("Content-Type", "application/json");
        (
            lifecycle_subject(&self.settings.subject_prefix, &e.tenant_id, "event.stored"),
            msg,
        )
    }

    async fn send(
        &self,
        (subject, msg): (String, Publish),
    ) -> Result<jetstream::context::PublishAckFuture, PublishError> {
        self.js
            .send_publish(subject, msg)
            .await
            .map_err(|e| PublishError::Nats(e.to_string()))
    }

    async fn confirm(
        &self,
        acks: Vec<jetstream::context::PublishAckFuture>,
    ) -> Result<usize, PublishError> {
        let n = acks.len();
        for ack in acks {
            ack.await.map_err(|e| PublishError::Nats(e.to_string()))?;
        }
        Ok(n)
    }

    /// Publishes while this instance holds the store's publisher lease,
    /// until `stop` flips. Idle, it sleeps until woken or `idle` passes;
    /// after a failure it backs off (up to 5 s) and tries again.
    pub async fn run(mut self, wake: Arc<Notify>, idle: Duration, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *stop.borrow() {
                return;
            }
            let lease = match self.store.try_publisher_lease().await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    // Another instance publishes; look again later.
                    if sleep_or_stop(Duration::from_secs(2), &mut stop).await {
                        return;
                    }
                    continue;
                }
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "publisher lease unavailable; retrying");
                    if sleep_or_stop(backoff, &mut stop).await {
                        return;
                    }
                    continue;
                }
            };
            while lease.is_held() {
                if *stop.borrow() {
                    return;
                }
                match self.step().await {
                    Ok(Step::Published(_)) => {
                        backoff = Duration::from_millis(100);
                        self.status.set_error(None);
                        continue;
                    }
                    Ok(Step::Idle) => {
                        backoff = Duration::from_millis(100);
                        self.status.set_error(None);
                        tokio::select! {
                            _ = wake.notified() => {}
                            _ = tokio::time::sleep(idle) => {}
                            _ = stop.changed() => return,
                        }
                    }
                    Err(PublishError::Store(StoreError::Closed)) => return,
                    Err(e) => {
                        if self.status.error().is_none() {
                            tracing::warn!(error = %e, "publishing paused; events stay stored and go out when it recovers");
                        }
                        self.status.set_error(Some(e.to_string()));
                        self.stream_ready = false;
                        if sleep_or_stop(backoff, &mut stop).await {
                            return;
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            tracing::warn!("publisher lease lost; trying to take it again");
        }
    }
}

/// What must change for an existing stream (`current`) to have the
/// configured retention (`max_age`, `max_bytes`, `duplicate_window`) and to
/// take every subject of `wanted`: the updated config (everything else as it
/// was; subjects only ever added, so an operator's extra subjects stay) and
/// a description of each change. `None` when nothing differs.
/// JetStream keeps a stream's settings from its creation, so without this a
/// changed `HERALD_NATS_MAX_AGE_SECS` would be silently ignored.
pub fn reconcile_stream(
    current: &jetstream::stream::Config,
    wanted: &jetstream::stream::Config,
) -> Option<(jetstream::stream::Config, Vec<String>)> {
    let mut updated = current.clone();
    let mut changes = Vec::new();
    if current.max_age != wanted.max_age {
        changes.push(format!(
            "max_age {}s -> {}s",
            current.max_age.as_secs(),
            wanted.max_age.as_secs()
        ));
        updated.max_age = wanted.max_age;
    }
    // JetStream reports "no limit" as -1; 0 means the same to it.
    let bytes = |b: i64| if b <= 0 { -1 } else { b };
    if bytes(current.max_bytes) != bytes(wanted.max_bytes) {
        changes.push(format!(
            "max_bytes {} -> {}",
            bytes(current.max_bytes),
            bytes(wanted.max_bytes)
        ));
        updated.max_bytes = wanted.max_bytes;
    }
    if current.duplicate_window != wanted.duplicate_window {
        changes.push(format!(
            "duplicate_window {}s -> {}s",
            current.duplicate_window.as_secs(),
            wanted.duplicate_window.as_secs()
        ));
        updated.duplicate_window = wanted.duplicate_window;
    }
    for subject in &wanted.subjects {
        if !current
            .subjects
            .iter()
            .any(|have| subject_covers(have, subject))
        {
            changes.push(format!("subjects + {subject}"));
            updated.subjects.push(subject.clone());
        }
    }
    (!changes.is_empty()).then_some((updated, changes))
}

/// Whether every subject `filter` matches is also matched by `pattern`
/// (NATS wildcards: `*` one token, `>` one or more trailing tokens).
pub fn subject_covers(pattern: &str, filter: &str) -> bool {
    let (mut p, mut f) = (pattern.split('.'), filter.split('.'));
    loop {
        match (p.next(), f.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Sleeps `d`; `true` when `stop` flipped meanwhile.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_keep_type_dots_and_escape_everything_else() {
        assert_eq!(
            event_subject("herald", "acme", "business", "order.created"),
            "herald.events.acme.business.order.created"
        );
        assert_eq!(
            event_subject("h", "a-b_c", "system", "db error*>"),
            "h.events.a-b_c.system.db~20error~2A~3E"
        );
        assert_eq!(type_tokens("a..b."), "a.~.b.~");
        assert_eq!(type_tokens("ünï~"), "~C3~BCn~C3~AF~7E");
        assert_eq!(
            lifecycle_subject("herald", "acme", "event.processed.success"),
            "herald.lifecycle.acme.event.processed.success"
        );
    }

    #[test]
    fn a_subject_pattern_covers_what_its_wildcards_match() {
        for (pattern, filter, covers) in [
            ("herald.>", "herald.>", true),
            (">", "herald.>", true),
            ("herald.>", "herald.events.>", true),
            ("*.>", "herald.>", true),
            ("herald.*", "herald.>", false),
            ("herald.events.>", "herald.>", false),
            ("other.>", "herald.>", false),
            ("herald", "herald.>", false),
            ("herald.*.x", "herald.a.x", true),
            ("herald.*.x", "herald.a.y", false),
            ("a.b", "a.b", true),
            ("a.b", "a.b.c", false),
        ] {
            assert_eq!(
                subject_covers(pattern, filter),
                covers,
                "{pattern} ⊇ {filter}"
            );
        }
    }

    #[test]
    fn an_existing_stream_gets_the_configured_retention_and_keeps_the_rest() {
        use jetstream::stream::Config;
        let wanted = Config {
            name: "HERALD".into(),
            subjects: vec!["herald.>".into()],
            max_age: Duration::from_secs(7200),
            max_bytes: -1,
            duplicate_window: Duration::from_secs(600),
            ..Default::default()
        };
        let same = Config {
            max_bytes: 0,
            description: Some("an operator's note".into()),
            ..wanted.clone()
        };
        assert_eq!(reconcile_stream(&same, &wanted), None);

        let current = Config {
            subjects: vec!["old.>".into()],
            max_age: Duration::from_secs(3600),
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(120),
            ..same
        };
        let (updated, changes) = reconcile_stream(&current, &wanted).expect("changes");
        assert_eq!(
            changes,
            [
                "max_age 3600s -> 7200s",
                "max_bytes 1073741824 -> -1",
                "duplicate_window 120s -> 600s",
                "subjects + herald.>"
            ]
        );
        // Subjects are only added; what Herald does not manage is kept.
        assert_eq!(
            updated,
            Config {
                subjects: vec!["old.>".into(), "herald.>".into()],
                description: Some("an operator's note".into()),
                ..wanted
            }
        );
    }

    #[test]
    fn every_token_is_a_valid_nats_token_and_unescapes_to_its_text() {
        for s in [
            "",
            "plain",
            "with space",
            "tab\there",
            "*",
            ">",
            "~",
            "~41",
            "日本語",
            "emoji 😀",
            "a/b\\c",
        ] {
            let t = subject_token(s);
            assert!(!t.is_empty());
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'~'),
                "{s:?} → {t:?}"
            );
            assert_eq!(unescape_token(&t).as_deref(), Some(s), "{t}");
        }
    }
}
