//! The report: one [`Row`] per scenario, printed as it is measured and
//! written at the end as `results.json` and a Markdown table.

use serde::Serialize;
use serde_json::{Value, json};

use crate::load::LoadResult;
use crate::opts::Opts;

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) unit: &'static str,
    pub(crate) herald: f64,
    pub(crate) floor_name: Option<&'static str>,
    pub(crate) floor: Option<f64>,
    pub(crate) ratio: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p95_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) max_ms: Option<f64>,
    pub(crate) peak_rss_mb: Option<f64>,
    pub(crate) failed: u64,
    pub(crate) note: Option<String>,
}

impl Row {
    pub(crate) fn new(scenario: impl Into<String>, unit: &'static str, herald: f64) -> Row {
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

    pub(crate) fn floor(mut self, name: &'static str, value: f64) -> Row {
        self.floor_name = Some(name);
        self.floor = Some(value);
        self.ratio = Some(if value > 0.0 {
            self.herald / value
        } else {
            0.0
        });
        self
    }

    pub(crate) fn latency(mut self, r: &LoadResult) -> Row {
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

pub(crate) fn say(row: &Row) {
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

pub(crate) fn not_measured(opts: &Opts) -> Vec<&'static str> {
    let mut v = Vec::new();
    if opts.database_url.is_none() {
        v.push("Herald on PostgreSQL and the PostgreSQL COPY floor (no --database-url)");
    }
    v
}

pub(crate) fn machine() -> Value {
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

pub(crate) fn report(opts: &Opts, rows: &[Row], sizes: (usize, usize, usize)) {
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
    let missing = not_measured(opts);
    if !missing.is_empty() {
        md.push_str(&format!("\nNot measured: {}.\n", missing.join("; ")));
    }
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
