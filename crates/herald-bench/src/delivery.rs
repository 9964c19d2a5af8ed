//! The delivery scenarios: steady ingest into Herald with 10 webhook
//! subscriptions pointing at a fast receiver inside this process, which
//! counts receipts per endpoint and measures each one's lag from the
//! ingest acknowledgement of its event; beside it the **delivery floor**,
//! a plain HTTP client posting the same bodies to the same receiver at the
//! worker's concurrency; and the same ingest with one of the 10 endpoints
//! hanging, to see what it costs the healthy 9.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::{Value, json};

use crate::herald::Herald;
use crate::load::{self, Workload};
use crate::opts::Opts;
use crate::report::Row;

/// Subscriptions, each to an endpoint of its own.
const ENDPOINTS: usize = 10;
/// Steady ingest rate, events per second.
const RATE: u64 = 1000;
/// Events per ingest request: 100 requests per second at [`RATE`].
const BATCH: usize = 10;
/// Sends Herald's delivery worker has in flight at once: its
/// `delivery_concurrency` default, set explicitly below, so the floor posts
/// at the same concurrency (10 endpoints × the per-endpoint budget of 8
/// would allow 80; the global bound of 64 is the one that holds).
const WORKER_CONCURRENCY: usize = 64;
/// Bodies kept for the floor to post.
const FLOOR_BODIES: usize = 5000;

/// What the receiver has seen, shared with its handlers.
struct Tracker {
    /// Receipts per endpoint (index = the `n` of `/hooks/{n}`).
    receipts: Vec<AtomicU64>,
    /// Requests to the floor path.
    floor: AtomicU64,
    lags: Mutex<Lags>,
    /// Received webhook bodies, for the floor to send again.
    bodies: Mutex<Vec<Bytes>>,
}

/// Event id → when its ingest was acknowledged, and the lag histogram.
struct Lags {
    acked: HashMap<String, Instant>,
    /// Receipts that came in before their event's acknowledgement (Herald
    /// can deliver before the ingest answer reaches the client): lag 0.
    early: HashMap<String, u64>,
    hist: Histogram<u64>,
    last_receipt: Option<Instant>,
}

impl Tracker {
    fn new() -> Tracker {
        Tracker {
            receipts: (0..ENDPOINTS).map(|_| AtomicU64::new(0)).collect(),
            floor: AtomicU64::new(0),
            lags: Mutex::new(Lags {
                acked: HashMap::new(),
                early: HashMap::new(),
                hist: new_hist(),
                last_receipt: None,
            }),
            bodies: Mutex::new(Vec::new()),
        }
    }

    /// Receipts on endpoints `range`.
    fn received(&self, range: std::ops::Range<usize>) -> u64 {
        self.receipts[range]
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .sum()
    }

