//! Publishing to the real NATS JetStream: exactly the stored events, in
//! each tenant's order, with lifecycle events beside them; nothing lost
//! while NATS is away; no duplicates when Herald dies mid-publish; a
//! restart with other retention settings updates the existing stream.
//! Each publishing test runs on both stores (`<test>::sqlite`,
//! `<test>::postgres`), since the cursor, the outbox and the publisher
//! lease are the store's.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use herald_testkit::{
    Backend, Mode, NatsStream, Proxy, TestApp, msg_ids as ids, nats_url, spawn_on, spawn_with,
    stays, wait_for,
};
use serde_json::{Value, json};

use crate::binary;

herald_testkit::on_each_backend!(
    a_consumer_receives_exactly_the_stored_events_in_each_tenants_order,
    a_nats_outage_loses_nothing_and_the_backlog_goes_out_in_order,
    no_duplicates_after_herald_dies_between_publishing_and_its_acks,
);

/// How long the outage test watches for messages that must not come, and
/// within which, as its positive control, messages that must come do.
const QUIET_WINDOW: Duration = Duration::from_secs(5);

fn point_at(config: &mut herald_server::Config, url: &str, stream: &NatsStream) {
    config.nats_url = Some(url.to_string());
    config.nats_stream = stream.name.clone();
    config.nats_subject_prefix = stream.prefix.clone();
}

