//! Publishing to NATS JetStream, every stored event and every lifecycle
//! event (`event.stored`, `event.processed.*`): the first follower of the
//! commit log, plus the lifecycle outbox.
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
//! | lifecycle (`event.stored`, `event.processed.success`, `event.processed.failed`, `delivery.exhausted`, `subscription.disabled`, `event.replay.started`, `event.replay.completed`) | `{p}.lifecycle.{tenant}.{kind}` |
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

use crate::follower::{CommitLogFollower, CommitLogHandler, Follow};

mod stream;
pub(crate) mod subject;

pub use stream::{reconcile_stream, subject_covers};
pub use subject::{event_subject, lifecycle_subject, subject_token, type_tokens, unescape_token};

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

/// The name of the publisher's commit-log cursor for `stream` (its lag is
/// the last committed `seq` minus this cursor).
pub fn cursor_name(stream: &str) -> String {
    format!("nats:{stream}")
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

    /// The publisher's NATS connection, once made (processors publish on it).
    pub fn client(&self) -> Option<async_nats::Client> {
        self.client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

/// The follower's handler: each stored event as its canonical JSON on its
/// event subject, plus its `event.stored` notification, both acked by
/// JetStream before the step counts as done.
struct JetStreamSink {
    settings: NatsSettings,
    js: jetstream::Context,
}

impl CommitLogHandler for JetStreamSink {
    type Error = PublishError;

    async fn handle(&mut self, events: &[SequencedEvent]) -> Result<(), PublishError> {
        let mut acks = Vec::with_capacity(events.len() * 2);
        for e in events {
            acks.push(self.send(self.event_message(e)).await?);
            acks.push(self.send(self.stored_message(e)).await?);
        }
        self.confirm(acks).await?;
        Ok(())
    }
}

impl JetStreamSink {
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
}

/// Publishes from the store's cursor; one `step` per call (tests drive it
/// directly), [`Publisher::run`] is the loop.
pub struct Publisher {
    store: Store,
    /// The commit log from the cursor `nats:{stream}`.
    follower: CommitLogFollower,
    sink: JetStreamSink,
    stream_ready: bool,
    batch: usize,
    pub status: Arc<PublisherStatus>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("settings", &self.sink.settings)
            .field("cursor", &self.follower.name())
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
        let batch = 500;
        Ok(Publisher {
            follower: CommitLogFollower::new(store.clone(), cursor_name(&settings.stream), batch),
            store,
            sink: JetStreamSink { settings, js },
            stream_ready: false,
            batch,
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
        let s = &self.sink.settings;
        let wanted = jetstream::stream::Config {
            name: s.stream.clone(),
            subjects: vec![format!("{}.>", s.subject_prefix)],
            max_age: s.max_age.unwrap_or_default(),
            max_bytes: s.max_bytes.unwrap_or(-1),
            duplicate_window: s.duplicate_window,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let js = &self.sink.js;
        let stream = js
            .get_or_create_stream(wanted.clone())
            .await
            .map_err(|e| PublishError::Nats(format!("stream {}: {e}", s.stream)))?;
        if let Some((updated, changes)) = reconcile_stream(&stream.cached_info().config, &wanted) {
            js.update_stream(&updated).await.map_err(|e| {
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

    /// Publishes the next stored events (through the follower: the cursor
    /// moves only after every ack) and then the lifecycle notifications
    /// waiting in the store's outbox (forgotten only after every ack).
    pub async fn step(&mut self) -> Result<Step, PublishError> {
        self.ensure_stream().await?;
        let mut published = match self.follower.step(&mut self.sink).await? {
            // Each event and its `event.stored` notification.
            Follow::Handled { events, .. } => events * 2,
            Follow::Caught => 0,
        };
        let pending = self.store.pending_lifecycle(self.batch).await?;
        if !pending.is_empty() {
            let mut acks = Vec::with_capacity(pending.len());
            for p in &pending {
                let r = &p.record;
                let msg = Publish::build()
                    .payload(Bytes::from(r.payload.clone()))
                    .message_id(match r.event_id {
                        Some(event) => format!("{event}.{}.{}", r.kind, p.id),
                        None => format!("{}.{}", r.kind, p.id),
                    })
                    .header("Content-Type", "application/json");
                acks.push(
                    self.sink
                        .send((
                            lifecycle_subject(
                                &self.sink.settings.subject_prefix,
                                &r.tenant_id,
                                r.kind.as_str(),
                            ),
                            msg,
                        ))
                        .await?,
                );
            }
            published += self.sink.confirm(acks).await?;
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

/// Sleeps `d`; `true` when `stop` flipped meanwhile.
async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}
