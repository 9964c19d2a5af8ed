//! The delivery worker: claims due deliveries, sends each to its
//! subscription's endpoint signed with the subscription's current secrets,
//! classifies the answer and records the attempt with its next step. The
//! network is behind [`WebhookSender`], so tests drive the worker with a
//! fake sender and a manual clock.

use std::collections::VecDeque;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use herald_core::{Clock, Timestamp};
use herald_store::{Delivery, DeliveryAttempt, DeliveryOutcome, FinishOptions, Store, StoreError};
use serde_json::value::RawValue;
use tokio::sync::{Notify, Semaphore, watch};

use super::breaker::BreakerConfig;
use super::classify::{AttemptResult, DEFAULT_SNIPPET_BYTES, TransportFailure, classify};
use super::endpoints::Endpoints;
use super::schedule::{DEFAULT_RETRY_AFTER_CAP, Jitter, NextStep, RetryPolicy, next_step};
use super::signature::{WebhookMessage, WebhookSecret, build_request, webhook_body};

/// How long one attempt may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a subscription may fail without a success before it is
/// turned off, by default: five days.
pub const DEFAULT_DISABLE_AFTER_FAILING: Duration = Duration::from_secs(5 * 86_400);

/// How many deliveries one [`DeliveryWorker::step`] claims.
pub const STEP_BATCH: usize = 64;

/// Attempts in flight at once by default.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Attempts to one callback URL in flight at once by default.
pub const DEFAULT_ENDPOINT_CONCURRENCY: u32 = 8;

/// One request to an endpoint: its URL, headers (the signed ones and the
/// subscription's own) and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingWebhook {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub timeout: Duration,
    /// How much of the answer's body to read, at least (a delivery keeps
    /// a snippet; a webhook processor the whole answer).
    pub read_limit: usize,
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
    /// Each endpoint's breaker and budget and each subscription's rate
    /// limit, in memory; rebuilt when the budget or breaker changes.
    endpoints: Endpoints,
    breaker: BreakerConfig,
    endpoint_budget: NonZeroU32,
    timeout: Duration,
    lease: Duration,
    /// Attempts in flight at once (in `run`, and within one `step`).
    concurrency: usize,
    /// Whether lifecycle notices also go to the NATS outbox.
    publish_lifecycle: bool,
    /// A subscription failing without a success this long is turned off.
    disable_after_failing: Option<Duration>,
    /// Finished attempts whose record is waiting for its commit, at most
    /// [`FINISHING_PER_SLOT`] × the concurrency.
    finishing: Arc<Semaphore>,
}

/// A claim running beside the attempts: what it got, and how many it asked for.
type ClaimTask = tokio::task::JoinHandle<Result<(Vec<Delivery>, usize), StoreError>>;

/// Finished attempts that may wait for their record's commit, per slot.
const FINISHING_PER_SLOT: usize = 4;

