//! The delivery worker: claims due deliveries, sends each to its
//! subscription's endpoint signed with the subscription's current secrets,
//! classifies the answer and records the attempt with its next step. The
//! network is behind [`WebhookSender`], so tests drive the worker with a
//! fake sender and a manual clock.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use herald_core::{Clock, Timestamp};
use herald_store::{Delivery, DeliveryAttempt, DeliveryOutcome, Store, StoreError};
use serde_json::value::RawValue;
use tokio::sync::{Notify, watch};

use super::breaker::{Admission, BreakerConfig, CircuitBreaker};
use super::classify::{AttemptResult, DEFAULT_SNIPPET_BYTES, TransportFailure, classify};
use super::schedule::{DEFAULT_RETRY_AFTER_CAP, Jitter, NextStep, RetryPolicy, next_step};
use super::signature::{WebhookMessage, WebhookSecret, build_request, webhook_body};

/// How long one attempt may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// One request to an endpoint: its URL, headers (the signed ones and the
/// subscription's own) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingWebhook {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub timeout: Duration,
}

/// What came back from one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    Response {
        status: u16,
        retry_after: Option<String>,
        body: Vec<u8>,
    },
    Failed(TransportFailure),
}

/// Sends one webhook request. Production uses HTTP; tests a fake.
pub trait WebhookSender: Send + Sync + std::fmt::Debug {
    fn send<'a>(
        &'a self,
        request: OutgoingWebhook,
    ) -> Pin<Box<dyn Future<Output = SendResult> + Send + 'a>>;
}

/// The error class a delivery whose subscription was deleted dies with.
pub const SUBSCRIPTION_DELETED: &str = "subscription_deleted";

/// The delivery worker. See the module doc.
pub struct DeliveryWorker {
    store: Store,
    clock: Arc<dyn Clock>,
    sender: Arc<dyn WebhookSender>,
    jitter: Mutex<Box<dyn Jitter + Send>>,
    /// One circuit breaker per callback URL, in memory.
    breakers: Mutex<HashMap<String, CircuitBreaker>>,
    breaker: BreakerConfig,
    timeout: Duration,
    lease: Duration,
    batch: usize,
    /// Sends in flight at once within a step.
    concurrency: usize,
}

