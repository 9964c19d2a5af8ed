//! `GET /metrics`: Herald's own numbers in the Prometheus text format.
//!
//! Each server has its own recorder (`metrics-exporter-prometheus`'s
//! `PrometheusRecorder`, never installed as the process-global one): every
//! number is recorded through [`Metrics`], so several servers in one
//! process (the test suite) never see each other's counts, and a gauge
//! is this server's alone.
//!
//! Labels are bounded sets only: a route is its template (`MatchedPath`,
//! `/api/v1/events/{event_id}`), an unknown route is `unmatched`, a method
//! outside the usual ones is `OTHER`, an error is its problem type. No
//! tenant id, key id, event id or other caller-chosen value is ever a
//! label.
//!
//! The gauges that need the store (processing and delivery backlog, dead
//! letters, NATS publish lag) are read when scraped, with one statement of
//! counts over partial indexes (`Store::backlog`, whose cost grows with the
//! backlog, not the history), and reused for [`SAMPLE_TTL`] so scrapes in a
//! burst read the store once. Reading at scrape time costs nothing while
//! nobody scrapes, and what a scrape shows is never older than the TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_store::{Backlog, CommitObserver, CommitReport};
use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use sha2::{Digest, Sha256};

use crate::App;
use crate::http::problem::ApiError;

/// How long one read of the store's backlog serves scrapes.
pub const SAMPLE_TTL: Duration = Duration::from_secs(1);

/// Request latency buckets, seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Group-commit duration buckets, seconds.
const COMMIT_SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// Group-commit size buckets, events.
const COMMIT_EVENTS_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 20000.0,
];

enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every series' `# HELP` line.
const DESCRIPTIONS: &[(&str, Kind, &str)] = &[
    (
        "herald_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by route template, method and status",
    ),
    (
        "herald_http_request_duration_seconds",
        Kind::Histogram,
        "Time to answer an HTTP request, by route template and method",
    ),
    (
        "herald_http_errors_total",
        Kind::Counter,
        "Error answers by problem type (urn:herald:problem:<type>), or status class (status_4xx, status_5xx) when the answer is no problem document",
    ),
    (
        "herald_http_requests_in_flight",
        Kind::Gauge,
        "HTTP requests being answered",
    ),
    (
        "herald_ingest_events_in_flight",
        Kind::Gauge,
        "Events accepted for ingest and not yet committed",
    ),
    (
        "herald_group_commits_total",
        Kind::Counter,
        "Group commits, by outcome",
    ),
    (
        "herald_group_commit_events",
        Kind::Histogram,
        "Events per group commit",
    ),
    (
        "herald_group_commit_duration_seconds",
        Kind::Histogram,
        "Time of one group commit, from its transaction's start to its settled commit",
    ),
    (
        "herald_events_stored_total",
        Kind::Counter,
        "Events newly stored (duplicates and refusals excluded)",
    ),
    (
        "herald_processing_backlog",
        Kind::Gauge,
        "Processing work waiting: events not yet processed (kind=events) and processing jobs due or running (kind=jobs)",
    ),
    (
        "herald_delivery_backlog",
        Kind::Gauge,
        "Webhook deliveries due or in flight",
    ),
    (
        "herald_dead_letters",
        Kind::Gauge,
        "Dead letters: deliveries (kind=deliveries) and processing jobs (kind=processing_jobs) given up on",
    ),
    (
        "herald_nats_publish_lag_events",
        Kind::Gauge,
        "Committed events the NATS publisher has not yet published (last committed seq minus its cursor)",
    ),
    (
        "herald_store_sample_errors_total",
        Kind::Counter,
        "Scrapes whose read of the store's backlog failed (the backlog gauges keep their last value)",
    ),
    (
        "herald_self_events_total",
        Kind::Counter,
        "Self events by outcome: stored, dropped_buffer_full (the buffer was full), dropped_store (their append failed)",
    ),
    (
        "herald_self_events_queued",
        Kind::Gauge,
        "Self events waiting to be stored",
    ),
];

const METADATA: Metadata<'static> = Metadata::new("herald", Level::INFO, Some(module_path!()));

/// This server's recorder and what it samples from the store.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    sampled: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// A route label: the template, or `unmatched`.
pub fn route_label(matched: Option<&str>) -> String {
    matched.unwrap_or("unmatched").to_string()
}

