//! Self-observation: each API request's outcome becomes a `system` event
//! (`herald.api.request`) of the operator tenant [`OPERATOR_TENANT`], so
//! Herald's own query, statistics, stories and subscriptions work on
//! Herald itself.
//!
//! The audit middleware hands an outcome over with [`SelfEvents::emit`]
//! after the answer is made: a `try_send` into a bounded buffer, which
//! never waits, never fails the request, and when the buffer is full drops
//! the outcome and counts it (`herald_self_events_total{outcome=
//! "dropped_buffer_full"}`). [`SelfEventDrain`] takes what is buffered
//! in batches and stores it through the tenant's own `EventProcessor` and
//! the store's ordinary append (the group commit), as ingest does.
//!
//! No loop: self events are stored by the drain, not by API requests, so
//! storing them produces no further self events, whatever the operator
//! tenant's subscriptions or processors do with them.

use std::sync::{Arc, Mutex};

use herald_core::{TenantId, Timestamp};
use herald_store::{NewEvent, StoreError, Tenant};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::App;
use crate::http::metrics::Metrics;

/// The operator tenant self events are stored under.
pub const OPERATOR_TENANT: &str = "_herald";

/// The event type of a request's outcome.
pub const REQUEST_EVENT_TYPE: &str = "herald.api.request";

/// Most outcomes stored in one append.
pub const DRAIN_BATCH: usize = 1000;

/// How long the drain lets outcomes gather after the first of a batch,
/// so under load it stores them in few large appends rather than many
/// small ones beside the requests' own.
pub const DRAIN_LINGER: std::time::Duration = std::time::Duration::from_millis(100);

/// The operator tenant's id.
pub fn operator_tenant() -> TenantId {
    TenantId::parse(OPERATOR_TENANT).expect("the operator tenant id is valid")
}

/// One answered request, as the audit middleware saw it.
#[derive(Debug, Clone)]
pub struct RequestOutcome {
    pub at: Timestamp,
    /// The route template (`unmatched` for none).
    pub route: String,
    pub method: &'static str,
    pub status: u16,
    pub duration_us: u64,
    /// The tenant the request acted as (or on, for the root key).
    pub tenant_id: Option<String>,
    /// The key's id (`root` for the root key), never its secret.
    pub key_id: Option<String>,
    /// An error answer's kind: its problem type (`validation`,
    /// `not-found`, …), or its status class (`status_4xx`, `status_5xx`)
    /// when it was no problem document.
    pub error_class: Option<String>,
    /// The problem type of a problem answer.
    pub problem_type: Option<&'static str>,
    pub request_id: String,
}

impl RequestOutcome {
    /// The ingest request body that stores it.
    fn to_json(&self) -> Value {
        let mut data = json!({
            "operation": format!("{} {}", self.method, self.route),
            "route": self.route,
            "method": self.method,
            "status": self.status,
            "duration_ms": self.duration_us as f64 / 1000.0,
        });
        for (k, v) in [
            ("tenant_id", &self.tenant_id),
            ("key_id", &self.key_id),
            ("error_class", &self.error_class),
        ] {
            if let Some(v) = v {
                data[k] = json!(v);
            }
        }
        if let Some(slug) = self.problem_type {
            data["problem_type"] = json!(format!("urn:herald:problem:{slug}"));
        }
        json!({
            "event_type": REQUEST_EVENT_TYPE,
            "category": "system",
            "event_source": "system",
            "timestamp": self.at.to_string(),
            "outcome": { "status": if self.status < 400 { "success" } else { "failure" } },
            // The request is what the event is about; `object.request_id`
            // is also a correlation key, so a request's story finds it.
            "object": { "request_id": self.request_id },
            "data": data,
        })
    }
}

/// The sending end: cloned into the `App`.
#[derive(Clone, Debug)]
pub struct SelfEvents {
    tx: mpsc::Sender<RequestOutcome>,
    rx: Arc<Mutex<Option<mpsc::Receiver<RequestOutcome>>>>,
    metrics: Metrics,
}

impl SelfEvents {
    /// A buffer of `capacity` outcomes.
    pub fn new(capacity: usize, metrics: Metrics) -> SelfEvents {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        SelfEvents {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
            metrics,
        }
    }

    /// Buffers `outcome` without waiting; a full buffer drops and counts it.
    pub fn emit(&self, outcome: RequestOutcome) {
        if self.tx.try_send(outcome).is_err() {
            self.metrics.self_events("dropped_buffer_full", 1);
        }
    }