/// An event in a tenant of its own, returned once JetStream holds it, its
/// `event.stored` and its `event.processed.*`. Events and their
/// `event.stored` go out in commit order, and lifecycle notifications in
/// the order they were queued, so every message published before this
/// one's is in the stream by then: after it, a count is exact.
async fn sentinel(app: &TestApp, stream: &NatsStream) -> String {
    let t = app.tenant("sentinel").await;
    let (status, body) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "sentinel", "category": "system"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["event_id"].as_str().unwrap().to_string();
    stream.wait_for_event("events.>", &id).await;
    stream.wait_for_event("lifecycle.*.event.stored", &id).await;
    stream
        .wait_for_event("lifecycle.*.event.processed.>", &id)
        .await;
    id
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

async fn a_consumer_receives_exactly_the_stored_events_in_each_tenants_order(backend: Backend) {
    let Some(url) = nats_url() else { return };
    let stream = NatsStream::new(&url).await;
    let app = spawn_on(backend, |c| point_at(c, &url, &stream)).await;
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
    // Once a later event is there, everything before it is: then the
    // stream holds exactly the stored events and one of each notification
    // (no duplicates), and the sentinel.
    let last = sentinel(&app, &stream).await;
    let events_again = stream.read("events.>").await;
    assert_eq!(events_again.len(), total + 1, "exactly the stored events");
    assert_eq!(ids(&events_again), [ids(&events), vec![last]].concat());
    assert_eq!(lifecycle_stored.len(), total);
    assert_eq!(
        stream.read("lifecycle.*.event.stored").await.len(),
        total + 1
    );
    assert_eq!(
        stream.read("lifecycle.*.event.processed.>").await.len(),
        total + 1
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

    let h = app.health().await;
    assert_eq!(h["nats"]["connected"], true, "{h}");
    assert!(h["nats"]["last_error"].is_null(), "{h}");
    app.stop().await.unwrap();
}

async fn a_nats_outage_loses_nothing_and_the_backlog_goes_out_in_order(backend: Backend) {
    let Some(url) = nats_url() else { return };
    let stream = NatsStream::new(&url).await;
    let proxy = Proxy::start(&url).await;
    let app = spawn_on(backend, |c| point_at(c, &proxy.url, &stream)).await;
    let t = app.tenant("acme").await;
    let mut sent = send(&app, &t.admin_key, 30).await;
    // The positive control of the quiet check below: through the same path
    // (Herald, the proxy, NATS, this reader), what Herald stores arrives
    // within the window.
    wait_for(
        "the first 30 events, through the proxy",
        QUIET_WINDOW,
        || async {
            let n = stream.read("events.>").await.len();
            if n == 30 {
                Ok(())
            } else {
                Err(format!("{n} events"))
            }
        },
    )
    .await;

    proxy.set(Mode::Down);
    app.eventually("health reports NATS down", || async {
        app.health().await["nats"]["connected"] == false
    })
    .await;
    sent.extend(send(&app, &t.admin_key, 70).await);
    // While NATS is away nothing new arrives (watched for as long as the
    // control was given), and nothing is lost.
    stays(
        "JetStream holding only the 30 events from before the outage",
        QUIET_WINDOW,
        || async {
            let n = stream.read("events.>").await.len();
            if n == 30 {
                Ok(())
            } else {
                Err(format!("{n} events"))
            }
        },
    )
    .await;

    proxy.set(Mode::Pass);
    // One more event after the backlog: once it is there, the whole
    // backlog is, and the list is exact.
    sent.extend(send(&app, &t.admin_key, 1).await);
    let events = stream
        .wait_for_event("events.>", sent.last().unwrap())
        .await;
    assert_eq!(ids(&events), sent, "all 101, once each, in order");
    app.eventually("health reports NATS back", || async {
        app.health().await["nats"]["connected"] == true
    })
    .await;
    app.stop().await.unwrap();
}

/// `/health` of the real binary at `base`.
async fn health(client: &reqwest::Client, base: &str) -> Value {
    client
        .get(format!("{base}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn no_duplicates_after_herald_dies_between_publishing_and_its_acks(backend: Backend) {
    let Some(url) = nats_url() else { return };
    let stream = NatsStream::new(&url).await;
    let proxy = Proxy::start(&url).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = backend.env();
    env.extend([
        ("HERALD_NATS_URL", proxy.url.clone()),
        ("HERALD_NATS_STREAM", stream.name.clone()),
        ("HERALD_NATS_SUBJECT_PREFIX", stream.prefix.clone()),
        ("HERALD_WORKER_IDLE_MS", "20".to_string()),
    ]);
    let (mut child, base) = binary::start_with(dir.path(), &env).await;
    let client = herald_testkit::http_client();
    let key = binary::tenant(&client, &base, "acme").await;
    // Before the replies are cut, one event goes out and its acks come back:
    // so the stream is set up (the reply to its creation reached Herald,
    // which a cut right after creation could otherwise swallow) and the
    // cursor is past it.
    let res = client
        .post(format!("{base}/api/v1/events/create"))
        .bearer_auth(&key)
        .json(&json!({"event_type": "x", "category": "system", "data": {"i": "first"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let first: Value = res.json().await.unwrap();
    wait_for(
        "the first event and its event.stored acknowledged",
        Duration::from_secs(30),
        || async {
            let h = health(&client, &base).await;
            if h["nats"]["published"].as_u64().unwrap_or(0) >= 2 {
                Ok(())
            } else {
                Err(h.to_string())
            }
        },
    )
    .await;

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
    let sent: Vec<String> = std::iter::once(&first)
        .chain(body["results"].as_array().unwrap())
        .map(|r| r["event_id"].as_str().unwrap().to_string())
        .collect();
    let before = stream.wait_for("events.>", 301).await;
    assert_eq!(ids(&before), sent, "published once, unacknowledged");

    // Killed mid-publish; restarted with NATS reachable: it publishes the
    // same events again from its cursor, and JetStream drops the repeats.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    proxy.set(Mode::Pass);
    let (mut child, base) = binary::start_with(dir.path(), &env).await;
    // Re-published (as duplicates) every event and its `event.stored`: the
    // publisher counts a message once JetStream acknowledged it.
    wait_for(
        "the events re-published",
        Duration::from_secs(30),
        || async {
            let h = health(&client, &base).await;
            if h["nats"]["published"].as_u64().unwrap_or(0) >= 600
                && h["nats"]["last_error"].is_null()
            {
                Ok(())
            } else {
                Err(h.to_string())
            }
        },
    )
    .await;
    let after = stream.read("events.>").await;
    assert_eq!(ids(&after), sent, "still exactly once each, in order");
    assert_eq!(stream.read("lifecycle.*.event.stored").await.len(), 301);
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

/// JetStream keeps a stream's settings from its creation; Herald brings an
/// existing stream to the configured retention at start and extends its
/// subjects to a new prefix, keeping the messages it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_other_retention_updates_the_existing_stream() {
    let Some(url) = nats_url() else { return };
    let stream = NatsStream::new(&url).await;
    let app = spawn_with(|c| {
        point_at(c, &url, &stream);
        c.nats_max_age_secs = 3600;
    })
    .await;
    let t = app.tenant("acme").await;
    let first = send(&app, &t.admin_key, 3).await;
    stream.wait_for("events.>", 3).await;
    let created = stream.config().await.expect("stream created");
    assert_eq!(
        (created.max_age, created.max_bytes),
        (Duration::from_secs(3600), -1)
    );

    let new_prefix = format!("{}-moved", stream.prefix);
    let app = app
        .restart_with(|c| {
            point_at(c, &url, &stream);
            c.nats_max_age_secs = 7200;
            c.nats_max_bytes = 64 << 20;
            c.nats_duplicate_window_secs = 300;
            c.nats_subject_prefix = new_prefix.clone();
        })
        .await;
    let later = send(&app, &t.admin_key, 2).await;
    // The publisher updates the stream before it publishes again.
    let updated = wait_for(
        "the stream's new settings",
        Duration::from_secs(30),
        || async {
            let config = stream.config().await.unwrap();
            if config.max_age != created.max_age {
                Ok(config)
            } else {
                Err(format!("{config:?}, {}", app.health().await))
            }
        },
    )
    .await;
    assert_eq!(updated.max_age, Duration::from_secs(7200));
    assert_eq!(updated.max_bytes, 64 << 20);
    assert_eq!(updated.duplicate_window, Duration::from_secs(300));
    assert_eq!(
        updated.subjects,
        vec![format!("{}.>", stream.prefix), format!("{new_prefix}.>")]
    );
    // The new prefix's subjects are the stream's now: its events land there.
    let moved = wait_for(
        "events under the new prefix",
        Duration::from_secs(30),
        || async {
            let got = stream
                .read_subjects(&format!("{new_prefix}.events.>"))
                .await;
            if got.len() >= 2 {
                Ok(got)
            } else {
                Err(app.health().await.to_string())
            }
        },
    )
    .await;
    assert_eq!(ids(&moved), later);
    // What the stream held before stays.
    assert_eq!(ids(&stream.read("events.>").await), first);
    app.stop().await.unwrap();
}
