//! The live-tail scenarios, on one release Herald on the embedded store,
//! with 100 clients following `GET /api/v1/events/tail`, each filtered to
//! one of the dataset's event types (so each event goes to the few clients
//! that asked for its type, as in real use):
//!
//! - **Ingest at 5,000 events/s** (open loop, a batch of 50 every 10 ms)
//!   with no tail open, then with the 100 clients reading: events
//!   acknowledged per second and each batch's latency, the second as a
//!   ratio to the first.
//! - **Commit-to-client lag** in that second run: each client takes the
//!   event id out of every message; the lag is its receipt time minus the
//!   acknowledgement of its batch (a message before its acknowledgement
//!   counts 0).
//! - **Batch ingest at full speed** (100 events a request, 4 connections,
//!   closed loop) without and with the clients: a stricter comparison than
//!   the target's, at ~3.5 times its rate.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use reqwest::Method;
use serde_json::Value;

use crate::herald::Herald;
use crate::load;
use crate::opts::Opts;
use crate::report::Row;
use crate::{batch_bodies, workload};

const CLIENTS: usize = 100;
const RATE: u64 = 5000;
const BATCH: usize = 50;

/// What the clients saw: receipts by event id, and a count.
#[derive(Default)]
struct Seen {
    receipts: Mutex<Vec<(String, Instant)>>,
    messages: AtomicU64,
}

/// Opens `CLIENTS` tails, client `i` filtered to `types[i % len]`; each
/// reads until aborted and records every event it is sent.
async fn open_clients(
    h: &Herald,
    types: &[String],
    seen: Arc<Seen>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = load::client(CLIENTS);
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let url = h.url(&format!(
            "/api/v1/events/tail?event_type={}",
            types[i % types.len()]
        ));
        let res = client
            .get(url)
            .bearer_auth(&h.key)
            .send()
            .await
            .expect("open a tail");
        assert_eq!(res.status().as_u16(), 200, "tail");
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut res = res;
            let mut buf: Vec<u8> = Vec::new();
            while let Ok(Some(chunk)) = res.chunk().await {
                let at = Instant::now();
                buf.extend_from_slice(&chunk);
                let mut got = Vec::new();
                while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
                    let block: Vec<u8> = buf.drain(..end + 2).collect();
                    if let Some(id) = event_id(&block) {
                        got.push((id, at));
                    }
                }
                if !got.is_empty() {
                    seen.messages.fetch_add(got.len() as u64, Ordering::Relaxed);
                    seen.receipts.lock().expect("receipts").extend(got);
                }
            }
        }));
    }
    tasks
}

/// The `event_id` of an SSE message's data, without parsing the JSON.
fn event_id(block: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"event_id\":\"";
    let at = block.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let id = block.get(at..at + 36)?;
    Some(String::from_utf8_lossy(id).into_owned())
}

/// Closed-loop batch ingest, 4 connections, 100 events a request.
async fn ingest(opts: &Opts, h: &Herald, bodies: &[Bytes]) -> load::LoadResult {
    let w = workload(
        Method::POST,
        vec![h.url("/api/v1/events/batch")],
        bodies.to_vec(),
        Some(&h.key),
    );
    let w = load::Workload { minimal: true, ..w };
    load::closed_loop(&w, 4, opts.duration, usize::MAX).await
}