    /// Outcomes waiting in the buffer.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// The receiving end, once (for the drain).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<RequestOutcome>> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Creates the operator tenant unless it exists.
pub async fn ensure_operator_tenant(app: &App) -> Result<(), StoreError> {
    let tenant_id = operator_tenant();
    if app.store.get_tenant(&tenant_id).await?.is_some() {
        return Ok(());
    }
    match app
        .store
        .create_tenant(Tenant {
            tenant_id,
            name: "Herald (self-observation)".into(),
            created_at: app.clock.now(),
        })
        .await
    {
        // Another instance sharing the store made it first.
        Ok(()) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Stores buffered outcomes in batches.
#[derive(Debug)]
pub struct SelfEventDrain {
    app: App,
    rx: mpsc::Receiver<RequestOutcome>,
}

impl SelfEventDrain {
    pub fn new(app: App, rx: mpsc::Receiver<RequestOutcome>) -> SelfEventDrain {
        SelfEventDrain { app, rx }
    }

    /// Stores `outcomes` in one append; returns how many were stored.
    pub async fn store(&self, outcomes: &[RequestOutcome]) -> usize {
        if outcomes.is_empty() {
            return 0;
        }
        let n = outcomes.len() as u64;
        match self.append(outcomes).await {
            Ok(stored) => {
                self.app.after_commit();
                self.app.metrics.self_events("stored", stored as u64);
                if (stored as u64) < n {
                    self.app
                        .metrics
                        .self_events("dropped_store", n - stored as u64);
                }
                stored
            }
            Err(e) => {
                tracing::warn!(error = %herald_store::error_chain(&e), events = n, "self events not stored");
                self.app.metrics.self_events("dropped_store", n);
                0
            }
        }
    }

    async fn append(&self, outcomes: &[RequestOutcome]) -> Result<usize, StoreError> {
        let tenant_id = operator_tenant();
        let tenant = self.app.tenant_context(&tenant_id).await?;
        let ctx = herald_core::ProcessingContext {
            tenant_id: &tenant_id,
            email_hasher: &tenant.hasher,
            processing_timestamp: self.app.clock.now(),
            ids: &*self.app.ids,
            traceparent: None,
        };
        let mut events = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let body = serde_json::to_vec(&o.to_json()).unwrap_or_default();
            match tenant.processor.process_json(&body, &ctx) {
                Ok(p) => events.push(NewEvent {
                    event: p.event,
                    expected_version: p.expected_version,
                }),
                // Only a tenant definition for the type could refuse it.
                Err(refused) => {
                    tracing::warn!(errors = ?refused.errors, "a self event was refused by the operator tenant's rules")
                }
            }
        }
        let outcomes = self.app.store.append(events).await?;
        Ok(outcomes
            .iter()
            .filter(|o| matches!(o, herald_store::AppendOutcome::Stored(_)))
            .count())
    }

    /// Takes up to [`DRAIN_BATCH`] buffered outcomes and stores them; waits
    /// for at least one. `None` once every sender is gone.
    pub async fn step(&mut self) -> Option<usize> {
        let mut batch = Vec::with_capacity(DRAIN_BATCH);
        if self.rx.recv_many(&mut batch, DRAIN_BATCH).await == 0 {
            return None;
        }
        Some(self.store(&batch).await)
    }

    /// Steps until `stop`, then stores what is still buffered. A stop
    /// interrupts only the wait for outcomes, never an append.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let mut batch = Vec::with_capacity(DRAIN_BATCH);
            tokio::select! {
                n = self.rx.recv_many(&mut batch, DRAIN_BATCH) => if n == 0 { return },
                _ = stop.changed() => break,
            }
            if batch.len() < DRAIN_BATCH {
                tokio::time::sleep(DRAIN_LINGER).await;
                while batch.len() < DRAIN_BATCH {
                    match self.rx.try_recv() {
                        Ok(o) => batch.push(o),
                        Err(_) => break,
                    }
                }
            }
            self.store(&batch).await;
        }
        let mut rest = Vec::new();
        while let Ok(o) = self.rx.try_recv() {
            rest.push(o);
            if rest.len() == DRAIN_BATCH {
                self.store(&std::mem::take(&mut rest)).await;
            }
        }
        self.store(&rest).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16) -> RequestOutcome {
        RequestOutcome {
            at: Timestamp::from_parts(1_700_000_000, 0, 0).unwrap(),
            route: "/api/v1/events/create".into(),
            method: "POST",
            status,
            duration_us: 1500,
            tenant_id: Some("acme".into()),
            key_id: Some("key_1".into()),
            error_class: (status >= 400).then(|| "validation".into()),
            problem_type: (status >= 400).then_some("validation"),
            request_id: "req-1".into(),
        }
    }

    #[test]
    fn a_full_buffer_drops_and_counts_without_waiting() {
        let metrics = Metrics::new();
        let events = SelfEvents::new(2, metrics.clone());
        for _ in 0..5 {
            events.emit(outcome(201));
        }
        assert_eq!(events.queued(), 2);
        let text = metrics.render();
        assert!(
            text.lines()
                .any(|l| l == "herald_self_events_total{outcome=\"dropped_buffer_full\"} 3"),
            "{text}"
        );
        let mut rx = events.take_receiver().unwrap();
        assert!(events.take_receiver().is_none(), "one drain only");
        assert_eq!(rx.try_recv().unwrap().status, 201);
        events.emit(outcome(400));
        assert_eq!(events.queued(), 2, "room again after one was taken");
    }

    #[test]
    fn an_outcome_is_a_system_event_of_the_ingest_shape() {
        let json = outcome(400).to_json();
        assert_eq!(json["event_type"], REQUEST_EVENT_TYPE);
        assert_eq!(json["category"], "system");
        assert_eq!(json["outcome"]["status"], "failure");
        assert_eq!(json["data"]["operation"], "POST /api/v1/events/create");
        assert_eq!(json["data"]["duration_ms"], 1.5);
        assert_eq!(json["data"]["error_class"], "validation");
        assert_eq!(
            json["data"]["problem_type"],
            "urn:herald:problem:validation"
        );
        assert_eq!(json["object"]["request_id"], "req-1");
        let ok = outcome(201).to_json();
        assert_eq!(ok["outcome"]["status"], "success");
        assert!(ok["data"].get("error_class").is_none());
    }
}
