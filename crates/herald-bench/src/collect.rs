//! The collection scenarios: a browser event at 64 connections
//! (`POST /api/v1/events/frontend`, the key in the query, as a snippet
//! sends it), and Segment's `/v1/batch` of 100 track messages at 4
//! connections beside the native `/api/v1/events/batch` of the same 100
//! events on the same Herald: the ratio is what the Segment decoding
//! costs. Rate limits are lifted, so the rows measure the path, not the
//! limiter's refusals.

use std::path::Path;

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use crate::herald::Herald;
use crate::load;
use crate::opts::Opts;
use crate::report::Row;
use crate::{batch_bodies, workload};

/// One dataset event as the Segment track message an SDK would send.
fn as_track(event: &Value) -> Value {
    json!({
        "type": "track",
        "event": event["event_type"],
        "userId": event["user_id"],
        "anonymousId": event["actor"]["anonymous_id"],
        "properties": event["data"],
        "context": {"library": {"name": "analytics-python", "version": "2.3.2"}},
        "timestamp": event["timestamp"],
    })
}

pub(crate) async fn scenarios(opts: &Opts, work: &Path, sample: &[Bytes]) -> Vec<Row> {
    let d = opts.duration;
    let mut rows = Vec::new();
    let lifted = [
        ("HERALD_COLLECT_KEY_RATE", "100000000"),
        ("HERALD_COLLECT_IP_RATE", "100000000"),
    ];

    // A browser event at 64 connections (target p95 < 20 ms).
    let h = Herald::start_with(opts, work, "collect-frontend", None, &lifted).await;
    let w = workload(
        Method::POST,
        vec![h.url(&format!("/api/v1/events/frontend?writeKey={}", h.key))],
        sample.to_vec(),
        None,
    );
    let r = load::closed_loop(&w, 64, d, usize::MAX).await;
    let rss = h.take_peak_rss_mb();
    h.stop().await;
    rows.push(
        Row {
            peak_rss_mb: Some(rss),
            note: Some("target p95 < 20 ms".into()),
            ..Row::new("frontend single event, 64 conns", "req/s", r.per_sec())
        }
        .latency(&r),
    );

    // Segment /v1/batch of 100 vs the native batch of the same events.
    let values: Vec<Value> = sample
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();
    let h = Herald::start_with(opts, work, "collect-segment", None, &lifted).await;
    let native = workload(
        Method::POST,
        vec![h.url("/api/v1/events/batch")],
        batch_bodies(sample, 100),
        Some(&h.key),
    );
    let segment_bodies: Vec<Bytes> = values
        .chunks(100)
        .filter(|c| c.len() == 100)
        .map(|c| {
            let batch: Vec<Value> = c.iter().map(as_track).collect();
            Bytes::from(json!({"batch": batch, "writeKey": h.key}).to_string())
        })
        .collect();
    let segment = workload(Method::POST, vec![h.url("/v1/batch")], segment_bodies, None);
    let n = load::closed_loop(&native, 4, d, usize::MAX).await;
    let s = load::closed_loop(&segment, 4, d, usize::MAX).await;
    let rss = h.take_peak_rss_mb();
    h.stop().await;
    rows.push(
        Row {
            peak_rss_mb: Some(rss),
            note: Some("ratio to the native batch route on the same Herald; target >= 0.9".into()),
            ..Row::new(
                "Segment /v1/batch of 100, 4 conns",
                "events/s",
                s.per_sec() * 100.0,
            )
        }
        .latency(&s)
        .floor("native batch", n.per_sec() * 100.0),
    );
    rows
}
