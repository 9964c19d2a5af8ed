//! The load client: closed loop (N connections back to back) and open loop
//! (a fixed arrival rate, latency measured from when each request *should*
//! have started, so a stall cannot hide behind coordinated omission). Both
//! are bounded in time and stop by themselves.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use reqwest::Method;

/// Requests to cycle through; cheap to clone per send.
#[derive(Debug, Clone)]
pub struct Workload {
    pub method: Method,
    pub urls: Arc<Vec<String>>,
    pub bodies: Arc<Vec<bytes::Bytes>>,
    pub key: Option<String>,
    /// Send `Prefer: return=minimal`.
    pub minimal: bool,
}

#[derive(Debug, Clone)]
pub struct LoadResult {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Latency in microseconds of successful requests.
    pub hist: Histogram<u64>,
    pub first_error: Option<String>,
}

impl LoadResult {
    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("valid histogram bounds")
}

pub fn client(conns: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(conns)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http client")
}

async fn send(client: &reqwest::Client, w: &Workload, i: usize) -> Result<(), String> {
    let url = &w.urls[i % w.urls.len()];
    let mut rb = client.request(w.method.clone(), url);
    if let Some(key) = &w.key {
        rb = rb.bearer_auth(key);
    }
    if w.minimal {
        rb = rb.header("prefer", "return=minimal");
    }
    if !w.bodies.is_empty() {
        rb = rb
            .header("content-type", "application/json")
            .body(w.bodies[i % w.bodies.len()].clone());
    }
    let res = rb.send().await.map_err(|e| e.to_string())?;
    let status = res.status();
    let body = res.bytes().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ))
    }
}

/// `conns` workers send back to back for `duration` (or until `max_requests`).
pub async fn closed_loop(
    w: &Workload,
    conns: usize,
    duration: Duration,
    max_requests: usize,
) -> LoadResult {
    let client = client(conns);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (client, w, next) = (client.clone(), w.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut hist, mut ok, mut failed, mut first_error) = (new_hist(), 0u64, 0u64, None);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max_requests || Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                match send(&client, &w, i).await {
                    Ok(()) => {
                        ok += 1;
                        let _ = hist.record(t.elapsed().as_micros().max(1) as u64);
                    }
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (hist, ok, failed, first_error)
        }));
    }
    let mut out = LoadResult {
        ok: 0,
        failed: 0,
        elapsed: Duration::ZERO,
        hist: new_hist(),
        first_error: None,
    };
    for t in tasks {
        if let Ok((hist, ok, failed, err)) = t.await {
            let _ = out.hist.add(hist);
            out.ok += ok;
            out.failed += failed;
            if out.first_error.is_none() {
                out.first_error = err;
            }
        }
    }
    out.elapsed = started.elapsed();
    out
}

/// Requests arrive at `rate` per second for `duration`, each timed from its
/// scheduled start. At most `max_in_flight` are outstanding; arrivals beyond
/// that count as failures (the server is not keeping up).
pub async fn open_loop(
    w: &Workload,
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
) -> LoadResult {
    let client = client(max_in_flight.min(512));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let started = Instant::now();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Result<u64, String>>();
    let mut i = 0usize;
    loop {
        let scheduled = started + interval * i as u32;
        if scheduled >= started + duration {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        if in_flight.load(Ordering::Relaxed) >= max_in_flight {
            dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (client, w, tx, in_flight) =
                (client.clone(), w.clone(), tx.clone(), in_flight.clone());
            tokio::spawn(async move {
                let r = send(&client, &w, i)
                    .await
                    .map(|()| scheduled.elapsed().as_micros().max(1) as u64);
                in_flight.fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send(r);
            });
        }
        i += 1;
    }
    drop(tx);
    let mut out = LoadResult {
        ok: 0,
        failed: dropped.load(Ordering::Relaxed),
        elapsed: Duration::ZERO,
        hist: new_hist(),
        first_error: None,
    };
    while let Some(r) = rx.recv().await {
        match r {
            Ok(us) => {
                out.ok += 1;
                let _ = out.hist.record(us);
            }
            Err(e) => {
                out.failed += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
    out.elapsed = started.elapsed();
    out
}
