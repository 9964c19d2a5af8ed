//! The workflow-waits scenario, on one release Herald on the embedded
//! store: batch ingest at full speed (100 events a request, 4
//! connections, closed loop) with no wait open, then with 100,000 open
//! waits of which 1 % match the ingested events, as a ratio to the first.
//!
//! The waits: 99,000 on 1,000 event types the dataset never sends, each
//! with a filter over its own context (`event.data.n ==
//! wait.context.n`), so the matcher's type index must keep them off the
//! ingest path; 1,000 on the dataset's own types, without a filter, each
//! resolved by the first event of its type. The row's note says how many
//! waits the run resolved and how long creating them took.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use crate::herald::Herald;
use crate::load;
use crate::opts::Opts;
use crate::report::Row;
use crate::{batch_bodies, workload};

const WAITS: usize = 100_000;
const MATCHING: usize = WAITS / 100;

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

/// The waits' bodies: `MATCHING` on the dataset's `types`, the rest on
/// types never sent.
fn wait_bodies(types: &[String]) -> Vec<Bytes> {
    (0..WAITS)
        .map(|i| {
            let body = if i % (WAITS / MATCHING) == 0 {
                json!({"workflow_instance_id": format!("wf-{i}"),
                       "event_type": types[(i / (WAITS / MATCHING)) % types.len()],
                       "timeout": 86_400})
            } else {
                json!({"workflow_instance_id": format!("wf-{i}"),
                       "event_type": format!("wait.bench.t{}", i % 1000),
                       "filter": "event.data.n == wait.context.n",
                       "context": {"n": i},
                       "timeout": 86_400})
            };
            Bytes::from(body.to_string())
        })
        .collect()
}

/// How many of the waits are resolved.
async fn resolved(h: &Herald) -> u64 {
    let client = load::client(1);
    let mut n = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut url = h.url("/api/v1/waits?status=resolved&limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let Ok(res) = client.get(url).bearer_auth(&h.key).send().await else {
            return n;
        };
        let Ok(page) = res.json::<Value>().await else {
            return n;
        };
        n += page["count"].as_u64().unwrap_or(0);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return n,
        }
    }
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
    let h = Herald::start(opts, work, "waits").await;
    let hundred = batch_bodies(events, 100);

    let alone = ingest(opts, &h, &hundred).await;
    rows.push(
        Row {
            peak_rss_mb: Some(h.take_peak_rss_mb()),
            ..Row::new(
                "batch ingest, no open waits",
                "events/s",
                alone.per_sec() * 100.0,
            )
        }
        .latency(&alone),
    );

    let started = Instant::now();
    let w = workload(
        Method::POST,
        vec![h.url("/api/v1/waits")],
        wait_bodies(&types),
        Some(&h.key),
    );
    let made = load::closed_loop(&w, 16, Duration::from_secs(600), WAITS).await;
    let creating = started.elapsed();
    if let Some(e) = &made.first_error {
        eprintln!("waits: creating a wait failed: {e}");
    }
    rows.push(
        Row::new(
            format!("create {WAITS} waits, 16 conns"),
            "req/s",
            made.per_sec(),
        )
        .latency(&made),
    );

    // Before measuring, let the matcher load the new waits (a one-time
    // read of 100,000 rows): a sentinel wait stored after them resolves
    // only once the matcher has passed its event.
    let client = load::client(1);
    let sentinel: Value = client
        .post(h.url("/api/v1/waits"))
        .bearer_auth(&h.key)
        .json(&json!({"workflow_instance_id": "sentinel", "event_type": "bench.sentinel", "timeout": 3600}))
        .send()
        .await
        .expect("sentinel wait")
        .json()
        .await
        .expect("sentinel wait JSON");
    let sentinel_id = sentinel["wait_id"].as_str().unwrap_or_default().to_string();
    client
        .post(h.url("/api/v1/events/create"))
        .bearer_auth(&h.key)
        .json(&json!({"event_type": "bench.sentinel", "category": "system"}))
        .send()
        .await
        .expect("sentinel event");
    let loading = Instant::now();
    let url = h.url(&format!("/api/v1/waits/{sentinel_id}?wait=60"));
    let indexed = client.get(url).bearer_auth(&h.key).send().await;
    let indexed_in = loading.elapsed();
    let indexed = match indexed {
        Ok(res) => res
            .json::<Value>()
            .await
            .map(|w| w["status"] == "resolved")
            .unwrap_or(false),
        Err(_) => false,
    };

    let beside = ingest(opts, &h, &hundred).await;
    // Let the matcher finish the last batches before counting.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = resolved(&h).await;
    rows.push(
        Row {
            peak_rss_mb: Some(h.take_peak_rss_mb()),
            note: Some(format!(
                "{} waits open ({} failed to create, in {:.1} s; indexed {} {:.1} s before the run), {MATCHING} of them on the dataset's {} types; {done} resolved by the run",
                made.ok,
                made.failed,
                creating.as_secs_f64(),
                if indexed { "within" } else { "NOT within" },
                indexed_in.as_secs_f64(),
                types.len(),
            )),
            ..Row::new(
                format!("batch ingest, {WAITS} open waits (1 % match)"),
                "events/s",
                beside.per_sec() * 100.0,
            )
        }
        .latency(&beside)
        .floor("no open waits", alone.per_sec() * 100.0),
    );
    h.stop().await;
    rows
}
