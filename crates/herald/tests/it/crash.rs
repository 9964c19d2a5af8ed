//! The durability promise, tested on the real binary: concurrent writers,
//! `SIGKILL` mid-flight, restart on the same data dir, and every
//! acknowledged event present exactly once, by the payload's own identity
//! and under the event id it was acknowledged with; idempotency keys hold
//! across the kill.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use herald_testkit::wait_for;
use serde_json::{Value, json};

use crate::binary::{self, start};

/// A payload's own identity: (writer, request, item in the batch).
type Identity = (u64, u64, Option<u64>);

fn identity(data: &Value) -> Identity {
    (
        data["w"].as_u64().expect("w"),
        data["i"].as_u64().expect("i"),
        data["j"].as_u64(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base) = start(dir.path()).await;
    let client = herald_testkit::http_client();
    let key = binary::tenant(&client, &base, "crash").await;

    let acked = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(8));
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        let (acked, running) = (acked.clone(), running.clone());
        writers.push(tokio::spawn(async move {
            let mut ids: Vec<(Identity, String)> = Vec::new();
            // Bounded: at most 400 requests per writer; stops at the first failure (the kill).
            for i in 0..400u64 {
                let single = i % 3 != 0;
                let body = if single {
                    json!({"event_type": "crash.test", "category": "system", "idempotency_key": format!("crash-{w}-{i}"), "data": {"w": w, "i": i}})
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
                let ack = |e: &Value| (identity(&e["data"]), e["event_id"].as_str().expect("event_id").to_string());
                if single {
                    ids.push(ack(&v));
                } else {
                    ids.extend(v["results"].as_array().unwrap().iter().map(|r| ack(&r["event"])));
                }
                acked.fetch_add(1, Ordering::Relaxed);
            }
            running.fetch_sub(1, Ordering::Relaxed);
            ids
        }));
    }
    // Kill in the middle of the stream of writes; fail rather than hang if
    // the writers stop or stall before getting there.
    wait_for(
        "300 acknowledged requests before the kill",
        Duration::from_secs(60),
        || async {
            let n = acked.load(Ordering::Relaxed);
            assert!(
                running.load(Ordering::Relaxed) > 0,
                "every writer stopped after {n} acknowledged requests, before the kill"
            );
            if n >= 300 {
                Ok(())
            } else {
                Err(format!("{n} acknowledged"))
            }
        },
    )
    .await;
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
    let events = binary::all_events(&client, &base, &key).await;
    let mut stored: HashMap<Identity, Vec<String>> = HashMap::new();
    for e in &events {
        stored
            .entry(identity(&e["data"]))
            .or_default()
            .push(e["event_id"].as_str().unwrap().to_string());
    }
    let missing: Vec<&(Identity, String)> = acked_ids
        .iter()
        .filter(|(id, event_id)| stored.get(id).is_none_or(|ids| !ids.contains(event_id)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost after SIGKILL (or stored under another id), e.g. ((writer, i, j), event_id) = {:?}",
        missing.len(),
        missing.first()
    );
    let twice: Vec<(&Identity, &Vec<String>)> =
        stored.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "payloads stored more than once, e.g. {:?}",
        twice.first()
    );

    // Idempotency keys survive the kill: a retry of an acknowledged event
    // answers 200 with the first event's id and stores nothing.
    let singles: Vec<&(Identity, String)> = acked_ids
        .iter()
        .filter(|((_, _, j), _)| j.is_none())
        .take(200)
        .collect();
    assert!(!singles.is_empty());
    for ((w, i, _), event_id) in &singles {
        let res = client
            .post(format!("{base}/api/v1/events/create"))
            .bearer_auth(&key)
            .json(&json!({"event_type": "crash.test", "category": "system", "idempotency_key": format!("crash-{w}-{i}"), "data": {"w": w, "i": i}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "retry of ({w}, {i}) after the kill");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["event_id"].as_str(), Some(event_id.as_str()));
    }
    assert_eq!(
        binary::all_events(&client, &base, &key).await.len(),
        events.len(),
        "retries stored nothing"
    );
    eprintln!(
        "crash test: {} acknowledged, {} stored after restart, {} retried",
        acked_ids.len(),
        stored.len(),
        singles.len()
    );
}