/// A method label from a bounded set.
pub fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method as M;
    match *method {
        M::GET => "GET",
        M::POST => "POST",
        M::PUT => "PUT",
        M::DELETE => "DELETE",
        M::PATCH => "PATCH",
        M::HEAD => "HEAD",
        M::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = [
            ("herald_http_request_duration_seconds", LATENCY_BUCKETS),
            (
                "herald_group_commit_duration_seconds",
                COMMIT_SECONDS_BUCKETS,
            ),
            ("herald_group_commit_events", COMMIT_EVENTS_BUCKETS),
        ]
        .into_iter()
        .fold(PrometheusBuilder::new(), |b, (name, buckets)| {
            b.set_buckets_for_metric(Matcher::Full(name.into()), buckets)
                .expect("bucket lists are not empty")
        });
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let m = Metrics {
            inner: Arc::new(Inner {
                recorder,
                handle,
                sampled: tokio::sync::Mutex::new(None),
            }),
        };
        m.describe();
        m
    }

    fn describe(&self) {
        let r = &self.inner.recorder;
        for (name, kind, help) in DESCRIPTIONS {
            let (name, help) = (metrics::KeyName::from(*name), (*help).into());
            match kind {
                Kind::Counter => r.describe_counter(name, None, help),
                Kind::Gauge => r.describe_gauge(name, None, help),
                Kind::Histogram => r.describe_histogram(name, None, help),
            }
        }
    }

    pub fn counter(&self, name: &'static str, labels: Vec<Label>) -> metrics::Counter {
        self.inner
            .recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    pub fn gauge(&self, name: &'static str, labels: Vec<Label>) -> metrics::Gauge {
        self.inner
            .recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    pub fn histogram(&self, name: &'static str, labels: Vec<Label>) -> metrics::Histogram {
        self.inner
            .recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// One answered request. `error` is its problem type (or status class).
    pub fn request(
        &self,
        route: &str,
        method: &'static str,
        status: u16,
        elapsed: Duration,
        error: Option<&str>,
    ) {
        self.counter(
            "herald_http_requests_total",
            vec![
                Label::new("route", route.to_string()),
                Label::from_static_parts("method", method),
                Label::new("status", status.to_string()),
            ],
        )
        .increment(1);
        self.histogram(
            "herald_http_request_duration_seconds",
            vec![
                Label::new("route", route.to_string()),
                Label::from_static_parts("method", method),
            ],
        )
        .record(elapsed.as_secs_f64());
        if let Some(kind) = error {
            self.counter(
                "herald_http_errors_total",
                vec![Label::new("type", kind.to_string())],
            )
            .increment(1);
        }
    }

    /// What a self event came to (`stored`, `dropped_buffer_full`, `dropped_store`).
    pub fn self_events(&self, outcome: &'static str, n: u64) {
        self.counter(
            "herald_self_events_total",
            vec![Label::from_static_parts("outcome", outcome)],
        )
        .increment(n);
    }

    /// Moves the sampled gauges to what the store and this server hold
    /// now, at most once per [`SAMPLE_TTL`].
    async fn sample(&self, app: &App) {
        let mut last = self.inner.sampled.lock().await;
        if last.is_some_and(|at| at.elapsed() < SAMPLE_TTL) {
            return;
        }
        self.gauge("herald_ingest_events_in_flight", vec![])
            .set(app.admission.in_flight() as f64);
        if let Some(s) = &app.self_events {
            self.gauge("herald_self_events_queued", vec![])
                .set(s.queued() as f64);
        }
        let cursor = app.publisher_cursor();
        match app.store.backlog(&cursor).await {
            Ok(b) => self.set_backlog(&b, app.publisher.is_some()),
            Err(e) => {
                tracing::warn!(error = %herald_store::error_chain(&e), "metrics: reading the backlog failed");
                self.counter("herald_store_sample_errors_total", vec![])
                    .increment(1);
            }
        }
        *last = Some(Instant::now());
    }

    fn set_backlog(&self, b: &Backlog, nats: bool) {
        let kind = |k: &'static str| vec![Label::from_static_parts("kind", k)];
        self.gauge("herald_processing_backlog", kind("events"))
            .set(b.events_pending as f64);
        self.gauge("herald_processing_backlog", kind("jobs"))
            .set(b.processing_jobs as f64);
        self.gauge("herald_delivery_backlog", vec![])
            .set(b.deliveries as f64);
        self.gauge("herald_dead_letters", kind("deliveries"))
            .set(b.dead_deliveries as f64);
        self.gauge("herald_dead_letters", kind("processing_jobs"))
            .set(b.dead_processing_jobs as f64);
        if nats {
            let lag = b.last_seq - b.cursor.unwrap_or(0);
            self.gauge("herald_nats_publish_lag_events", vec![])
                .set(lag.max(0) as f64);
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }

    /// Folds recorded histogram samples into their buckets; run
    /// periodically, so samples do not pile up between scrapes.
    pub fn upkeep(&self) {
        self.inner.handle.run_upkeep();
    }
}

impl CommitObserver for Metrics {
    fn committed(&self, report: &CommitReport) {
        let outcome = if report.committed {
            "committed"
        } else {
            "failed"
        };
        self.counter(
            "herald_group_commits_total",
            vec![Label::from_static_parts("outcome", outcome)],
        )
        .increment(1);
        self.histogram("herald_group_commit_events", vec![])
            .record(report.events as f64);
        self.histogram("herald_group_commit_duration_seconds", vec![])
            .record(report.duration.as_secs_f64());
        if report.stored > 0 {
            self.counter("herald_events_stored_total", vec![])
                .increment(report.stored as u64);
        }
    }
}

/// The bearer token `GET /metrics` wants, when one is set: compared by
/// hash in constant time, like API keys.
fn authorized(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = &app.config.metrics_token else {
        return true;
    };
    let sent = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or_default();
    let (a, b): ([u8; 32], [u8; 32]) = (
        Sha256::digest(sent.as_bytes()).into(),
        Sha256::digest(token.0.as_bytes()).into(),
    );
    a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /metrics`.
pub async fn scrape(State(app): State<App>, headers: HeaderMap) -> Result<Response, ApiError> {
    if !authorized(&app, &headers) {
        return Err(ApiError::unauthorized(
            "send the metrics token (metrics_token) as `Authorization: Bearer <token>`",
        ));
    }
    app.metrics.sample(&app).await;
    let mut res = (StatusCode::OK, app.metrics.render()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(res)
}

/// Folds recorded histogram samples every `every` until `stop`.
pub async fn upkeep(
    metrics: Metrics,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => metrics.upkeep(),
            _ = stop.changed() => return,
        }
    }
}
