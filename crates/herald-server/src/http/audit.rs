//! One audit record per request (Property 12: Audit Trail Creation): a
//! middleware times the request, handlers and the auth extractor fill in who
//! it was through an `AuditSlot`, and the record joins the store's next group
//! commit, so auditing adds no commit of its own to ingest.
//!
//! The same point, once the answer is made, records the request's metrics
//! (route template, method, status, latency, problem type) and hands its
//! outcome to the self events (`crate::self_events`) without waiting.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use herald_store::{AuditOutcome, AuditRecord};

use crate::App;
use crate::http::auth::Principal;
use crate::http::metrics;
use crate::http::problem::ProblemType;
use crate::self_events::RequestOutcome;

#[derive(Debug, Default)]
struct Filled {
    tenant_id: Option<String>,
    key_id: Option<String>,
    outcome: Option<AuditOutcome>,
    detail: Option<String>,
}

/// A record's detail stops growing here (a batch of many bad items).
const MAX_DETAIL: usize = 1024;

impl Filled {
    fn add_detail(&mut self, detail: String) {
        self.detail = Some(match self.detail.take() {
            Some(before) if before.ends_with('…') => before,
            Some(before) if before.len() >= MAX_DETAIL => before + "; …",
            Some(before) => format!("{before}; {detail}"),
            None => detail,
        });
    }
}

/// What a request's handlers learned that the audit record needs.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Filled>>);

impl AuditSlot {
    fn with(&self, f: impl FnOnce(&mut Filled)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn set_principal(&self, p: &Principal) {
        self.with(|s| {
            if let Principal::Tenant(k) = p {
                s.tenant_id = Some(k.tenant_id.to_string());
                s.key_id = Some(k.key_id.clone());
            } else {
                s.key_id = Some("root".into());
            }
        });
    }

    /// The tenant an operator's request acted on (a tenant created, a key
    /// issued or revoked by the root key), so it shows in that tenant's trail.
    pub fn acted_on(&self, tenant: &herald_core::TenantId) {
        self.with(|s| s.tenant_id = Some(tenant.to_string()));
    }

    /// Marks the request as a security event (a body naming another tenant).
    pub fn security_violation(&self, detail: impl Into<String>) {
        let detail = detail.into();
        self.with(|s| {
            s.outcome = Some(AuditOutcome::SecurityViolation);
            s.add_detail(detail);
        });
    }

    /// Adds to the record's detail; earlier details (a security event in
    /// one batch item) are kept.
    pub fn detail(&self, detail: impl Into<String>) {
        let detail = detail.into();
        self.with(|s| s.add_detail(detail));
    }
}

/// Counts a request in flight until dropped: also when its client goes
/// away and the request's future is dropped unfinished.
struct InFlight(::metrics::Gauge);

impl InFlight {
    fn enter(gauge: ::metrics::Gauge) -> InFlight {
        gauge.increment(1.0);
        InFlight(gauge)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The request id: the caller's `x-request-id` when sane, else a new UUIDv7.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn middleware(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let operation = format!(
        "{} {}",
        req.method(),
        matched.as_ref().map_or("(unmatched)", |p| p.as_str())
    );
    let route = metrics::route_label(matched.as_ref().map(|p| p.as_str()));
    let method = metrics::method_label(req.method());
    let in_flight = InFlight::enter(app.metrics.gauge("herald_http_requests_in_flight", vec![]));
    let resource = req.uri().path().to_string();
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    req.extensions_mut().insert(RequestId(request_id.clone()));

    // Every log line written while the request runs carries its request id
    // and, when the caller sent W3C trace context, its trace id.
    let trace_id = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(herald_core::normalize::TraceParent::parse)
        .map(|t| t.trace_id);
    let span =
        tracing::info_span!("request", request_id = %request_id, trace_id = tracing::field::Empty);
    if let Some(t) = &trace_id {
        span.record("trace_id", t.as_str());
    }
    let mut res = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let _entered = span.enter();

    let status = res.status().as_u16();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    let filled = std::mem::take(&mut *slot.0.lock().unwrap_or_else(|p| p.into_inner()));
    let outcome = filled.outcome.unwrap_or(match status {
        200..=399 => AuditOutcome::Success,
        401 | 403 => AuditOutcome::Denied,
        400..=499 => AuditOutcome::Rejected,
        _ => AuditOutcome::Error,
    });
    let elapsed = started.elapsed();
    let duration_us = elapsed.as_micros() as u64;
    tracing::info!(%operation, status, duration_us, tenant = filled.tenant_id.as_deref().unwrap_or("-"), "request");
    drop(in_flight);
    let problem_type = res.extensions().get::<ProblemType>().map(|p| p.0);
    let error_class = match problem_type {
        Some(slug) => Some(slug.to_string()),
        None if status >= 500 => Some("status_5xx".to_string()),
        None if status >= 400 => Some("status_4xx".to_string()),
        None => None,
    };
    app.metrics
        .request(&route, method, status, elapsed, error_class.as_deref());
    // Probes and scrapes are not operations worth an event each.
    if let Some(events) = &app.self_events
        && !(method == "GET" && (route == "/health" || route == "/metrics"))
    {
        events.emit(RequestOutcome {
            at: app.clock.now(),
            route,
            method,
            status,
            duration_us,
            tenant_id: filled.tenant_id.clone(),
            key_id: filled.key_id.clone(),
            error_class,
            problem_type,
            request_id: request_id.clone(),
        });
    }
    if operation != "GET /health" {
        app.store.record_audit(AuditRecord {
            at: app.clock.now(),
            tenant_id: filled.tenant_id,
            key_id: filled.key_id,
            operation,
            resource,
            outcome,
            status_code: status,
            request_id,
            duration_us,
            detail: filled.detail,
        });
    }
    res
}
