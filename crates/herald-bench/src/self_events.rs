//! The cost of self events: single-event ingest (64 connections, closed
//! loop) on the embedded store with `self_events` off and on, alternated
//! over two rounds so the machine's drift hits both alike. Each "on" row
//! is a ratio to the "off" row just before it, and its note says how many
//! self events the run stored and how many a full buffer dropped (read
//! from the server's own `/metrics`).

use std::path::Path;

use bytes::Bytes;
use reqwest::Method;

use crate::herald::Herald;
use crate::load;
use crate::opts::Opts;
use crate::report::Row;
use crate::workload;

const CONNS: usize = 64;

/// One sample's value from an exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn ingest(
    opts: &Opts,
    work: &Path,
    name: &str,
    singles: &[Bytes],
    on: bool,
) -> (load::LoadResult, f64, String) {
    let flag = if on { "true" } else { "false" };
    let h = Herald::start_with(opts, work, name, None, &[("HERALD_SELF_EVENTS", flag)]).await;
    let w = workload(
        Method::POST,
        vec![h.url("/api/v1/events/create")],
        singles.to_vec(),
        Some(&h.key),
    );
    let r = load::closed_loop(&w, CONNS, opts.duration, usize::MAX).await;
    let rss = h.take_peak_rss_mb();
    let mut note = String::new();
    if on {
        // The drain catches up after the load stops; give it a moment.
        let client = load::client(1);
        let mut text = String::new();
        for _ in 0..50 {
            text = match client.get(h.url("/metrics")).send().await {
                Ok(res) => res.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if sample(&text, "herald_self_events_queued ") == 0.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        note = format!(
            "{} self events stored, {} dropped (buffer full)",
            sample(&text, "herald_self_events_total{outcome=\"stored\"} "),
            sample(
                &text,
                "herald_self_events_total{outcome=\"dropped_buffer_full\"} "
            ),
        );
    }
    h.stop().await;
    (r, rss, note)
}

pub(crate) async fn scenarios(opts: &Opts, work: &Path, singles: &[Bytes]) -> Vec<Row> {
    let mut rows = Vec::new();
    for round in 1..=2 {
        let (off, off_rss, _) =
            ingest(opts, work, &format!("self-off-{round}"), singles, false).await;
        let (on, on_rss, note) =
            ingest(opts, work, &format!("self-on-{round}"), singles, true).await;
        rows.push(
            Row {
                peak_rss_mb: Some(off_rss),
                ..Row::new(
                    format!("single ingest, {CONNS} conns, self events off ({round})"),
                    "req/s",
                    off.per_sec(),
                )
            }
            .latency(&off),
        );
        rows.push(
            Row {
                peak_rss_mb: Some(on_rss),
                note: Some(note),
                ..Row::new(
                    format!("single ingest, {CONNS} conns, self events on ({round})"),
                    "req/s",
                    on.per_sec(),
                )
            }
            .latency(&on)
            .floor("self events off", off.per_sec()),
        );
    }
    rows
}
