//! A Herald child process under test: started on a fresh data dir (or a
//! PostgreSQL schema of its own), its RSS sampled, stopped and cleaned up.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::opts::Opts;

/// A Herald child process with its own data dir and an RSS sampler.
pub(crate) struct Herald {
    pub(crate) child: tokio::process::Child,
    pub(crate) base: String,
    pub(crate) key: String,
    pub(crate) peak_rss_kb: Arc<AtomicU64>,
    pub(crate) sampler: tokio::task::JoinHandle<()>,
    pub(crate) dir: PathBuf,
    /// `(url, schema)` when this Herald runs on PostgreSQL.
    pub(crate) pg: Option<(String, String)>,
}

pub(crate) const ROOT: &str = "bench-root-key-0123456789abcdef";

impl Herald {
    pub(crate) async fn start(opts: &Opts, work: &Path, name: &str) -> Herald {
        Herald::start_on(opts, work, name, None).await
    }

    /// The same on PostgreSQL at `pg_url`, in a schema of its own.
    pub(crate) async fn start_on(
        opts: &Opts,
        work: &Path,
        name: &str,
        pg_url: Option<&str>,
    ) -> Herald {
        Herald::start_with(opts, work, name, pg_url, &[]).await
    }

    /// The same with more `HERALD_*` settings.
    pub(crate) async fn start_with(
        opts: &Opts,
        work: &Path,
        name: &str,
        pg_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Herald {
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
            .envs(env.iter().copied())
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

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Peak RSS since the last call, in MiB.
    pub(crate) fn take_peak_rss_mb(&self) -> f64 {
        self.peak_rss_kb.swap(0, Ordering::Relaxed) as f64 / 1024.0
    }

    pub(crate) async fn stop(mut self) {
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

pub(crate) fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
