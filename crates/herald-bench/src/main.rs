//! `herald-bench`: runs Herald (the release binary, fresh data dir per
//! scenario) and the machine's floors side by side on one deterministic
//! dataset, and reports each Herald figure with its floor and the ratio.
//! Every scenario is bounded in time and talks to 127.0.0.1 only.

mod dataset;
mod floors;
mod load;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use load::{LoadResult, Workload};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

const USAGE: &str = "\
herald-bench — Herald against the machine's floors, in one run

USAGE:
    cargo build --release -p herald -p herald-bench
    target/release/herald-bench [--quick] [--seed N] [--preload N] [--duration SECS] [--out DIR] [--herald PATH]
                                [--database-url URL]

    --quick        smoke run: 3 s per scenario, 50k preloaded events (< 2 min)
    --preload N    events stored before the read scenarios (default 1000000)
    --duration S   seconds per scenario (default 12)
    --out DIR      where results.json and results.md go (default bench-results)
    --herald PATH  the Herald binary (default: next to this one)
    --database-url URL
                   also measure Herald on PostgreSQL and the PostgreSQL COPY floor
                   (default: $HERALD_BENCH_DATABASE_URL; each run uses schemas of its own)
    --only LIST    run only these sections (comma-separated):
                   pipeline, batch, schemas, single, open, pg, reads
";

#[derive(Debug, Clone)]
struct Opts {
    seed: u64,
    preload: usize,
    duration: Duration,
    out: PathBuf,
    herald: PathBuf,
    quick: bool,
    database_url: Option<String>,
    /// Sections to run (`--only`); all when empty.
    only: Vec<String>,
}

impl Opts {
    fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        seed: 42,
        preload: 1_000_000,
        duration: Duration::from_secs(12),
        out: PathBuf::from("bench-results"),
        herald: std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("herald"),
        quick: false,
        database_url: std::env::var("HERALD_BENCH_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        only: Vec::new(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => {
                o.quick = true;
                o.preload = 50_000;
                o.duration = Duration::from_secs(3);
            }
            "--seed" => o.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--preload" => o.preload = val()?.parse().map_err(|e| format!("--preload: {e}"))?,
            "--duration" => {
                o.duration =
                    Duration::from_secs_f64(val()?.parse().map_err(|e| format!("--duration: {e}"))?)
            }
            "--out" => o.out = PathBuf::from(val()?),
            "--herald" => o.herald = PathBuf::from(val()?),
            "--database-url" => o.database_url = Some(val()?),
            "--only" => {
                o.only = val()?.split(',').map(|s| s.trim().to_string()).collect();
                const SECTIONS: [&str; 7] = [
                    "pipeline", "batch", "schemas", "single", "open", "pg", "reads",
                ];
                if let Some(bad) = o.only.iter().find(|s| !SECTIONS.contains(&s.as_str())) {
                    return Err(format!(
                        "--only: no section `{bad}` (sections: {})",
                        SECTIONS.join(", ")
                    ));
                }
            }
            "--help" | "-h" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if !o.herald.exists() {
        return Err(format!(
            "no Herald binary at {} (build it: cargo build --release -p herald)",
            o.herald.display()
        ));
    }
    Ok(o)
}

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
struct Row {
    scenario: String,
    unit: &'static str,
    herald: f64,
    floor_name: Option<&'static str>,
    floor: Option<f64>,
    ratio: Option<f64>,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    p99_ms: Option<f64>,
    max_ms: Option<f64>,
    peak_rss_mb: Option<f64>,
    failed: u64,
    note: Option<String>,
}

impl Row {
    fn new(scenario: impl Into<String>, unit: &'static str, herald: f64) -> Row {
        Row {
            scenario: scenario.into(),
            unit,
            herald,
            floor_name: None,
            floor: None,
            ratio: None,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            max_ms: None,
            peak_rss_mb: None,
            failed: 0,
            note: None,
        }
    }

    fn floor(mut self, name: &'static str, value: f64) -> Row {
        self.floor_name = Some(name);
        self.floor = Some(value);
        self.ratio = Some(if value > 0.0 {
            self.herald / value
        } else {
            0.0
        });
        self
    }

    fn latency(mut self, r: &LoadResult) -> Row {
        self.p50_ms = Some(r.ms(0.50));
        self.p95_ms = Some(r.ms(0.95));
        self.p99_ms = Some(r.ms(0.99));
        self.max_ms = Some(r.max_ms());
        self.failed = r.failed;
        if let Some(e) = &r.first_error {
            self.note = Some(format!(
                "first error: {}",
                e.chars().take(120).collect::<String>()
            ));
        }
        self
    }
}

/// A Herald child process with its own data dir and an RSS sampler.
struct Herald {
    child: tokio::process::Child,
    base: String,
    key: String,
    peak_rss_kb: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
    dir: PathBuf,
    /// `(url, schema)` when this Herald runs on PostgreSQL.
    pg: Option<(String, String)>,
}

const ROOT: &str = "bench-root-key-0123456789abcdef";

impl Herald {
    async fn start(opts: &Opts, work: &Path, name: &str) -> Herald {
        Herald::start_on(opts, work, name, None).await
    }