impl std::fmt::Debug for DeliveryWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryWorker")
            .field("timeout", &self.timeout)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl DeliveryWorker {
    /// A worker with the default timeout, a lease of twice that, and
    /// batches of 64.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        sender: Arc<dyn WebhookSender>,
        jitter: Box<dyn Jitter + Send>,
    ) -> Self {
        DeliveryWorker {
            store,
            clock,
            sender,
            jitter: Mutex::new(jitter),
            breakers: Mutex::default(),
            breaker: BreakerConfig::default(),
            timeout: DEFAULT_TIMEOUT,
            lease: DEFAULT_TIMEOUT * 2,
            batch: 64,
            concurrency: 8,
        }
    }

    /// Per-attempt timeout; the claim lease stays longer than it.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.lease = timeout * 2;
        self
    }

    /// How many sends of one step may be in flight at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// How each endpoint's circuit breaker opens.
    pub fn with_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }

    /// Claims due deliveries and works each through one attempt; returns
    /// how many were claimed.
    pub async fn step(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_due_deliveries(now, self.lease, self.batch)
            .await?;
        // The futures are made first: a closure inside the stream would
        // make the step's future not `Send` for every lifetime.
        let attempts: Vec<_> = claimed.iter().map(|d| self.attempt(d)).collect();
        let results: Vec<Result<(), StoreError>> = futures_util::stream::iter(attempts)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(claimed.len())
    }

    /// Steps until `stop`: again at once after a step that claimed
    /// something, else after `wake` or `idle` (retries come due with time).
    pub async fn run(self, wake: Arc<Notify>, idle: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.step().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "delivery worker step failed; retrying"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => return,
            }
        }
    }

    async fn attempt(&self, d: &Delivery) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut record = DeliveryAttempt {
            attempt: d.attempts,
            at: now,
            status: None,
            duration_ms: 0,
            error_class: None,
            response_snippet: None,
            next_attempt_at: None,
        };
        let subscription = self
            .store
            .get_subscription(&d.tenant_id, &d.subscription_id)
            .await?;
        let Some(subscription) = subscription else {
            record.error_class = Some(SUBSCRIPTION_DELETED.into());
            self.store
                .finish_delivery(&d.delivery_id, record, DeliveryOutcome::Dead)
                .await?;
            return Ok(());
        };
        if !subscription.spec.enabled {
            // Kept, unattempted, for when it is enabled again; looked at
            // once a minute.
            let at = later(now, Duration::from_secs(60));
            self.store
                .release_delivery(&d.delivery_id, d.attempts, at, now)
                .await?;
            return Ok(());
        }
        let url = subscription.spec.callback_url.clone();
        let admission = self
            .breakers
            .lock()
            .expect("breakers lock")
            .entry(url.clone())
            .or_insert_with(|| CircuitBreaker::new(self.breaker))
            .try_acquire(now);
        let permit = match admission {
            Admission::Allowed(permit) => permit,
            Admission::Rejected { retry_at } => {
                // The endpoint is failing: back in the queue, unattempted.
                self.store
                    .release_delivery(&d.delivery_id, d.attempts, retry_at, now)
                    .await?;
                return Ok(());
            }
        };
        let Some(stored) = self.store.get_event(&d.tenant_id, d.event_id).await? else {
            record.error_class = Some("event_gone".into());
            self.store
                .finish_delivery(&d.delivery_id, record, DeliveryOutcome::Dead)
                .await?;
            return Ok(());
        };
        let event = &stored.event;
        let raw: Box<RawValue> = match serde_json::value::to_raw_value(event) {
            Ok(raw) => raw,
            Err(e) => {
                record.error_class = Some("unencodable".into());
                record.response_snippet = Some(e.to_string());
                self.store
                    .finish_delivery(&d.delivery_id, record, DeliveryOutcome::Dead)
                    .await?;
                return Ok(());
            }
        };
        let body = webhook_body(event.event_type.as_str(), now, &raw);
        let traceparent = match (&event.correlation.trace_id, &event.correlation.span_id) {
            (Some(trace), Some(span)) => Some(format!("00-{trace}-{span}-01")),
            _ => None,
        };
        let secrets: Vec<WebhookSecret> = subscription
            .signing_secrets(now)
            .into_iter()
            .filter_map(|s| WebhookSecret::parse(s).ok())
            .collect();
        let message = WebhookMessage {
            id: &d.webhook_id,
            body: &body,
            traceparent: traceparent.as_deref(),
            replay: d.replay_id.as_deref(),
        };
        let signed = match build_request(&message, now, &secrets) {
            Ok(signed) => signed,
            Err(e) => {
                record.error_class = Some("unsignable".into());
                record.response_snippet = Some(e.to_string());
                self.store
                    .finish_delivery(&d.delivery_id, record, DeliveryOutcome::Dead)
                    .await?;
                return Ok(());
            }
        };
        let mut headers: Vec<(String, String)> = subscription
            .spec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.extend(
            signed
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone())),
        );
        let started = std::time::Instant::now();
        let result = self
            .sender
            .send(OutgoingWebhook {
                url: url.clone(),
                headers,
                body: signed.body,
                timeout: self.timeout,
            })
            .await;
        record.duration_ms = started.elapsed().as_millis() as i64;
        let seen = match &result {
            SendResult::Response {
                status,
                retry_after,
                body,
            } => AttemptResult::Response {
                status: *status,
                retry_after: retry_after.as_deref(),
                body,
            },
            SendResult::Failed(f) => AttemptResult::Failed(*f),
        };
        let now = self.clock.now();
        let verdict = classify(&seen, now, DEFAULT_RETRY_AFTER_CAP, DEFAULT_SNIPPET_BYTES);
        // A 4xx other than 429 is the endpoint answering: not a failure of it.
        let healthy = verdict.error_class.is_none()
            || matches!(verdict.status, Some(400..=499) if verdict.status != Some(429));
        if let Some(breaker) = self.breakers.lock().expect("breakers lock").get_mut(&url) {
            breaker.record(permit, healthy, now);
        }
        record.status = verdict.status.map(i64::from);
        record.error_class = verdict.error_class.map(|c| c.as_str().to_string());
        record.response_snippet = Some(verdict.snippet).filter(|s| !s.is_empty());
        let policy = RetryPolicy::from_json(&subscription.spec.retry_policy, "/retry_policy")
            .unwrap_or_default();
        let step = {
            let mut jitter = self.jitter.lock().expect("jitter lock");
            // Attempts since the last redrive: a redriven dead letter's
            // schedule starts over.
            next_step(
                &policy,
                (d.attempts - d.attempt_base).max(0) as u32,
                verdict.verdict,
                now,
                &mut || jitter.unit(),
            )
        };
        let outcome = match step {
            NextStep::Delivered => DeliveryOutcome::Delivered,
            NextStep::DisableSubscription => DeliveryOutcome::DisableSubscription,
            NextStep::RetryAt(at) => {
                record.next_attempt_at = Some(at);
                DeliveryOutcome::RetryAt(at)
            }
            NextStep::DeadLetter => DeliveryOutcome::Dead,
        };
        self.store
            .finish_delivery(&d.delivery_id, record, outcome)
            .await?;
        Ok(())
    }
}

/// `at + by`, saturating at `at`.
fn later(at: Timestamp, by: Duration) -> Timestamp {
    super::later(at, by)
}
