//! Publishing to the real NATS JetStream: exactly the stored events, in
//! each tenant's order, with lifecycle events beside them; nothing lost
//! while NATS is away; no duplicates when Herald dies mid-publish.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::binary;
use crate::helpers::{TestApp, spawn_with};
use crate::services::{Mode, NatsStream, Proxy, nats_url};

fn point_at(config: &mut herald_server::Config, url: &str, stream: &NatsStream) {
    config.nats_url = Some(url.to_string());
    config.nats_stream = stream.name.clone();
    config.nats_subject_prefix = stream.prefix.clone();
}

async fn health(app: &TestApp) -> Value {
    app.client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `n` single creates; their event ids.
async fn send(app: &TestApp, key: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let (status, body) = app
            .create(
                key,
                &json!({"event_type": "x", "category": "system", "data": {"i": i}}),
            )
            .await;
        assert_eq!(status, 201, "ingest keeps succeeding: {body}");
        ids.push(body["event_id"].as_str().unwrap().to_string());
    }
    ids
}

fn ids(messages: &[crate::services::Stored]) -> Vec<String> {
    messages.iter().map(|m| m.msg_id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_receives_exactly_the_stored_events_in_each_tenants_order() {
    let Some(url) = nats_url() else { return };
    let stream = NatsStream::new(&url).await;
    let app = spawn_with(|c| point_at(c, &url, &stream)).await;
    let (acme, globex) = (app.tenant("acme").await, app.tenant("globex").await);

    // Interleaved: single creates and batches, two tenants, a repeat.
    let mut sent: HashMap<&str, Vec<String>> = HashMap::new();
    for round in 0..20 {
        for (name, key) in [
            (acme.tenant_id.as_str(), &acme.admin_key),
            (globex.tenant_id.as_str(), &globex.admin_key),
        ] {
            let (status, body) = app
                .create(
                    key,
                    &json!({"event_type": "order.created", "category": "business",
                            "idempotency_key": format!("{name}-{round}"), "data": {"round": round}}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
            sent.entry(name)
                .or_default()
                .push(body["event_id"].as_str().unwrap().to_string());
        }
        let res = app
            .post(
                "/api/v1/events/batch",
                &acme.admin_key,
                &json!({"events": [
                    {"event_type": "db error/€", "category": "system", "data": {"round": round}},
                    {"event_type": "checkout_started", "category": "business"}
                ]}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        for r in body["results"].as_array().unwrap() {
            sent.entry(acme.tenant_id.as_str())
                .or_default()
                .push(r["event_id"].as_str().unwrap().to_string());
        }
        // A repeated idempotency key stores (and publishes) nothing new.
        let (status, _) = app
            .create(
                &acme.admin_key,
                &json!({"event_type": "order.created", "category": "business",
                        "idempotency_key": format!("{}-{round}", acme.tenant_id)}),
            )
            .await;
        assert_eq!(status, 200);
    }
    let total = sent.values().map(Vec::len).sum::<usize>();
    assert_eq!(total, 20 * 4);

    let events = stream.wait_for("events.>", total).await;
    let lifecycle_stored = stream.wait_for("lifecycle.*.event.stored", total).await;
    let processed = stream
        .wait_for("lifecycle.*.event.processed.success", total)
        .await;
    // Settle, then read again: nothing more (no duplicates) arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events_again = stream.read("events.>").await;
    assert_eq!(events_again.len(), total, "exactly the stored events");
    assert_eq!(ids(&events), ids(&events_again));
    assert_eq!(lifecycle_stored.len(), total);
    assert_eq!(
        stream.read("lifecycle.*.event.processed.>").await.len(),
        total
    );

    for (tenant, want) in &sent {
        let got: Vec<String> = events
            .iter()
            .filter(|m| {
                m.subject
                    .starts_with(&format!("{}.events.{tenant}.", stream.prefix))
            })
            .map(|m| m.msg_id.clone())
            .collect();
        assert_eq!(
            &got, want,
            "{tenant}: every event, once, in the order stored"
        );
    }
    // The payload is the stored canonical event; Nats-Msg-Id is its id.
    for m in &events {
        assert_eq!(m.payload["event_id"].as_str(), Some(m.msg_id.as_str()));
    }
    // Special characters are escaped within tokens; the type's dots split tokens.
    assert!(events.iter().any(|m| m.subject
        == format!(
            "{}.events.{}.system.db~20error~2F~E2~82~AC",
            stream.prefix, acme.tenant_id
        )));
    assert!(events.iter().any(|m| m.subject
        == format!(
            "{}.events.{}.business.order.created",
            stream.prefix, globex.tenant_id
        )));
    let p = &processed[0].payload;
    assert_eq!(p["type"], "event.processed.success");
    assert_eq!(p["status"], "processed");
    let stored_ids: HashSet<&str> = lifecycle_stored
        .iter()
        .filter_map(|m| m.payload["event_id"].as_str())
        .collect();
    assert_eq!(stored_ids.len(), total);

    let h = health(&app).await;
    assert_eq!(h["nats"]["connected"], true, "{h}");
    assert!(h["nats"]["last_error"].is_null(), "{h}");
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_loses_nothing_and_the_backlog_goes_out_in_order() {
    let Some(url) = nats_url() else { return };
    let stream = NatsStream::new(&url).await;
    let proxy = Proxy::start(&url).await;
    let app = spawn_with(|c| point_at(c, &proxy.url, &stream)).await;
    let t = app.tenant("acme").await;
    let mut sent = send(&app, &t.admin_key, 30).await;
    stream.wait_for("events.>", 30).await;

    proxy.set(Mode::Down);
    app.eventually("health reports NATS down", || async {
        health(&app).await["nats"]["connected"] == false
    })
    .await;
    sent.extend(send(&app, &t.admin_key, 70).await);
    // While NATS is away nothing new arrives, and nothing is lost.
    assert_eq!(stream.read("events.>").await.len(), 30);

    proxy.set(Mode::Pass);
    let events = stream.wait_for("events.>", 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = if events.len() == 100 {
        stream.read("events.>").await
    } else {
        events
    };
    assert_eq!(ids(&events), sent, "all 100, once each, in order");
    app.eventually("health reports NATS back", || async {
        health(&app).await["nats"]["connected"] == true
    })
    .await;
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_duplicates_after_herald_dies_between_publishing_and_its_acks() {
    let Some(url) = nats_url() else { return };
    let stream = NatsStream::new(&url).await;
    let proxy = Proxy::start(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("HERALD_NATS_URL", proxy.url.clone()),
        ("HERALD_NATS_STREAM", stream.name.clone()),
        ("HERALD_NATS_SUBJECT_PREFIX", stream.prefix.clone()),
        ("HERALD_WORKER_IDLE_MS", "20".to_string()),
    ];
    let (mut child, base) = binary::start_with(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let key = binary::tenant(&client, &base, "acme").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !stream.exists().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream never created"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // JetStream stores what Herald publishes, but no ack reaches Herald: its
    // cursor cannot move, exactly as if it died between publish and ack.
    proxy.set(Mode::SwallowReplies);
    let batch: Vec<Value> = (0..300)
        .map(|i| json!({"event_type": "x", "category": "system", "data": {"i": i}}))
        .collect();
    let res = client
        .post(format!("{base}/api/v1/events/batch"))
        .bearer_auth(&key)
        .json(&json!({"events": batch}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let sent: Vec<String> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_string())
        .collect();
    let before = stream.wait_for("events.>", 300).await;
    assert_eq!(ids(&before), sent, "published once, unacknowledged");

    // Killed mid-publish; restarted with NATS reachable: it publishes the
    // same events again from its cursor, and JetStream drops the repeats.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    proxy.set(Mode::Pass);
    let (mut child, base) = binary::start_with(dir.path(), &env).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let h: Value = client
            .get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Re-published (as duplicates) every event and its `event.stored`.
        if h["nats"]["published"].as_u64().unwrap_or(0) >= 600 && h["nats"]["last_error"].is_null()
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never re-published: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = stream.read("events.>").await;
    assert_eq!(ids(&after), sent, "still exactly once each, in order");
    assert_eq!(stream.read("lifecycle.*.event.stored").await.len(), 300);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}
