//! The statistics scenarios. On the preloaded store of the read section
//! (`reads_rows`): statistics without a filter and with a type + time
//! filter, and a timeseries of one day at 1 h buckets, each after the
//! rollups folded the preload, one connection (latency is the figure).
//! On their own (`scenarios`): batch ingest with the rollup follower on vs
//! off, on fresh stores, the same events; the ratio is the cost of keeping
//! rollups.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use serde_json::Value;

use crate::herald::Herald;
use crate::load;
use crate::opts::Opts;
use crate::report::Row;

/// Waits until the rollups folded every stored event (at most `limit`);
/// how long it took, `None` on time-out.
pub(crate) async fn folded(h: &Herald, limit: Duration) -> Option<Duration> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(res) = client
            .get(h.url("/api/v1/events/statistics?top=1"))
            .bearer_auth(&h.key)
            .send()
            .await
            && let Ok(body) = res.json::<Value>().await
            && body["rollup_lag_events"] == 0
        {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// Rows for statistics on the preloaded `h`; `mid` is an event time in the
/// middle of the preload (RFC 3339).
pub(crate) async fn reads_rows(h: &Herald, mid: &str, d: Duration) -> Vec<Row> {
    let mut rows = Vec::new();
    let waited = folded(h, Duration::from_secs(1800)).await;
    let note = match waited {
        Some(w) => format!(
            "rollups caught up {:.1} s after the preload",
            w.as_secs_f64()
        ),
        None => "rollups had NOT caught up after 30 min: answers include the tail".into(),
    };
    let mid_t = time::OffsetDateTime::parse(mid, &time::format_description::well_known::Rfc3339)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let day_later = (mid_t + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let enc = |s: &str| s.replace('+', "%2B").replace(':', "%3A");
    let cases = [
        (
            "statistics: no filter",
            "/api/v1/events/statistics".to_string(),
        ),
        (
            "statistics: type + time filter",
            format!(
                "/api/v1/events/statistics?event_type=request_received&start_time={}&end_time={}",
                enc(mid),
                enc(&day_later)
            ),
        ),
        (
            "timeseries: 1 day at 1 h buckets",
            format!(
                "/api/v1/events/statistics/timeseries?interval=1h&group_by=event_type&start_time={}&end_time={}",
                enc(mid),
                enc(&day_later)
            ),
        ),
    ];
    for (name, path) in cases {
        let w = crate::workload(Method::GET, vec![h.url(&path)], Vec::new(), Some(&h.key));
        let r = load::closed_loop(&w, 1, d, usize::MAX).await;
        rows.push(
            Row {
                note: Some(note.clone()),
                ..Row::new(format!("{name}, 1 conn"), "req/s", r.per_sec())
            }
            .latency(&r),
        );
    }
    rows
}

/// Batch ingest of `bodies` (batches of 1,000) at 4 connections on a fresh
/// store; events per second.
async fn ingest(
    opts: &Opts,
    work: &Path,
    name: &str,
    rollups: bool,
    bodies: &[Bytes],
) -> (f64, load::LoadResult) {
    let h = Herald::start_with(
        opts,
        work,
        name,
        None,
        &[("HERALD_ROLLUPS", if rollups { "true" } else { "false" })],
    )
    .await;
    let w = crate::workload(
        Method::POST,
        vec![h.url("/api/v1/events/batch")],
        bodies.to_vec(),
        Some(&h.key),
    );
    let r = load::closed_loop(&w, 4, Duration::from_secs(3600), bodies.len()).await;
    h.stop().await;
    (r.per_sec() * 1000.0, r)
}

/// Batch ingest with rollups on vs off, the same events, alternating runs.
pub(crate) async fn scenarios(opts: &Opts, work: &Path, events: &[Bytes]) -> Vec<Row> {
    let n = events.len().min(if opts.quick { 50_000 } else { 200_000 });
    let bodies = crate::batch_bodies(&events[..n], 1000);
    let mut rows = Vec::new();
    let (off, r_off) = ingest(opts, work, "rollups-off", false, &bodies).await;
    let (on, r_on) = ingest(opts, work, "rollups-on", true, &bodies).await;
    rows.push(
        Row {
            note: Some(format!("{n} events, fresh store")),
            ..Row::new("batch 1000 × 4 conns, rollups off", "events/s", off)
        }
        .latency(&r_off),
    );
    rows.push(
        Row {
            note: Some(format!(
                "{:.2} × rollups off (target ≥ 0.9)",
                on / off.max(1.0)
            )),
            ..Row::new("batch 1000 × 4 conns, rollups on", "events/s", on)
        }
        .latency(&r_on),
    );
    rows
}
