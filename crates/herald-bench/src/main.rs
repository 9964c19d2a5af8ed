//! `herald-bench`: runs Herald (the release binary, fresh data dir per
//! scenario) and the machine's floors side by side on one deterministic
//! dataset, and reports each Herald figure with its floor and the ratio.
//! Every scenario is bounded in time and talks to 127.0.0.1 only.

mod collect;
mod dataset;
mod delivery;
mod floors;
mod herald;
mod load;
mod opts;
mod processing;
mod report;
mod self_events;
mod statistics;
mod stories;
mod streams;
mod tail;
mod waits;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald::Herald;
use load::Workload;
use opts::{USAGE, parse_opts};
use report::{Row, report, say};
use reqwest::Method;
use serde_json::{Value, json};

/// Batch request bodies (`{"events": [...]}`) of `size` events each; a
/// last partial chunk is left out.
pub(crate) fn batch_bodies(events: &[Bytes], size: usize) -> Vec<Bytes> {
    events
        .chunks(size)
        .filter(|c| c.len() == size)
        .map(|chunk| {
            let mut body =
                Vec::with_capacity(chunk.iter().map(|b| b.len() + 1).sum::<usize>() + 16);
            body.extend_from_slice(b"{\"events\":[");
            for (i, e) in chunk.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(e);
            }
            body.extend_from_slice(b"]}");
            Bytes::from(body)
        })
        .collect()
}

