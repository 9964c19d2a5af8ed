//! The story scenario, run on the reads section's preloaded store: 20
//! stories of exactly 200 events each are added (an order with 4
//! requests, 24 more events per request, each request's trace with 25
//! more: depths 0, 1 and 2, three lookup statements), each event also
//! carrying one of the dataset's user ids (an identity key, listed and not
//! walked). `GET /api/v1/stories/order_id/{order}` over the 20 orders in
//! turn, on one connection and on four.

use bytes::Bytes;
use reqwest::Method;
use serde_json::{Value, json};

use crate::herald::Herald;
use crate::load;
use crate::opts::Opts;
use crate::report::Row;
use crate::workload;

const STORIES: usize = 20;
const REQUESTS: usize = 4;

/// One story's 200 events, in time order from `base` (Unix seconds).
fn story(s: usize, base: i64) -> Vec<Value> {
    let order = format!("bench-story-order-{s}");
    let user = format!("user_{}", s * 37);
    let at = |n: usize| {
        time::OffsetDateTime::from_unix_timestamp(base + n as i64)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::with_capacity(200);
    for r in 0..REQUESTS {
        let request = format!("bench-story-req-{s}-{r}");
        let trace = format!(
            "{:032x}",
            (s * 1000 + r + 1) as u128 * 0x9E37_79B9_7F4A_7C15
        );
        let n = out.len();
        out.push(
            json!({"event_type": "checkout_started", "category": "business", "timestamp": at(n),
            "user_id": user, "object": {"order_id": order, "request_id": request},
            "data": {"step": n}}),
        );
        for i in 0..24 {
            let n = out.len();
            out.push(json!({"event_type": "request_received", "category": "system", "timestamp": at(n),
                "user_id": user, "object": {"request_id": request}, "correlation": {"trace_id": trace},
                "context": {"service": "api"}, "data": {"step": n, "i": i}}));
        }
        for i in 0..25 {
            let n = out.len();
            out.push(json!({"event_type": if i == 24 { "db_error" } else { "db_query" }, "category": "system",
                "timestamp": at(n), "correlation": {"trace_id": trace},
                "outcome": {"status": if i == 24 { "failure" } else { "success" }},
                "evidence": {"log_references": [format!("logs://db/{s}/{r}/{i}")]},
                "data": {"step": n, "i": i}}));
        }
    }
    out
}

/// Stores the stories and answers their story URLs, checked once to hold
/// 200 events each.
async fn fill(h: &Herald) -> Vec<String> {
    let client = reqwest::Client::new();
    let base = 1_764_000_000;
    let mut urls = Vec::new();
    for s in 0..STORIES {
        let res = client
            .post(h.url("/api/v1/events/batch"))
            .bearer_auth(&h.key)
            .header("Prefer", "return=minimal")
            .json(&json!({ "events": story(s, base + s as i64 * 1000) }))
            .send()
            .await
            .expect("batch");
        assert!(res.status().is_success(), "batch: {}", res.status());
        let url = h.url(&format!("/api/v1/stories/order_id/bench-story-order-{s}"));
        let answer: Value = client
            .get(&url)
            .bearer_auth(&h.key)
            .send()
            .await
            .expect("story")
            .json()
            .await
            .expect("story json");
        assert_eq!(
            answer["size"]["count"], 200,
            "story {s}: {}",
            answer["size"]
        );
        assert_eq!(
            answer["depth"]["deepest"], 2,
            "story {s}: {}",
            answer["depth"]
        );
        urls.push(url);
    }
    urls
}

/// The story rows, on `h` (already preloaded).
pub(crate) async fn scenarios(opts: &Opts, h: &Herald) -> Vec<Row> {
    let urls = fill(h).await;
    let mut rows = Vec::new();
    for conns in [1, 4] {
        let w = workload(Method::GET, urls.clone(), Vec::<Bytes>::new(), Some(&h.key));
        let r = load::closed_loop(&w, conns, opts.duration, usize::MAX).await;
        rows.push(
            Row {
                peak_rss_mb: Some(h.take_peak_rss_mb()),
                note: Some(format!(
                    "{} events preloaded; 200 events, depths 0-2, 3 lookup statements",
                    opts.preload
                )),
                ..Row::new(
                    format!(
                        "story of 200 events (order_id), {conns} conn{}",
                        if conns == 1 { "" } else { "s" }
                    ),
                    "req/s",
                    r.per_sec(),
                )
            }
            .latency(&r),
        );
    }
    rows
}
