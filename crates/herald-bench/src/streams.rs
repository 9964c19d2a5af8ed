//! The stream scenarios: one 10,000-event stream, read whole and a page
//! at a time, and its projection folded now and at a middle version, by
//! three Heralds on the same data: without snapshots or cache (every read
//! folds all 10,000 events), with snapshots every 100 versions and no
//! cache (a read folds at most 100 events onto a snapshot), and as shipped
//! (snapshots and the cache of current states). The no-snapshot fold is the
//! floor each projection row is compared with: the ratio is the speed-up.

use std::path::Path;

use bytes::Bytes;
use reqwest::Method;
use serde_json::json;

use crate::herald::Herald;
use crate::load;
use crate::opts::Opts;
use crate::report::Row;
use crate::workload;

/// Events in the stream.
const EVENTS: u64 = 10_000;
const STREAM: &str = "order:bench";

/// Stores the stream: batches of 1,000 in version order, each event a
/// change to one of 50 fields, so the state stays small and every fold
/// step does real work.
async fn fill(h: &Herald) {
    let client = reqwest::Client::new();
    for chunk in 0..EVENTS / 1000 {
        let events: Vec<_> = (chunk * 1000 + 1..=chunk * 1000 + 1000)
            .map(|v| {
                json!({"event_type": "order.updated", "category": "business", "stream_id": STREAM,
                       "data": {format!("f{}", v % 50): v, "status": if v % 2 == 0 { "even" } else { "odd" }}})
            })
            .collect();
        let res = client
            .post(h.url("/api/v1/events/batch"))
            .bearer_auth(&h.key)
            .header("Prefer", "return=minimal")
            .json(&json!({ "events": events }))
            .send()
            .await
            .expect("batch");
        assert!(res.status().is_success(), "batch: {}", res.status());
    }
}

/// Reads `path` once, so a fold's snapshots exist before it is timed.
async fn warm(h: &Herald, path: &str) {
    let res = reqwest::Client::new()
        .get(h.url(path))
        .bearer_auth(&h.key)
        .send()
        .await
        .expect("warm-up read");
    assert!(res.status().is_success(), "{path}: {}", res.status());
}

/// Latency of `path` on one connection (a read after another).
async fn timed(opts: &Opts, h: &Herald, name: String, path: &str) -> (Row, f64) {
    let w = workload(
        Method::GET,
        vec![h.url(path)],
        Vec::<Bytes>::new(),
        Some(&h.key),
    );
    let r = load::closed_loop(&w, 1, opts.duration, usize::MAX).await;
    let p95 = r.ms(0.95);
    (
        Row {
            peak_rss_mb: Some(h.take_peak_rss_mb()),
            ..Row::new(name, "req/s", r.per_sec())
        }
        .latency(&r),
        p95,
    )
}

pub(crate) async fn scenarios(opts: &Opts, work: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    let current = "/api/v1/events/projections/order/bench";
    let middle = "/api/v1/events/projections/order/bench?at_version=5050";

    // Without snapshots or cache: the floor of every projection row.
    let bare = Herald::start_with(
        opts,
        work,
        "streams-bare",
        None,
        &[
            ("HERALD_PROJECTION_SNAPSHOT_EVERY", "0"),
            ("HERALD_PROJECTION_CACHE_ENTRIES", "0"),
        ],
    )
    .await;
    fill(&bare).await;
    let whole = format!("/api/v1/events/stream/{STREAM}?limit=10000");
    let (row, _) = timed(
        opts,
        &bare,
        format!("stream read, all {EVENTS} events"),
        &whole,
    )
    .await;
    rows.push(row);
    let page = format!("/api/v1/events/stream/{STREAM}?from_version=5000&limit=100");
    let (row, _) = timed(
        opts,
        &bare,
        "stream read, 100 from the middle".into(),
        &page,
    )
    .await;
    rows.push(row);
    let (full_fold, _) = timed(
        opts,
        &bare,
        "projection now, no snapshots (full fold)".into(),
        current,
    )
    .await;
    let floor = full_fold.herald;
    rows.push(full_fold);
    let (mid_fold, _) = timed(
        opts,
        &bare,
        "projection at_version 5050, no snapshots".into(),
        middle,
    )
    .await;
    let mid_floor = mid_fold.herald;
    rows.push(mid_fold);
    bare.stop().await;

    // Snapshots every 100 versions, no cache.
    let snap = Herald::start_with(
        opts,
        work,
        "streams-snapshots",
        None,
        &[
            ("HERALD_PROJECTION_SNAPSHOT_EVERY", "100"),
            ("HERALD_PROJECTION_CACHE_ENTRIES", "0"),
        ],
    )
    .await;
    fill(&snap).await;
    warm(&snap, current).await;
    let (row, _) = timed(
        opts,
        &snap,
        "projection now, snapshots every 100".into(),
        current,
    )
    .await;
    rows.push(Row {
        note: Some("target p95 < 5 ms; floor: the full fold, ratio = speed-up".into()),
        ..row.floor("full fold", floor)
    });
    let (row, _) = timed(
        opts,
        &snap,
        "projection at_version 5050, snapshots".into(),
        middle,
    )
    .await;
    rows.push(row.floor("full fold to 5050", mid_floor));
    snap.stop().await;

    // As shipped: snapshots and the cache of current states.
    let shipped = Herald::start(opts, work, "streams-default").await;
    fill(&shipped).await;
    warm(&shipped, current).await;
    let (row, _) = timed(
        opts,
        &shipped,
        "projection now, snapshots + cache".into(),
        current,
    )
    .await;
    rows.push(row.floor("full fold", floor));
    shipped.stop().await;
    rows
}