pub(crate) async fn scenarios(opts: &Opts, work: &Path, events: &[Bytes]) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut types: Vec<String> = events
        .iter()
        .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
        .filter_map(|v| v["event_type"].as_str().map(str::to_string))
        .collect();
    types.sort();
    types.dedup();
    let h = Herald::start(opts, work, "tail").await;
    let hundred = batch_bodies(events, 100);

    let alone = ingest(opts, &h, &hundred).await;
    rows.push(
        Row {
            peak_rss_mb: Some(h.take_peak_rss_mb()),
            ..Row::new(
                "batch ingest, no tail clients",
                "events/s",
                alone.per_sec() * 100.0,
            )
        }
        .latency(&alone),
    );
    let seen = Arc::new(Seen::default());
    let clients = open_clients(&h, &types, seen.clone()).await;
    let beside = ingest(opts, &h, &hundred).await;
    rows.push(
        Row {
            peak_rss_mb: Some(h.take_peak_rss_mb()),
            note: Some(format!(
                "{CLIENTS} tail clients, one event type each ({} types); {} messages sent to them",
                types.len(),
                seen.messages.load(Ordering::Relaxed)
            )),
            ..Row::new(
                format!("batch ingest, {CLIENTS} tail clients following"),
                "events/s",
                beside.per_sec() * 100.0,
            )
        }
        .latency(&beside)
        .floor("no tail clients", alone.per_sec() * 100.0),
    );

    // At the steady 5,000 events/s: ingest kept with the clients reading
    // (as a ratio to the same load with none), and the lag.
    for c in clients {
        c.abort();
    }
    let fifty = batch_bodies(events, BATCH);
    let quiet = open_loop(opts, &h, &fifty).await;
    rows.push(quiet.row(
        format!("ingest at {RATE} events/s, no tail clients"),
        None,
        &h,
    ));
    let seen = Arc::new(Seen::default());
    let clients = open_clients(&h, &types, seen.clone()).await;
    let started = Instant::now();
    let busy = open_loop(opts, &h, &fifty).await;
    rows.push(busy.row(
        format!("ingest at {RATE} events/s, {CLIENTS} tail clients"),
        Some(quiet.per_sec),
        &h,
    ));
    // Every acknowledged event reaches the clients of its type: wait until
    // receipts stop growing (at most 10 s).
    let mut last = (0usize, Instant::now());
    while last.1.elapsed() < Duration::from_secs(2)
        && started.elapsed() < opts.duration + Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let n = seen.receipts.lock().expect("receipts").len();
        if n != last.0 {
            last = (n, Instant::now());
        }
    }
    for c in clients {
        c.abort();
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram");
    let (mut matched, mut before_ack) = (0u64, 0u64);
    for (id, at) in seen.receipts.lock().expect("receipts").iter() {
        let Some(acked_at) = busy.acks.get(id) else {
            continue;
        };
        matched += 1;
        let lag = at.saturating_duration_since(*acked_at);
        if lag.is_zero() {
            before_ack += 1;
        }
        let _ = hist.record((lag.as_micros() as u64).max(1));
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    rows.push(Row {
        p50_ms: Some(ms(0.50)),
        p95_ms: Some(ms(0.95)),
        p99_ms: Some(ms(0.99)),
        max_ms: Some(hist.max() as f64 / 1000.0),
        peak_rss_mb: Some(h.take_peak_rss_mb()),
        note: Some(format!(
            "latency = lag from the ingest ack to the client's receipt (target p99 < 50 ms); {matched} receipts of {} events acked, {before_ack} before their ack (counted 0)",
            busy.acks.len()
        )),
        ..Row::new(
            format!("tail lag, {RATE} events/s, {CLIENTS} clients"),
            "receipts/s",
            matched as f64 / opts.duration.as_secs_f64(),
        )
    });
    h.stop().await;
    rows
}

/// One open-loop ingest run: when each event was acknowledged, the
/// acknowledged events per second and the latency of each batch.
struct OpenLoop {
    acks: HashMap<String, Instant>,
    per_sec: f64,
    hist: Histogram<u64>,
    failed: u64,
}

impl OpenLoop {
    fn row(&self, name: String, floor: Option<f64>, h: &Herald) -> Row {
        let ms = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        let row = Row {
            p50_ms: Some(ms(0.50)),
            p95_ms: Some(ms(0.95)),
            p99_ms: Some(ms(0.99)),
            max_ms: Some(self.hist.max() as f64 / 1000.0),
            peak_rss_mb: Some(h.take_peak_rss_mb()),
            failed: self.failed,
            note: Some("latency = each batch's acknowledgement time".into()),
            ..Row::new(name, "events/s", self.per_sec)
        };
        match floor {
            Some(f) => row.floor("the same load, no tail clients", f),
            None => row,
        }
    }
}

/// Ingests at [`RATE`] for the scenario's duration: a batch of [`BATCH`]
/// every 10 ms, each request its own task.
async fn open_loop(opts: &Opts, h: &Herald, bodies: &[Bytes]) -> OpenLoop {
    let client = load::client(16);
    let acks: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("histogram"),
    ));
    let failed = Arc::new(AtomicU64::new(0));
    let interval = Duration::from_secs_f64(BATCH as f64 / RATE as f64);
    let started = Instant::now();
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
            bodies[i as usize % bodies.len()].clone(),
        );
        let (acks, hist, failed) = (acks.clone(), hist.clone(), failed.clone());
        sends.push(tokio::spawn(async move {
            let sent = Instant::now();
            let res = client
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .header("prefer", "return=minimal")
                .body(body)
                .send()
                .await;
            let out: Option<Value> = match res {
                Ok(r) if r.status().is_success() => r.json().await.ok(),
                _ => None,
            };
            let at = Instant::now();
            let _ = hist
                .lock()
                .expect("hist")
                .record((at.duration_since(sent).as_micros() as u64).max(1));
            let ids: Vec<&str> = out
                .as_ref()
                .and_then(|o| o["results"].as_array())
                .into_iter()
                .flatten()
                .filter_map(|r| r["event_id"].as_str())
                .collect();
            if ids.len() < BATCH {
                failed.fetch_add((BATCH - ids.len()) as u64, Ordering::Relaxed);
            }
            let mut acks = acks.lock().expect("acks");
            for id in ids {
                acks.insert(id.to_string(), at);
            }
        }));
    }
    for s in sends {
        let _ = s.await;
    }
    let span = started.elapsed().as_secs_f64().max(1e-3);
    let acks = std::mem::take(&mut *acks.lock().expect("acks"));
    let hist = hist.lock().expect("hist").clone();
    OpenLoop {
        per_sec: acks.len() as f64 / span,
        acks,
        hist,
        failed: failed.load(Ordering::Relaxed),
    }
}