    fn acked(&self, ids: &[String], at: Instant) {
        let mut l = self.lags.lock().expect("lags lock");
        for id in ids {
            if let Some(n) = l.early.remove(id) {
                let _ = l.hist.record_n(1, n);
            }
            l.acked.insert(id.clone(), at);
        }
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// The event id in a webhook body (`{"type", "timestamp", "data": event}`).
fn event_id(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v["data"]["event_id"].as_str().map(str::to_string)
}

async fn hook(State(t): State<Arc<Tracker>>, Path(n): Path<usize>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let Some(counter) = t.receipts.get(n) else {
        return StatusCode::NOT_FOUND;
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Some(id) = event_id(&body) {
        let mut l = t.lags.lock().expect("lags lock");
        match l.acked.get(&id) {
            Some(&at) => {
                let us = now.saturating_duration_since(at).as_micros().max(1) as u64;
                let _ = l.hist.record(us);
            }
            None => *l.early.entry(id).or_default() += 1,
        }
        l.last_receipt = Some(now);
    }
    let mut bodies = t.bodies.lock().expect("bodies lock");
    if bodies.len() < FLOOR_BODIES {
        bodies.push(body);
    }
    StatusCode::OK
}

/// The floor's endpoint: the same parsing and lookup as [`hook`].
async fn floor(State(t): State<Arc<Tracker>>, body: Bytes) -> StatusCode {
    t.floor.fetch_add(1, Ordering::Relaxed);
    if let Some(id) = event_id(&body) {
        let l = t.lags.lock().expect("lags lock");
        std::hint::black_box(l.acked.get(&id));
    }
    StatusCode::OK
}

/// An endpoint that never answers (Herald's timeout ends each attempt).
async fn hang() -> StatusCode {
    std::future::pending::<()>().await;
    StatusCode::OK
}

/// The receiver on 127.0.0.1:0: `/hooks/{n}`, `/hang/{n}` and `/floor`.
async fn start_receiver(tracker: Arc<Tracker>) -> (String, tokio::task::JoinHandle<()>) {
    let app = axum::Router::new()
        .route("/hooks/{n}", axum::routing::post(hook))
        .route("/hang/{n}", axum::routing::post(hang))
        .route("/floor", axum::routing::post(floor))
        .with_state(tracker);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the webhook receiver");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, task)
}

/// One delivery run's figures.
struct Run {
    /// Receipts per second on the healthy endpoints, from the first
    /// ingest request to the last receipt (to giving up on the drain when
    /// some never came).
    per_sec: f64,
    /// Receipts per second on endpoints 1..10 (the 9 that stay healthy in
    /// the hanging run).
    nine_per_sec: f64,
    received: u64,
    expected: u64,
    hist: Histogram<u64>,
    ingest_failed: u64,
    peak_rss_mb: f64,
    /// Bodies as delivered, for the floor.
    bodies: Vec<Bytes>,
}

/// Ingests at [`RATE`] for the scenario's duration into a fresh Herald
/// whose 10 subscriptions point at the receiver (endpoint 0 hanging when
/// `hanging`), then waits for the deliveries to drain.
async fn run(opts: &Opts, work: &std::path::Path, events: &[Bytes], hanging: bool) -> Run {
    let tracker = Arc::new(Tracker::new());
    let (url, receiver) = start_receiver(tracker.clone()).await;
    let h = Herald::start_with(
        opts,
        work,
        if hanging { "delivery-hang" } else { "delivery" },
        None,
        &[
            ("HERALD_DELIVERY_ALLOWED_NETWORKS", "127.0.0.0/8"),
            ("HERALD_DELIVERY_CONCURRENCY", "64"),
        ],
    )
    .await;
    let client = load::client(64);
    for n in 0..ENDPOINTS {
        let path = if hanging && n == 0 { "hang" } else { "hooks" };
        let res = client
            .post(h.url("/api/v1/events/subscriptions"))
            .bearer_auth(&h.key)
            .json(&json!({"subscriber_name": format!("bench-{n}"), "callback_url": format!("{url}/{path}/{n}")}))
            .send()
            .await
            .expect("subscribe");
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        assert_eq!(status, 201, "subscribe: {body}");
    }
    let batches: Vec<Bytes> = crate::batch_bodies(events, BATCH);

    // Open loop: a batch every 1/100 s, each timed by its own task.
    let interval = Duration::from_secs_f64(BATCH as f64 / RATE as f64);
    let started = Instant::now();
    let ingest_failed = Arc::new(AtomicU64::new(0));
    let acked_events = Arc::new(AtomicU64::new(0));
    let mut sends = Vec::new();
    for i in 0u32.. {
        let at = started + interval * i;
        if at >= started + opts.duration {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        let (client, url, key, body) = (
            client.clone(),
            h.url("/api/v1/events/batch"),
            h.key.clone(),
            batches[i as usize % batches.len()].clone(),
        );
        let (tracker, failed, acked) =
            (tracker.clone(), ingest_failed.clone(), acked_events.clone());
        sends.push(tokio::spawn(async move {
            let res = client
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            let out: Option<Value> = match res {
                Ok(r) if r.status().as_u16() == 201 => r.json().await.ok(),
                _ => None,
            };
            let at = Instant::now();
            let ids: Vec<String> = out
                .as_ref()
                .and_then(|o| o["results"].as_array())
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| r["event"]["event_id"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if ids.len() < BATCH {
                failed.fetch_add((BATCH - ids.len()) as u64, Ordering::Relaxed);
            }
            acked.fetch_add(ids.len() as u64, Ordering::Relaxed);
            tracker.acked(&ids, at);
        }));
    }
    for s in sends {
        let _ = s.await;
    }
    let healthy = if hanging { 1..ENDPOINTS } else { 0..ENDPOINTS };
    let expected = acked_events.load(Ordering::Relaxed) * healthy.len() as u64;
    // Drain: until every delivery to a healthy endpoint is in, or no
    // receipt came for the drain timeout.
    let quiet = if opts.quick {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(30)
    };
    let mut last = (tracker.received(healthy.clone()), Instant::now());
    while tracker.received(healthy.clone()) < expected && last.1.elapsed() < quiet {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = tracker.received(healthy.clone());
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    let received = tracker.received(healthy.clone());
    let nine = tracker.received(1..ENDPOINTS);
    let (hist, last_receipt) = {
        let l = tracker.lags.lock().expect("lags lock");
        (l.hist.clone(), l.last_receipt)
    };
    // All in: up to the last receipt. Not all in: up to giving up, so a
    // stalled delivery counts the time it stalled.
    let end = match last_receipt {
        Some(t) if received >= expected => t,
        _ => Instant::now(),
    };
    let span = end
        .saturating_duration_since(started)
        .as_secs_f64()
        .max(1e-3);
    let peak_rss_mb = h.take_peak_rss_mb();
    h.stop().await;
    receiver.abort();
    let bodies = std::mem::take(&mut *tracker.bodies.lock().expect("bodies lock"));
    Run {
        per_sec: received as f64 / span,
        nine_per_sec: nine as f64 / span,
        received,
        expected,
        hist,
        ingest_failed: ingest_failed.load(Ordering::Relaxed),
        peak_rss_mb,
        bodies,
    }
}

/// The delivery floor: the bodies Herald delivered, posted by a plain
/// client to the same receiver at the worker's concurrency.
async fn floor_run(opts: &Opts, bodies: Vec<Bytes>) -> load::LoadResult {
    let tracker = Arc::new(Tracker::new());
    let (url, receiver) = start_receiver(tracker).await;
    let w = Workload {
        method: Method::POST,
        urls: Arc::new(vec![format!("{url}/floor")]),
        bodies: Arc::new(bodies),
        key: None,
        minimal: false,
    };
    let r = load::closed_loop(&w, WORKER_CONCURRENCY, opts.duration, usize::MAX).await;
    receiver.abort();
    r
}

fn ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0)
}

/// Runs the delivery scenarios and returns their rows.
pub(crate) async fn scenarios(opts: &Opts, work: &std::path::Path, events: &[Bytes]) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut healthy = run(opts, work, events, false).await;
    assert!(
        !healthy.bodies.is_empty(),
        "Herald delivered nothing, so there is no delivery to compare with the floor"
    );
    let floor = floor_run(opts, std::mem::take(&mut healthy.bodies)).await;
    let lag_row = |name: String, r: &Run, per_sec: f64| Row {
        p50_ms: ms(&r.hist, 0.50),
        p95_ms: ms(&r.hist, 0.95),
        p99_ms: ms(&r.hist, 0.99),
        max_ms: (!r.hist.is_empty()).then(|| r.hist.max() as f64 / 1000.0),
        peak_rss_mb: Some(r.peak_rss_mb),
        failed: r.ingest_failed + r.expected.saturating_sub(r.received),
        ..Row::new(name, "deliveries/s", per_sec)
    };
    let rate = format!("{RATE} events/s × {ENDPOINTS} subscriptions");
    rows.push(
        Row {
            note: Some(format!(
                "latency = lag from ingest ack to receipt; {} of {} deliveries received",
                healthy.received, healthy.expected
            )),
            ..lag_row(format!("delivery, {rate}"), &healthy, healthy.per_sec)
        }
        .floor("delivery", floor.per_sec()),
    );
    rows.push(
        Row::new(
            format!("  delivery floor, {WORKER_CONCURRENCY} conns"),
            "req/s",
            floor.per_sec(),
        )
        .latency(&floor),
    );
    let hung = run(opts, work, events, true).await;
    let cost = if healthy.nine_per_sec > 0.0 {
        (1.0 - hung.nine_per_sec / healthy.nine_per_sec) * 100.0
    } else {
        0.0
    };
    rows.push(
        Row {
            note: Some(format!(
                "the 9 healthy endpoints; cost of the hanging one: {cost:.1} %; {} of {} received",
                hung.received, hung.expected
            )),
            ..lag_row(
                format!("delivery, {rate}, one hanging"),
                &hung,
                hung.nine_per_sec,
            )
        }
        .floor("same 9, none hanging", healthy.nine_per_sec),
    );
    rows
}
