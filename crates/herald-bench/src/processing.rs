//! The processing scenario: how many events per second the processing
//! worker takes from `pending` to `processed`, with no processor (the fast
//! path: one write per event) and with three `enrich` processors that
//! match every event (a claim, a job, three CEL runs, results and a
//! finish per event). Each Herald gets the same events in batches of
//! 1,000 as fast as it takes them; the figure is events ÷ the time from
//! the first batch sent to the last event `processed` (jobs run in commit
//! order, so the last one sent is the last one processed). The run with
//! no processor is the floor of the one with three.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::herald::Herald;
use crate::opts::Opts;
use crate::report::Row;

const BATCH: usize = 1000;

fn events(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let region = ["eu", "us", "apac"][i % 3];
            json!({"event_type": "order.placed", "category": "business", "event_source": "backend",
                   "data": {"amount": (i * 37) % 5000, "region": region, "order_id": format!("o-{i}")}})
        })
        .collect()
}

/// Sends every event; the id of the last one.
async fn ingest(h: &Herald, events: &[Value]) -> String {
    let client = reqwest::Client::new();
    let mut last = String::new();
    for chunk in events.chunks(BATCH) {
        let res = client
            .post(h.url("/api/v1/events/batch"))
            .bearer_auth(&h.key)
            .json(&json!({ "events": chunk }))
            .send()
            .await
            .expect("batch");
        assert!(res.status().is_success(), "batch: {}", res.status());
        let body: Value = res.json().await.expect("batch answer");
        if let Some(id) = body["results"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["event_id"].as_str())
        {
            last = id.to_string();
        }
    }
    last
}

/// Waits until `id` is `processed` (at most `limit`); false on time-out.
async fn processed(h: &Herald, id: &str, limit: Duration) -> bool {
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < limit {
        let res = client
            .get(h.url(&format!("/api/v1/events/{id}")))
            .bearer_auth(&h.key)
            .send()
            .await;
        if let Ok(res) = res
            && let Ok(body) = res.json::<Value>().await
            && body["status"] == "processed"
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Events per second from the first batch to the last event processed.
async fn run(opts: &Opts, work: &Path, name: &str, processors: usize) -> (f64, f64, bool) {
    let h = Herald::start_with(opts, work, name, None, &[]).await;
    let client = reqwest::Client::new();
    for i in 0..processors {
        let res = client
            .post(h.url("/api/v1/events/processors"))
            .bearer_auth(&h.key)
            .json(&json!({
                "processor_name": format!("enrich-{i}"), "processor_type": "enrich", "priority": i,
                "filters": {"event_types": ["order.*"]},
                "config": {"fields": {
                    "risk": "event.data.amount > 1000 ? 'high' : 'low'",
                    "region": "event.data.region",
                    "big": "event.data.amount * 2 > 5000",
                }},
            }))
            .send()
            .await
            .expect("processor");
        assert_eq!(res.status(), 201, "processor: {:?}", res.text().await);
    }
    let n = if opts.quick { 20_000 } else { 100_000 };
    let events = events(n);
    let started = Instant::now();
    let last = ingest(&h, &events).await;
    let ingested = started.elapsed().as_secs_f64();
    let done = processed(&h, &last, Duration::from_secs(600)).await;
    let secs = started.elapsed().as_secs_f64();
    h.stop().await;
    (n as f64 / secs, n as f64 / ingested, done)
}

pub(crate) async fn scenarios(opts: &Opts, work: &Path) -> Vec<Row> {
    let (none, none_ingest, none_done) = run(opts, work, "processing-none", 0).await;
    let (three, three_ingest, three_done) = run(opts, work, "processing-enrich3", 3).await;
    let note = |ingest: f64, done: bool| {
        Some(format!(
            "ingest alone ran at {ingest:.0} events/s{}",
            if done {
                ""
            } else {
                "; NOT all processed within 600 s"
            }
        ))
    };
    vec![
        Row {
            note: note(none_ingest, none_done),
            ..Row::new("processing, no processor (fast path)", "events/s", none)
        },
        Row {
            note: note(three_ingest, three_done),
            ..Row::new(
                "processing, 3 enrich processors on every event",
                "events/s",
                three,
            )
        }
        .floor("no processor", none),
    ]
}
