//! A JetStream stream of one test's own on the real NATS
//! (`HERALD_TEST_NATS_URL`), deleted afterwards, and a reader that sees
//! what the stream holds.

use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;

use crate::services::unique;
use crate::wait::wait_for;

/// One message as JetStream stored it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    /// `Nats-Msg-Id` (an event's id for an event message).
    pub msg_id: String,
    pub payload: serde_json::Value,
}

/// The message ids of `messages`, in order.
pub fn msg_ids(messages: &[Stored]) -> Vec<String> {
    messages.iter().map(|m| m.msg_id.clone()).collect()
}

/// A JetStream stream of one test, deleted afterwards. Herald creates it;
/// `name` and `prefix` are what to configure it with.
#[derive(Debug)]
pub struct NatsStream {
    pub js: jetstream::Context,
    /// The stream's name (`IT_…`).
    pub name: String,
    /// The subject prefix of the stream's messages (`it-…`).
    pub prefix: String,
}

impl NatsStream {
    pub async fn new(url: &str) -> NatsStream {
        let client = async_nats::connect(url)
            .await
            .expect("HERALD_TEST_NATS_URL is set but NATS is unreachable");
        let name = unique("IT").to_uppercase();
        NatsStream {
            js: jetstream::new(client),
            prefix: name.to_lowercase().replace('_', "-"),
            name,
        }
    }

    /// Whether Herald has created the stream yet.
    pub async fn exists(&self) -> bool {
        self.js.get_stream(&self.name).await.is_ok()
    }

    /// The stream's configuration as JetStream reports it now.
    pub async fn config(&self) -> Option<jetstream::stream::Config> {
        let stream = self.js.get_stream(&self.name).await.ok()?;
        Some(stream.cached_info().config.clone())
    }

    /// Every message on subjects matching `filter` (relative to the prefix,
    /// like `events.>`), in stream order, read by a fresh consumer.
    pub async fn read(&self, filter: &str) -> Vec<Stored> {
        self.read_subjects(&format!("{}.{filter}", self.prefix))
            .await
    }

    /// Every message on subjects matching the whole `filter`, in stream order.
    pub async fn read_subjects(&self, filter: &str) -> Vec<Stored> {
        let Ok(stream) = self.js.get_stream(&self.name).await else {
            return Vec::new();
        };
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                filter_subject: filter.to_string(),
                ack_policy: jetstream::consumer::AckPolicy::None,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut out = Vec::new();
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(1000)
                .expires(Duration::from_millis(300))
                .messages()
                .await
                .expect("fetch");
            let before = out.len();
            while let Some(Ok(m)) = batch.next().await {
                out.push(Stored {
                    subject: m.subject.to_string(),
                    msg_id: m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Msg-Id"))
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    payload: serde_json::from_slice(&m.payload).unwrap_or_default(),
                });
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// Reads until `filter` holds at least `n` messages, for up to 30 s.
    pub async fn wait_for(&self, filter: &str, n: usize) -> Vec<Stored> {
        wait_for(
            &format!("{n} messages on {filter}"),
            Duration::from_secs(30),
            || async {
                let got = self.read(filter).await;
                if got.len() >= n {
                    Ok(got)
                } else {
                    Err(format!("JetStream holds {}", got.len()))
                }
            },
        )
        .await
    }

    /// Reads until a message about event `event_id` (its own message, or a
    /// lifecycle message naming it) is on `filter`, for up to 30 s; then
    /// everything the stream holds on `filter`.
    pub async fn wait_for_event(&self, filter: &str, event_id: &str) -> Vec<Stored> {
        wait_for(
            &format!("a message about event {event_id} on {filter}"),
            Duration::from_secs(30),
            || async {
                let got = self.read(filter).await;
                if got
                    .iter()
                    .any(|m| m.msg_id == event_id || m.payload["event_id"] == event_id)
                {
                    Ok(got)
                } else {
                    Err(format!("{} other messages", got.len()))
                }
            },
        )
        .await
    }
}

impl Drop for NatsStream {
    fn drop(&mut self) {
        let (js, name) = (self.js.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let _ = js.delete_stream(&name).await;
            });
        })
        .join();
    }
}