pub(crate) fn workload(
    method: Method,
    urls: Vec<String>,
    bodies: Vec<Bytes>,
    key: Option<&str>,
) -> Workload {
    Workload {
        method,
        urls: Arc::new(urls),
        bodies: Arc::new(bodies),
        key: key.map(str::to_string),
        minimal: false,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // reqwest is built with rustls and no crypto provider of its own when
    // built with the rest of the workspace: ring is the process's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("herald-bench: {e}\n");
            }
            eprint!("{USAGE}");
            std::process::exit(2);
        }
    };
    let work = std::env::temp_dir().join(format!("herald-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let d = opts.duration;
    let mut rows: Vec<Row> = Vec::new();
    let mut push = |row: Row| {
        say(&row);
        rows.push(row);
    };

    eprintln!(
        "dataset: seed {}, generating {} events",
        opts.seed,
        opts.preload.max(20_000)
    );
    let events = dataset::generate_bytes(opts.seed, opts.preload.max(20_000));
    let sizes = {
        let mut s: Vec<usize> = events.iter().map(Bytes::len).collect();
        s.sort_unstable();
        (s[0], s[s.len() / 2], s[s.len() - 1])
    };
    let sample: Vec<Bytes> = events.iter().take(20_000).cloned().collect();
    let sample_values: Vec<Value> = sample
        .iter()
        .filter_map(|b| serde_json::from_slice(b).ok())
        .collect();
    let canonical = floors::canonicalize(&sample_values);
    let http_floor = floors::start_http_floor().await;

    let mut storage_floor = std::collections::HashMap::new();
    let mut batch100_4 = 0.0;
    let singles: Vec<Bytes> = sample.clone();
    let mut single_64 = 0.0;

    if opts.wants("pipeline") {
        // -- the core pipeline alone, one core
        // Alternated rounds, best of each, so load drift on a shared machine
        // does not decide the ratio.
        let definitions: Vec<_> = dataset::definitions()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                herald_registry::parse_input(d, None)
                    .expect("dataset definitions are valid")
                    .into_definition(format!("def_{i}"), 1, herald_core::Timestamp::now())
            })
            .collect();
        let (plain, with_schemas) = (
            herald_core::EventProcessor::default(),
            floors::processor_with(definitions),
        );
        let (mut pipeline, mut pipeline_schemas) = (0.0f64, 0.0f64);
        for _ in 0..3 {
            let round = Duration::from_millis(if opts.quick { 300 } else { 1000 });
            pipeline = pipeline.max(floors::pipeline_floor(&sample[..5000], round, &plain));
            pipeline_schemas = pipeline_schemas.max(floors::pipeline_floor(
                &sample[..5000],
                round,
                &with_schemas,
            ));
        }
        push(Row {
            note: Some("decode+validate+normalise+redact, 1 thread, no IO".into()),
            ..Row::new("core pipeline alone", "events/s", pipeline)
        });
        push(Row {
            note: Some(
                "the same with a payload schema for every type (registry); ratio = throughput kept"
                    .into(),
            ),
            ..Row::new("core pipeline with schemas", "events/s", pipeline_schemas)
                .floor("no schema", pipeline)
        });
    }

    if opts.wants("batch") {
        // -- batch ingest
        for batch in [100usize, 1000] {
            let floor = floors::storage_floor(&work, &canonical, batch, d);
            let _ = std::fs::remove_file(work.join("floor.db"));
            storage_floor.insert(batch, floor);
            push(Row {
                note: Some("Herald's schema + row insert, 1 tx per batch, synchronous=FULL".into()),
                ..Row::new(format!("storage floor, batch {batch}"), "events/s", floor)
            });
            let bodies = batch_bodies(&sample, batch);
            for conns in [4usize, 16] {
                let h = Herald::start(&opts, &work, "batch").await;
                let w = workload(
                    Method::POST,
                    vec![h.url("/api/v1/events/batch")],
                    bodies.clone(),
                    Some(&h.key),
                );
                let r = load::closed_loop(&w, conns, d, usize::MAX).await;
                let herald = r.per_sec() * batch as f64;
                if batch == 100 && conns == 4 {
                    batch100_4 = herald;
                }
                let rss = h.take_peak_rss_mb();
                h.stop().await;
                let fw = workload(
                    Method::POST,
                    vec![format!("{http_floor}/")],
                    bodies.clone(),
                    None,
                );
                let fr = load::closed_loop(&fw, conns, d, usize::MAX).await;
                let http = fr.per_sec() * batch as f64;
                let row = Row {
                    peak_rss_mb: Some(rss),
                    ..Row::new(
                        format!("batch ingest, batch {batch}, {conns} conns"),
                        "events/s",
                        herald,
                    )
                }
                .latency(&r);
                push(row.clone().floor("storage", floor));
                push(Row {
                    scenario: "  same vs HTTP floor".into(),
                    ..row.floor("http", http)
                });
            }
            // The same, acknowledged with ids only (`Prefer: return=minimal`).
            let h = Herald::start(&opts, &work, "batch").await;
            let w = Workload {
                minimal: true,
                ..workload(
                    Method::POST,
                    vec![h.url("/api/v1/events/batch")],
                    bodies.clone(),
                    Some(&h.key),
                )
            };
            let r = load::closed_loop(&w, 4, d, usize::MAX).await;
            let rss = h.take_peak_rss_mb();
            h.stop().await;
            push(
                Row {
                    peak_rss_mb: Some(rss),
                    ..Row::new(
                        format!("batch ingest, batch {batch}, 4 conns, return=minimal"),
                        "events/s",
                        r.per_sec() * batch as f64,
                    )
                }
                .latency(&r)
                .floor("storage", floor),
            );
        }
    }

    if opts.wants("schemas") {
        // -- batch ingest with every type defined by a payload schema
        {
            let h = Herald::start(&opts, &work, "schemas").await;
            let client = reqwest::Client::new();
            for d in dataset::definitions() {
                let res = client
                    .post(h.url("/api/v1/event-definitions"))
                    .bearer_auth(&h.key)
                    .json(&d)
                    .send()
                    .await
                    .expect("register definition");
                assert_eq!(res.status().as_u16(), 201, "definition {d}");
            }
            let bodies = batch_bodies(&sample, 100);
            // A 207 is a success to the load client, so a schema that refused
            // the dataset would time cheap rejections, not validated ingest.
            let res = client
                .post(h.url("/api/v1/events/batch"))
                .bearer_auth(&h.key)
                .header("content-type", "application/json")
                .body(bodies[0].clone())
                .send()
                .await
                .expect("preflight batch");
            let status = res.status().as_u16();
            let answer: Value = res.json().await.unwrap_or(Value::Null);
            assert!(
                status == 201 && answer["rejected"] == 0,
                "the dataset's definitions refuse its own events (status {status}), so the \
                 'with schemas' row would measure rejections; first refusal: {}",
                answer["results"]
                    .as_array()
                    .and_then(|r| r.iter().find(|i| i["status"] != 201 && i["status"] != 200))
                    .unwrap_or(&answer)
            );
            let w = workload(
                Method::POST,
                vec![h.url("/api/v1/events/batch")],
                bodies,
                Some(&h.key),
            );
            let r = load::closed_loop(&w, 4, d, usize::MAX).await;
            let rss = h.take_peak_rss_mb();
            h.stop().await;
            push(
                Row {
                    peak_rss_mb: Some(rss),
                    note: Some(
                        "12 definitions with payload schemas; ratio = throughput kept".into(),
                    ),
                    ..Row::new(
                        "batch ingest, batch 100, 4 conns, with schemas",
                        "events/s",
                        r.per_sec() * 100.0,
                    )
                }
                .latency(&r)
                .floor("no schema", batch100_4),
            );
        }
    }

    if opts.wants("single") {
        // -- single-event ingest, closed loop
        for conns in [64usize, 256] {
            let h = Herald::start(&opts, &work, "single").await;
            let w = workload(
                Method::POST,
                vec![h.url("/api/v1/events/create")],
                singles.clone(),
                Some(&h.key),
            );
            let r = load::closed_loop(&w, conns, d, usize::MAX).await;
            let rss = h.take_peak_rss_mb();
            h.stop().await;
            let fw = workload(
                Method::POST,
                vec![format!("{http_floor}/")],
                singles.clone(),
                None,
            );
            let fr = load::closed_loop(&fw, conns, d, usize::MAX).await;
            if conns == 64 {
                single_64 = r.per_sec();
            }
            push(
                Row {
                    peak_rss_mb: Some(rss),
                    ..Row::new(
                        format!("single ingest, {conns} conns"),
                        "req/s",
                        r.per_sec(),
                    )
                }
                .latency(&r)
                .floor("http", fr.per_sec()),
            );
            push(
                Row::new(
                    format!("  HTTP floor, {conns} conns"),
                    "req/s",
                    fr.per_sec(),
                )
                .latency(&fr),
            );
        }
    }

    if opts.wants("open") {
        // -- single-event ingest, open loop at half the closed-loop rate
        {
            let rate = (single_64 * 0.5).max(50.0);
            let h = Herald::start(&opts, &work, "open").await;
            let w = workload(
                Method::POST,
                vec![h.url("/api/v1/events/create")],
                singles.clone(),
                Some(&h.key),
            );
            let r = load::open_loop(&w, rate, d, 2048).await;
            let rss = h.take_peak_rss_mb();
            h.stop().await;
            push(
                Row {
                    peak_rss_mb: Some(rss),
                    note: Some(format!(
                        "fixed arrival rate {rate:.0}/s; latency from scheduled start"
                    )),
                    ..Row::new("single ingest, open loop", "req/s", r.per_sec())
                }
                .latency(&r),
            );
        }
    }

    if opts.wants("pg") {
        // -- the same ingest on PostgreSQL, beside its COPY floor
        if let Some(url) = opts.database_url.clone() {
            for batch in [100usize, 1000] {
                let floor = floors::pg_storage_floor(&url, &canonical, batch, d).await;
                push(Row {
                    note: Some(
                        "Herald's schema + indexes, binary COPY → INSERT…SELECT, 1 tx per batch"
                            .into(),
                    ),
                    ..Row::new(
                        format!("PostgreSQL COPY floor, batch {batch}"),
                        "events/s",
                        floor,
                    )
                });
                let bodies = batch_bodies(&sample, batch);
                for conns in [4usize, 16] {
                    let h = Herald::start_on(&opts, &work, "pg-batch", Some(&url)).await;
                    let w = workload(
                        Method::POST,
                        vec![h.url("/api/v1/events/batch")],
                        bodies.clone(),
                        Some(&h.key),
                    );
                    let r = load::closed_loop(&w, conns, d, usize::MAX).await;
                    let rss = h.take_peak_rss_mb();
                    h.stop().await;
                    push(
                        Row {
                            peak_rss_mb: Some(rss),
                            ..Row::new(
                                format!("Herald on PostgreSQL: batch {batch}, {conns} conns"),
                                "events/s",
                                r.per_sec() * batch as f64,
                            )
                        }
                        .latency(&r)
                        .floor("pg copy", floor),
                    );
                }
            }
            let h = Herald::start_on(&opts, &work, "pg-single", Some(&url)).await;
            let w = workload(
                Method::POST,
                vec![h.url("/api/v1/events/create")],
                singles.clone(),
                Some(&h.key),
            );
            let r = load::closed_loop(&w, 64, d, usize::MAX).await;
            let rss = h.take_peak_rss_mb();
            h.stop().await;
            push(
                Row {
                    peak_rss_mb: Some(rss),
                    ..Row::new(
                        "Herald on PostgreSQL: single ingest, 64 conns",
                        "req/s",
                        r.per_sec(),
                    )
                }
                .latency(&r)
                .floor("sqlite herald", single_64),
            );
        }
    }

    if opts.wants("reads") {
        // -- reads on a preloaded store
        let h = Herald::start(&opts, &work, "reads").await;
        eprintln!("preloading {} events", opts.preload);
        let preload_bodies = batch_bodies(&events[..opts.preload], 1000);
        let n_batches = preload_bodies.len();
        let w = workload(
            Method::POST,
            vec![h.url("/api/v1/events/batch")],
            preload_bodies,
            Some(&h.key),
        );
        let r = load::closed_loop(&w, 4, Duration::from_secs(3600), n_batches).await;
        push(
            Row {
                peak_rss_mb: Some(h.take_peak_rss_mb()),
                note: Some(format!("{} events stored", r.ok * 1000)),
                ..Row::new(
                    "preload, batch 1000, 4 conns",
                    "events/s",
                    r.per_sec() * 1000.0,
                )
            }
            .latency(&r)
            .floor("storage", storage_floor.get(&1000).copied().unwrap_or(0.0)),
        );

        let client = reqwest::Client::new();
        let page: Value = client
            .post(h.url("/api/v1/events/query"))
            .bearer_auth(&h.key)
            .json(&json!({"limit": 1000, "order": "asc"}))
            .send()
            .await
            .expect("query")
            .json()
            .await
            .expect("json");
        let ids: Vec<String> = page["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["event_id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let get_urls: Vec<String> = ids
            .iter()
            .map(|id| h.url(&format!("/api/v1/events/{id}")))
            .collect();
        let w = workload(Method::GET, get_urls, Vec::new(), Some(&h.key));
        let r = load::closed_loop(&w, 64, d, usize::MAX).await;
        push(
            Row {
                peak_rss_mb: Some(h.take_peak_rss_mb()),
                ..Row::new("get by id, 64 conns", "req/s", r.per_sec())
            }
            .latency(&r),
        );

        let values: Vec<Value> = events
            .iter()
            .step_by((events.len() / 2000).max(1))
            .filter_map(|b| serde_json::from_slice(b).ok())
            .collect();
        let pick = |f: &dyn Fn(&Value) -> Option<Value>| -> Vec<Bytes> {
            values
                .iter()
                .filter_map(f)
                .take(500)
                .map(|q| Bytes::from(q.to_string()))
                .collect()
        };
        let mid = values
            .get(values.len() / 2)
            .and_then(|v| v["timestamp"].as_str())
            .unwrap_or("2025-01-01T00:00:00Z")
            .to_string();
        let queries: Vec<(&str, Vec<Bytes>)> = vec![
            ("query 1000 rows: category", vec![Bytes::from(json!({"category": "system", "limit": 1000}).to_string())]),
            ("query 1000 rows: type + time range", vec![Bytes::from(json!({"event_type": "request_received", "start_time": mid, "limit": 1000, "order": "asc"}).to_string())]),
            ("lookup by trace_id", pick(&|v| v["correlation"]["trace_id"].as_str().map(|t| json!({"trace_id": t})))),
            ("lookup by order_id", pick(&|v| v["object"]["order_id"].as_str().map(|t| json!({"order_id": t})))),
            ("lookup by user_id", pick(&|v| v["actor"]["user_id"].as_str().or(v["user_id"].as_str()).map(|t| json!({"user_id": t})))),
        ];
        for (name, bodies) in queries {
            let w = workload(
                Method::POST,
                vec![h.url("/api/v1/events/query")],
                bodies,
                Some(&h.key),
            );
            let r = load::closed_loop(&w, 4, d, usize::MAX).await;
            push(
                Row {
                    peak_rss_mb: Some(h.take_peak_rss_mb()),
                    ..Row::new(format!("{name}, 4 conns"), "req/s", r.per_sec())
                }
                .latency(&r),
            );
        }
        for row in statistics::reads_rows(&h, &mid, d).await {
            push(row);
        }
        // -- a 200-event story on the preloaded store
        for row in stories::scenarios(&opts, &h).await {
            push(row);
        }
        h.stop().await;
    }

    if opts.wants("statistics") {
        // -- batch ingest with the statistics rollups on vs off
        for row in statistics::scenarios(&opts, &work, &events).await {
            push(row);
        }
    }

    if opts.wants("streams") {
        // -- a 10,000-event stream and its projection, with and without snapshots
        for row in streams::scenarios(&opts, &work).await {
            push(row);
        }
    }

    if opts.wants("processing") {
        // -- the processing worker: no processor vs three enrich processors
        for row in processing::scenarios(&opts, &work).await {
            push(row);
        }
    }

    if opts.wants("tail") {
        // -- 100 live-tail clients beside ingest: ingest kept, commit-to-client lag
        for row in tail::scenarios(&opts, &work, &sample).await {
            push(row);
        }
    }

    if opts.wants("waits") {
        // -- 100,000 open workflow waits beside ingest
        for row in waits::scenarios(&opts, &work, &sample).await {
            push(row);
        }
    }

    if opts.wants("self_events") {
        // -- single-event ingest with self events off and on
        for row in self_events::scenarios(&opts, &work, &singles).await {
            push(row);
        }
    }

    if opts.wants("collect") {
        // -- browser collection and the Segment drop-in
        for row in collect::scenarios(&opts, &work, &sample).await {
            push(row);
        }
    }

    if opts.wants("delivery") {
        // -- webhook delivery under steady ingest, beside its floor
        for row in delivery::scenarios(&opts, &work, &sample).await {
            push(row);
        }
    }

    let _ = std::fs::remove_dir_all(&work);

    report(&opts, &rows, sizes);
}
