//! The callback outbox of waits: a wait with a callback URL is due for one
//! POST once it ends. A step claims due callbacks (a lease, so another
//! instance or a restart takes over one whose worker vanished), sends each
//! through the delivery module's sender, signed per Standard Webhooks with
//! the wait's own secret (`webhook-id` = the wait's id, the same on every
//! attempt), classifies the answer and records it under the claim's
//! token: delivered, retried on the delivery retry schedule, or given up
//! once the schedule is exhausted (or the endpoint answers 410).
//!
//! The body is `{"wait_id", "status", "event"}`, `event` the resolving
//! event as stored (`null` for a timeout or a cancel).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::Clock;
use herald_store::{Store, StoreError, Wait, WaitCallbackAttempt, WaitCallbackOutcome};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::{Notify, watch};

use crate::delivery::classify::{AttemptResult, DEFAULT_SNIPPET_BYTES, classify};
use crate::delivery::schedule::{
    DEFAULT_RETRY_AFTER_CAP, Jitter, NextStep, RetryPolicy, next_step,
};
use crate::delivery::signature::{WebhookMessage, WebhookSecret, build_request};
use crate::delivery::worker::{OutgoingWebhook, SendResult, WebhookSender};

/// A callback's body.
#[derive(Serialize)]
struct Body<'a> {
    wait_id: &'a str,
    status: &'a str,
    event: Option<&'a RawValue>,
}

/// The callback body of an ended wait.
pub fn callback_body(wait: &Wait) -> String {
    let event = wait
        .event
        .as_deref()
        .and_then(|e| serde_json::from_str::<&RawValue>(e).ok());
    serde_json::to_string(&Body {
        wait_id: &wait.wait_id,
        status: wait.status.as_str(),
        event,
    })
    .expect("a body of strings and stored JSON serialises")
}

/// Works the callbacks of ended waits.
pub struct WaitCallbacks {
    store: Store,
    clock: Arc<dyn Clock>,
    sender: Arc<dyn WebhookSender>,
    jitter: Mutex<Box<dyn Jitter + Send>>,
    policy: RetryPolicy,
    timeout: Duration,
    lease: Duration,
    batch: usize,
}

impl std::fmt::Debug for WaitCallbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitCallbacks")
            .field("policy", &self.policy)
            .finish()
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallbackCounts {
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

impl WaitCallbacks {
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        sender: Arc<dyn WebhookSender>,
        jitter: Box<dyn Jitter + Send>,
    ) -> Self {
        WaitCallbacks {
            store,
            clock,
            sender,
            jitter: Mutex::new(jitter),
            policy: RetryPolicy::default(),
            timeout: Duration::from_secs(15),
            lease: Duration::from_secs(60),
            batch: 50,
        }
    }

    /// The retry schedule (the delivery default unless set).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How long one request may take.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        // A claim outlives its request by a margin.
        self.lease = self.lease.max(timeout * 2);
        self
    }

    /// Claims the due callbacks and sends each once, concurrently.
    pub async fn step(&self) -> Result<CallbackCounts, StoreError> {
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_wait_callbacks(now, self.lease, self.batch)
            .await?;
        let outcomes =
            futures_util::future::join_all(claimed.iter().map(|w| self.attempt(w))).await;
        let mut counts = CallbackCounts::default();
        for outcome in outcomes {
            match outcome? {
                Some(WaitCallbackOutcome::Delivered) => counts.delivered += 1,
                Some(WaitCallbackOutcome::RetryAt(_)) => counts.retrying += 1,
                Some(WaitCallbackOutcome::Failed) => counts.failed += 1,
                None => {}
            }
        }
        Ok(counts)
    }

    /// One attempt at one claimed callback; its outcome as recorded
    /// (`None` when the claim had gone stale).
    async fn attempt(&self, wait: &Wait) -> Result<Option<WaitCallbackOutcome>, StoreError> {
        let token = wait.callback.as_ref().map_or(0, |c| c.attempts);
        let url = wait.callback_url.clone().unwrap_or_default();
        let body = callback_body(wait);
        let secrets: Vec<WebhookSecret> = wait
            .webhook_secret
            .as_deref()
            .and_then(|s| WebhookSecret::parse(s).ok())
            .into_iter()
            .collect();
        let message = WebhookMessage {
            id: &wait.wait_id,
            body: &body,
            traceparent: None,
            replay: None,
        };
        let now = self.clock.now();
        let signed = match build_request(&message, now, &secrets) {
            Ok(signed) => signed,
            Err(e) => {
                let attempt = WaitCallbackAttempt {
                    token,
                    status: None,
                    error: Some(format!("unsignable: {e}")),
                    outcome: WaitCallbackOutcome::Failed,
                };
                return self.finish(wait, attempt).await;
            }
        };
        let result = self
            .sender
            .send(OutgoingWebhook {
                url,
                headers: signed
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                body: signed.body,
                timeout: self.timeout,
                read_limit: DEFAULT_SNIPPET_BYTES,
            })
            .await;
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
        let step = {
            let mut jitter = self.jitter.lock().unwrap_or_else(|p| p.into_inner());
            next_step(
                &self.policy,
                token.max(0) as u32,
                verdict.verdict,
                now,
                &mut || jitter.unit(),
            )
        };
        let outcome = match step {
            NextStep::Delivered => WaitCallbackOutcome::Delivered,
            NextStep::RetryAt(at) => WaitCallbackOutcome::RetryAt(at),
            NextStep::DisableSubscription | NextStep::DeadLetter => WaitCallbackOutcome::Failed,
        };
        if outcome == WaitCallbackOutcome::Failed {
            tracing::warn!(wait_id = %wait.wait_id, attempts = token, "wait callback given up");
        }
        let attempt = WaitCallbackAttempt {
            token,
            status: verdict.status.map(i64::from),
            error: verdict.error_class.map(|c| c.as_str().to_string()),
            outcome,
        };
        self.finish(wait, attempt).await
    }

    async fn finish(
        &self,
        wait: &Wait,
        attempt: WaitCallbackAttempt,
    ) -> Result<Option<WaitCallbackOutcome>, StoreError> {
        let outcome = attempt.outcome.clone();
        let recorded = self
            .store
            .finish_wait_callback(&wait.wait_id, attempt)
            .await?;
        Ok(recorded.then_some(outcome))
    }

    /// Steps until `stop`, waiting for `wake` (a wait ended here) or
    /// `poll` between steps that found nothing.
    pub async fn run(self, wake: Arc<Notify>, poll: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.step().await {
                Ok(c) if c.delivered + c.retrying + c.failed > 0 => continue,
                Ok(_) => {}
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "wait callback step failed; retrying"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