/// An attempt's place among the `concurrency` in flight (`run`), given
/// back when its send is over and its record is queued; the worker's loop
/// is told, to claim the next delivery. `step` works without slots.
#[derive(Debug, Default)]
struct Slot {
    held: Option<(tokio::sync::OwnedSemaphorePermit, Arc<Notify>)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((permit, freed)) = self.held.take() {
            drop(permit);
            freed.notify_one();
        }
    }
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
    /// A worker with the default timeout, a lease of twice that,
    /// [`DEFAULT_CONCURRENCY`] attempts in flight and
    /// [`DEFAULT_ENDPOINT_CONCURRENCY`] of them to one endpoint.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        sender: Arc<dyn WebhookSender>,
        jitter: Box<dyn Jitter + Send>,
    ) -> Self {
        let breaker = BreakerConfig::default();
        let endpoint_budget = NonZeroU32::new(DEFAULT_ENDPOINT_CONCURRENCY).expect("not zero");
        DeliveryWorker {
            store,
            clock,
            sender,
            jitter: Mutex::new(jitter),
            endpoints: Endpoints::new(breaker, endpoint_budget),
            breaker,
            endpoint_budget,
            timeout: DEFAULT_TIMEOUT,
            lease: DEFAULT_TIMEOUT * 2,
            concurrency: DEFAULT_CONCURRENCY,
            finishing: Arc::new(Semaphore::new(DEFAULT_CONCURRENCY * FINISHING_PER_SLOT)),
            publish_lifecycle: false,
            disable_after_failing: Some(DEFAULT_DISABLE_AFTER_FAILING),
        }
    }

    /// Turn a subscription off (`subscription.disabled`) once its
    /// deliveries have failed without a success for `after`; `None`: never.
    pub fn disabling_after(mut self, after: Option<Duration>) -> Self {
        self.disable_after_failing = after;
        self
    }

    /// Queue the lifecycle notices delivery causes (`delivery.exhausted`,
    /// `subscription.disabled`) for the NATS publisher as well as the
    /// audit trail: only when a publisher runs to drain them.
    pub fn publishing_lifecycle(mut self, publish: bool) -> Self {
        self.publish_lifecycle = publish;
        self
    }

    /// Per-attempt timeout; the claim lease stays longer than it.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.lease = timeout * 2;
        self
    }

    /// How many attempts may be in flight at once (at least 1).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self.finishing = Arc::new(Semaphore::new(self.concurrency * FINISHING_PER_SLOT));
        self
    }

    /// How many attempts to one callback URL may be in flight at once (at
    /// least 1); a delivery beyond it waits
    /// [`BUSY_ENDPOINT_WAIT`](super::endpoints::BUSY_ENDPOINT_WAIT),
    /// unattempted.
    pub fn with_endpoint_concurrency(mut self, budget: usize) -> Self {
        self.endpoint_budget =
            NonZeroU32::new(u32::try_from(budget).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        self.endpoints = Endpoints::new(self.breaker, self.endpoint_budget);
        self
    }

    /// How each endpoint's circuit breaker opens.
    pub fn with_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self.endpoints = Endpoints::new(self.breaker, self.endpoint_budget);
        self
    }

    /// Attempts to `url` in flight now.
    pub fn in_flight_to(&self, url: &str) -> u32 {
        self.endpoints.in_flight(url)
    }

    /// Claims a batch of due deliveries (up to [`STEP_BATCH`]) and works
    /// each through one attempt, up to the concurrency at once; returns how
    /// many were claimed. For tests: `run` keeps attempts in flight instead
    /// of waiting for a whole batch.
    pub async fn step(&self) -> Result<usize, StoreError> {
        let claimed = self.claim(STEP_BATCH).await?;
        // The futures are made first: a closure inside the stream would
        // make the step's future not `Send` for every lifetime.
        let attempts: Vec<_> = claimed
            .iter()
            .map(|d| self.attempt(d, Slot::default()))
            .collect();
        let results: Vec<Result<(), StoreError>> = futures_util::stream::iter(attempts)
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        results.into_iter().collect::<Result<(), _>>()?;
        Ok(claimed.len())
    }

    async fn claim(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let now = self.clock.now();
        self.store
            .claim_due_deliveries(now, self.lease, limit)
            .await
    }

    /// Works deliveries until `stop`, keeping up to the concurrency of
    /// attempts in flight: a slot an attempt frees is filled by the next
    /// due delivery at once, so an endpoint that hangs holds only its own
    /// budget and never a batch of everyone's. Claims again when a slot
    /// frees while more was due, on `wake`, or after `idle` (retries come
    /// due with time). On `stop` it claims nothing more and lets the
    /// attempts in flight finish (each within the timeout).
    pub async fn run(self, wake: Arc<Notify>, idle: Duration, mut stop: watch::Receiver<bool>) {
        // Each attempt is a task of its own: one that waits (for the pool,
        // say) while the loop awaits a claim must still make progress.
        let worker = Arc::new(self);
        let mut in_flight = tokio::task::JoinSet::new();
        // A slot per attempt being made; a finished attempt gives its slot
        // back before its record commits (see `finish`).
        let slots = Arc::new(Semaphore::new(worker.concurrency));
        let freed = Arc::new(Notify::new());
        // Claimed deliveries waiting for a slot: up to half the concurrency
        // is claimed ahead, so a freed slot starts the next delivery at
        // once instead of waiting for a claim to commit. Claims run beside
        // the attempts, one at a time.
        let mut ready: VecDeque<Delivery> = VecDeque::new();
        let ahead = (worker.concurrency / 2).max(1);
        let mut claiming: Option<ClaimTask> = None;
        // Whether the last claim got all it asked for (more may be due).
        let mut more_due = true;
        // A claim is a write: while busy, claims gather at least a quarter
        // of the concurrency; when nothing waits, any free slot is claimed.
        let refill = (worker.concurrency / 4).max(1);
        loop {
            if *stop.borrow() {
                break;
            }
            while let Some(done) = in_flight.try_join_next() {
                report(done);
            }
            while !ready.is_empty() {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let d = ready.pop_front().expect("not empty");
                let slot = Slot {
                    held: Some((permit, freed.clone())),
                };
                let worker = worker.clone();
                in_flight.spawn(async move { worker.attempt(&d, slot).await });
            }
            let free = slots.available_permits();
            let need = (free + ahead).saturating_sub(ready.len());
            if claiming.is_none()
                && more_due
                && need > 0
                && (need >= refill || (ready.is_empty() && free > 0))
            {
                let worker = worker.clone();
                claiming = Some(tokio::spawn(async move {
                    worker.claim(need).await.map(|c| (c, need))
                }));
            }
            tokio::select! {
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => report(done),
                claimed = async { claiming.as_mut().expect("claiming").await }, if claiming.is_some() => {
                    claiming = None;
                    match claimed {
                        Ok(Ok((claimed, asked))) => {
                            more_due = claimed.len() == asked;
                            ready.extend(claimed);
                        }
                        Ok(Err(StoreError::Closed)) => break,
                        Ok(Err(e)) => {
                            more_due = false;
                            tracing::warn!(error = %e, "delivery worker claim failed; retrying");
                        }
                        Err(e) => {
                            more_due = false;
                            tracing::warn!(error = %e, "delivery worker claim task failed; retrying");
                        }
                    }
                }
                _ = freed.notified() => {}
                _ = wake.notified() => more_due = true,
                _ = tokio::time::sleep(idle) => more_due = true,
                _ = stop.changed() => {}
            }
        }
        // Claimed but never started: back in the queue, due now, for the
        // next worker (this one or another instance's).
        if let Some(c) = claiming.take()
            && let Ok(Ok((claimed, _))) = c.await
        {
            ready.extend(claimed);
        }
        let now = worker.clock.now();
        for d in ready {
            if let Err(e) = worker
                .store
                .release_delivery(&d.delivery_id, d.attempts, now, now)
                .await
            {
                tracing::warn!(error = %e, "a claimed delivery was not put back; retried after its lease");
            }
        }
        while let Some(done) = in_flight.join_next().await {
            report(done);
        }
    }

    async fn attempt(&self, d: &Delivery, slot: Slot) -> Result<(), StoreError> {
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
            self.finish(d, record, DeliveryOutcome::Dead, slot).await?;
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
        let pass = match self.endpoints.admit(
            &url,
            &subscription.subscription_id,
            subscription.spec.rate_limit,
            now,
        ) {
            Ok(pass) => pass,
            Err((_, retry_at)) => {
                // Busy, rate-limited or failing: back in the queue,
                // unattempted, due when the refusal says.
                self.store
                    .release_delivery(&d.delivery_id, d.attempts, retry_at, now)
                    .await?;
                return Ok(());
            }
        };
        let Some(stored) = self.store.get_event(&d.tenant_id, d.event_id).await? else {
            record.error_class = Some("event_gone".into());
            self.finish(d, record, DeliveryOutcome::Dead, slot).await?;
            return Ok(());
        };
        let event = &stored.event;
        let raw: Box<RawValue> = match serde_json::value::to_raw_value(event) {
            Ok(raw) => raw,
            Err(e) => {
                record.error_class = Some("unencodable".into());
                record.response_snippet = Some(e.to_string());
                self.finish(d, record, DeliveryOutcome::Dead, slot).await?;
                return Ok(());
            }
        };
        let cloudevents = subscription.spec.payload_format == "cloudevents";
        let body = if cloudevents {
            let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap_or_default();
            herald_collect::cloudevents::encode(&value).to_string()
        } else {
            webhook_body(event.event_type.as_str(), now, &raw)
        };
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
                self.finish(d, record, DeliveryOutcome::Dead, slot).await?;
                return Ok(());
            }
        };
        let mut headers: Vec<(String, String)> = subscription
            .spec
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        headers.extend(signed.headers.iter().map(|(k, v)| {
            let v = if cloudevents && *k == "content-type" {
                "application/cloudevents+json".to_string()
            } else {
                v.clone()
            };
            (k.to_string(), v)
        }));
        let started = std::time::Instant::now();
        let result = self
            .sender
            .send(OutgoingWebhook {
                url: url.clone(),
                headers,
                body: signed.body,
                timeout: self.timeout,
                read_limit: DEFAULT_SNIPPET_BYTES,
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
        pass.record(healthy, now);
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
        self.finish(d, record, outcome, slot).await
    }

    /// Records an attempt's end; the notices it causes are queued for
    /// NATS too when a publisher runs. The attempt's slot is given back as
    /// soon as the write is queued (within the bound on finishes waiting
    /// for their commit), so the next delivery is sent while this one's
    /// record commits; should the write fail, the claim's lease runs out
    /// and the delivery is attempted again.
    async fn finish(
        &self,
        d: &Delivery,
        record: DeliveryAttempt,
        outcome: DeliveryOutcome,
        slot: Slot,
    ) -> Result<(), StoreError> {
        let _finishing = self.finishing.acquire().await;
        drop(slot);
        let options = FinishOptions {
            publish_lifecycle: self.publish_lifecycle,
            disable_after_failing: self.disable_after_failing,
        };
        self.store
            .finish_delivery_with(&d.delivery_id, record, outcome, options)
            .await?;
        Ok(())
    }
}

/// Logs an attempt that ended without its result recorded; its delivery
/// is claimed again once its lease runs out.
fn report(done: Result<Result<(), StoreError>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "delivery attempt not recorded; retried after its lease")
        }
        Err(e) => tracing::warn!(error = %e, "delivery attempt failed; retried after its lease"),
    }
}

/// `at + by`, saturating at `at`.
fn later(at: Timestamp, by: Duration) -> Timestamp {
    super::later(at, by)
}