    /// The same on PostgreSQL at `pg_url`, in a schema of its own.
    async fn start_on(opts: &Opts, work: &Path, name: &str, pg_url: Option<&str>) -> Herald {
        let pg = pg_url.map(|u| {
            (
                u.to_string(),
                format!("bench_{}_{}", std::process::id(), name.replace('-', "_")),
            )
        });
        let dir = work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let child = tokio::process::Command::new(&opts.herald)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("HERALD_DATA_DIR", &dir)
            .env("HERALD_ROOT_KEY", ROOT)
            .env("HERALD_LOG_LEVEL", "error")
            .envs(pg.iter().flat_map(|(url, schema)| {
                [
                    ("HERALD_DATABASE_URL", url.clone()),
                    ("HERALD_DATABASE_SCHEMA", schema.clone()),
                ]
            }))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start herald");
        let pid = child.id().unwrap_or(0);
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        let mut up = false;
        for _ in 0..500 {
            if client
                .get(format!("{base}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(up, "Herald did not start on {base}");
        let tenant: Value = client
            .post(format!("{base}/api/v1/admin/tenants"))
            .bearer_auth(ROOT)
            .json(&json!({"name": "bench"}))
            .send()
            .await
            .expect("create tenant")
            .json()
            .await
            .expect("tenant json");
        let key = tenant["api_key"].as_str().expect("api key").to_string();
        let peak_rss_kb = Arc::new(AtomicU64::new(0));
        let peak = peak_rss_kb.clone();
        let sampler = tokio::spawn(async move {
            loop {
                if let Some(kb) = rss_kb(pid) {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Herald {
            child,
            base,
            key,
            peak_rss_kb,
            sampler,
            dir,
            pg,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Peak RSS since the last call, in MiB.
    fn take_peak_rss_mb(&self) -> f64 {
        self.peak_rss_kb.swap(0, Ordering::Relaxed) as f64 / 1024.0
    }

    async fn stop(mut self) {
        self.sampler.abort();
        if let Some(pid) = self.child.id() {
            // SIGTERM to our own child, by PID: a graceful stop.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await;
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((url, schema)) = &self.pg
            && let Ok((client, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            herald_store::postgres::floor::drop_schema(&client, schema).await;
        }
    }
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn batch_bodies(events: &[Bytes], size: usize) -> Vec<Bytes> {
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

fn workload(method: Method, urls: Vec<String>, bodies: Vec<Bytes>, key: Option<&str>) -> Workload {
    Workload {
        method,
        urls: Arc::new(urls),
        bodies: Arc::new(bodies),
        key: key.map(str::to_string),
        minimal: false,
    }
}

fn say(row: &Row) {
    eprintln!(
        "  {:<44} {:>12.0} {:<9} {}",
        row.scenario,
        row.herald,
        row.unit,
        match (row.floor, row.ratio) {
            (Some(f), Some(r)) => format!(
                "floor {f:.0} ({}) ratio {r:.2}",
                row.floor_name.unwrap_or("")
            ),
            _ => String::new(),
        }
    );
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
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
        h.stop().await;
    }

    let _ = std::fs::remove_dir_all(&work);

    report(&opts, &rows, sizes);
}

fn not_measured(opts: &Opts) -> Vec<&'static str> {
    let mut v = vec!["statistics (no /api/v1/events/statistics endpoint yet)"];
    if opts.database_url.is_none() {
        v.push("Herald on PostgreSQL and the PostgreSQL COPY floor (no --database-url)");
    }
    v
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines()
            .find(|l| l.starts_with("model name"))
            .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
    });
    let mem_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    });
    let git = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": mem_kb.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "cpu": cpu,
        "commit": git.map(|g| if dirty { format!("{g}-dirty") } else { g }),
        "date": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
    })
}

fn report(opts: &Opts, rows: &[Row], sizes: (usize, usize, usize)) {
    let m = machine();
    std::fs::create_dir_all(&opts.out).expect("out dir");
    let result = json!({
        "machine": m, "seed": opts.seed, "preload": opts.preload, "seconds_per_scenario": opts.duration.as_secs_f64(),
        "quick": opts.quick, "event_bytes": {"min": sizes.0, "median": sizes.1, "max": sizes.2}, "rows": rows,
        "not_measured": not_measured(opts),
    });
    std::fs::write(
        opts.out.join("results.json"),
        serde_json::to_vec_pretty(&result).unwrap_or_default(),
    )
    .expect("write results.json");
    let f = |v: Option<f64>| {
        v.map_or(String::new(), |v| {
            if v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.2}")
            }
        })
    };
    let mut md = String::new();
    md.push_str(&format!(
        "Machine: {} cores, {} GiB, {}. Commit {}, {}. Seed {}, {} s per scenario, {} events preloaded; event bodies {}–{} B, median {} B.\n\n",
        m["cores"], m["memory_gib"], m["cpu"].as_str().unwrap_or("?"), m["commit"].as_str().unwrap_or("?"), m["date"].as_str().unwrap_or("?"),
        opts.seed, opts.duration.as_secs_f64(), opts.preload, sizes.0, sizes.2, sizes.1
    ));
    md.push_str("| scenario | Herald | unit | floor | floor value | Herald ÷ floor | p50 ms | p95 ms | p99 ms | max ms | peak RSS MiB | failed | note |\n");
    md.push_str("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.scenario,
            f(Some(r.herald)),
            r.unit,
            r.floor_name.unwrap_or(""),
            f(r.floor),
            r.ratio.map_or(String::new(), |x| format!("{x:.2}")),
            f(r.p50_ms),
            f(r.p95_ms),
            f(r.p99_ms),
            f(r.max_ms),
            f(r.peak_rss_mb),
            r.failed,
            r.note.as_deref().unwrap_or("")
        ));
    }
    md.push_str(&format!(
        "\nNot measured: {}.\n",
        not_measured(opts).join("; ")
    ));
    std::fs::write(opts.out.join("results.md"), &md).expect("write results.md");
    #[allow(clippy::print_stdout)]
    {
        println!("{md}");
    }
    eprintln!(
        "wrote {} and {}",
        opts.out.join("results.json").display(),
        opts.out.join("results.md").display()
    );
}
