//! The command line of `herald-bench`: which sections, how long, which binary.

use std::path::PathBuf;
use std::time::Duration;

pub(crate) const USAGE: &str = "\
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
                   pipeline, batch, schemas, single, open, pg, reads, streams, tail, waits, delivery,
                   collect, processing, self_events
";

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) seed: u64,
    pub(crate) preload: usize,
    pub(crate) duration: Duration,
    pub(crate) out: PathBuf,
    pub(crate) herald: PathBuf,
    pub(crate) quick: bool,
    pub(crate) database_url: Option<String>,
    /// Sections to run (`--only`); all when empty.
    pub(crate) only: Vec<String>,
}

impl Opts {
    pub(crate) fn wants(&self, section: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == section)
    }
}

pub(crate) fn parse_opts() -> Result<Opts, String> {
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
                const SECTIONS: [&str; 15] = [
                    "pipeline",
                    "batch",
                    "schemas",
                    "single",
                    "open",
                    "pg",
                    "reads",
                    "streams",
                    "tail",
                    "waits",
                    "delivery",
                    "collect",
                    "processing",
                    "statistics",
                    "self_events",
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
