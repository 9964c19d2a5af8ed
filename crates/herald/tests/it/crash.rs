//! The durability promise, tested on the real binary: concurrent writers,
//! `SIGKILL` mid-flight, restart on the same data dir, and every
//! acknowledged event present exactly once.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::process::{Child, Command};

const ROOT: &str = "crash-test-root-key-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(dir: &std::path::Path) -> (Child, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_ROOT_KEY", ROOT)
        .env("HERALD_LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start herald");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..500 {
        if client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return (child, base);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("herald did not become healthy on {base}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start(dir.path()).await;
    let client = reqwest::Client::new();
    let tenant: Value = client
        .post(format!("{base}/api/v1/admin/tenants"))
        .bearer_auth(ROOT)
        .json(&json!({"name": "crash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = tenant["api_key"].as_str().unwrap().to_string();

    let acked = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base, key, acked) = (client.clone(), base.clone(), key.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            // Bounded: at most 400 requests per writer; stops at the first failure (the kill).
            for i in 0..400 {
                let single = i % 3 != 0;
                let body = if single {
                    json!({"event_type": "crash.test", "category": "system", "data": {"w": w, "i": i}})
                } else {
                    json!({"events": (0..5).map(|j| json!({"event_type": "crash.batch", "category": "system", "data": {"w": w, "i": i, "j": j}})).collect::<Vec<_>>()})
                };
                let path = if single { "create" } else { "batch" };
                let res = match client.post(format!("{base}/api/v1/events/{path}")).bearer_auth(&key).json(&body).send().await {
                    Ok(r) => r,
                    Err(_) => break,
                };
                if res.status() != 201 {
                    break;
                }
                let Ok(v) = res.json::<Value>().await else { break };
                if single {
                    ids.push(v["event_id"].as_str().unwrap().to_string());
                } else {
                    ids.extend(v["results"].as_array().unwrap().iter().map(|r| r["event_id"].as_str().unwrap().to_string()));
                }
                acked.fetch_add(1, Ordering::Relaxed);
            }
            ids
        }));
    }
    // Kill in the middle of the stream of writes.
    while acked.load(Ordering::Relaxed) < 300 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.unwrap();
    let mut acked_ids = Vec::new();
    for w in writers {
        acked_ids.extend(w.await.unwrap());
    }
    assert!(
        acked_ids.len() >= 300,
        "writers acknowledged {} events",
        acked_ids.len()
    );

    let (_child, base) = start(dir.path()).await;
    let mut stored: HashMap<String, usize> = HashMap::new();
    let mut cursor = Value::Null;
    loop {
        let page: Value = client
            .post(format!("{base}/api/v1/events/query"))
            .bearer_auth(&key)
            .json(&json!({"limit": 1000, "cursor": cursor}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in page["events"].as_array().unwrap() {
            *stored
                .entry(e["event_id"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        if page["has_more"] != true {
            break;
        }
        cursor = page["next_cursor"].clone();
    }
    let missing: Vec<&String> = acked_ids
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost after SIGKILL, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    assert!(
        stored.values().all(|n| *n == 1),
        "an event is stored more than once"
    );
    eprintln!(
        "crash test: {} acknowledged, {} stored after restart",
        acked_ids.len(),
        stored.len()
    );
}
