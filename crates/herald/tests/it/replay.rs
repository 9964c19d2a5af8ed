//! Replay end to end on the real server, on both stores: stored events
//! selected by ids, by stream, or by a time range with filters reach the
//! target subscriptions again as new messages (a new `webhook-id`, a
//! `herald-replay` header, a valid signature, the event unchanged); a dry
//! run counts the same deliveries and sends none; bad bodies name every
//! bad field.

use std::time::Duration;

use herald_testkit::receiver::{Received, WebhookReceiver};
use herald_testkit::{Backend, Tenant, TestApp, spawn_on};
use herald_workers::delivery::signature::WebhookSecret;
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    a_replay_by_ids_is_a_new_signed_message_carrying_the_unchanged_event,
    replays_by_stream_and_by_time_range_with_a_filter_reach_only_their_targets,
    a_dry_run_sends_nothing_and_counts_what_the_real_run_sends,
    bad_replay_requests_name_every_bad_field,
    an_identifier_stored_redacted_is_selected_by_the_value_it_was,
);

const WAIT: Duration = Duration::from_secs(15);

async fn setup(backend: Backend) -> (TestApp, Tenant, WebhookReceiver) {
    let receiver = WebhookReceiver::start().await;
    let app = spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await;
    let t = app.tenant("acme").await;
    (app, t, receiver)
}

/// Subscribes `name` (selector fields in `selector`) to the receiver's
/// `/{name}`; its id and secret.
async fn subscribe(
    app: &TestApp,
    t: &Tenant,
    receiver: &WebhookReceiver,
    name: &str,
    selector: Value,
) -> (String, WebhookSecret) {
    let mut body =
        json!({"subscriber_name": name, "callback_url": format!("{}/{name}", receiver.url)});
    if let (Value::Object(b), Value::Object(s)) = (&mut body, selector) {
        b.extend(s);
    }
    let res = app
        .post("/api/v1/events/subscriptions", &t.admin_key, &body)
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    (
        created["subscription_id"].as_str().unwrap().to_string(),
        WebhookSecret::parse(created["webhook_secret"].as_str().unwrap()).unwrap(),
    )
}

async fn store_event(app: &TestApp, t: &Tenant, body: Value) -> String {
    let (status, out) = app.create(&t.admin_key, &body).await;
    assert!(status == 201 || status == 202, "{status} {out}");
    out["event_id"].as_str().unwrap().to_string()
}

/// `n` webhooks, in arrival order.
async fn receive(receiver: &mut WebhookReceiver, n: usize, what: &str) -> Vec<Received> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(receiver.next(&format!("{what} {i}"), WAIT).await);
    }
    out
}

/// Posts a replay; its 202 answer.
async fn replay(app: &TestApp, t: &Tenant, body: Value) -> Value {
    let res = app.post("/api/v1/events/replay", &t.admin_key, &body).await;
    let status = res.status();
    let out: Value = res.json().await.unwrap();
    assert_eq!(status, 202, "{out}");
    assert!(out["replay_id"].as_str().unwrap().starts_with("rpl_"));
    assert_eq!(
        out["status_url"],
        json!(format!(
            "/api/v1/events/replay/{}",
            out["replay_id"].as_str().unwrap()
        ))
    );
    out
}

/// Waits for the replay to complete; its state.
async fn completed(app: &TestApp, t: &Tenant, accepted: &Value) -> Value {
    let url = accepted["status_url"].as_str().unwrap().to_string();
    let read = app.key(t, &["read"]).await;
    app.eventually("the replay completes", || {
        let (url, read) = (url.clone(), read.clone());
        async move { replay_state(app, &url, &read).await["state"] == "completed" }
    })
    .await;
    // Completed is final: this read shows the same.
    replay_state(app, &url, &read).await
}

/// `GET` of a replay's status URL.
async fn replay_state(app: &TestApp, url: &str, key: &str) -> Value {
    let res = app.get(url, key).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn a_replay_by_ids_is_a_new_signed_message_carrying_the_unchanged_event(backend: Backend) {
    let (app, t, mut receiver) = setup(backend).await;
    let (_, secret) = subscribe(
        &app,
        &t,
        &receiver,
        "orders",
        json!({"event_types": ["order.*"]}),
    )
    .await;
    let e0 = store_event(
        &app,
        &t,
        json!({"event_type": "order.created", "category": "business", "data": {"n": 0}}),
    )
    .await;
    let e1 = store_event(
        &app,
        &t,
        json!({"event_type": "order.paid", "category": "business", "data": {"n": 1}}),
    )
    .await;
    let first = receive(&mut receiver, 2, "first delivery").await;
    let original = first
        .iter()
        .find(|r| r.json()["data"]["event_id"] == json!(e0))
        .expect("e0 delivered")
        .clone();
    assert_eq!(original.header("herald-replay"), None);
    // Once processing is done (the one change a stored event sees), it
    // stays as it is.
    let event_url = format!("/api/v1/events/{e0}");
    app.eventually("e0 is processed", || {
        let (app, url, key) = (&app, event_url.clone(), t.admin_key.clone());
        async move {
            let event: Value = app.get(&url, &key).await.json().await.unwrap();
            event["status"] == "processed"
        }
    })
    .await;
    let stored_before: Value = app
        .get(&event_url, &t.admin_key)
        .await
        .json()
        .await
        .unwrap();

    let accepted = replay(
        &app,
        &t,
        json!({"event_ids": [e0], "target_service": "orders"}),
    )
    .await;
    assert_eq!(accepted["dry_run"], false);
    let r = receiver.next("the replayed webhook", WAIT).await;
    let body = verified(&r, &secret);
    assert_eq!(r.header("herald-replay"), accepted["replay_id"].as_str());
    assert_ne!(
        r.header("webhook-id"),
        original.header("webhook-id"),
        "a new message"
    );
    // The same event; only its processing status may have moved on since
    // the first delivery.
    let without_status = |mut v: Value| {
        v.as_object_mut().unwrap().remove("status");
        v
    };
    assert_eq!(
        without_status(body["data"].clone()),
        without_status(original.json()["data"].clone()),
        "the same event"
    );
    assert_eq!(body["data"]["event_id"], json!(e0));
    assert_eq!(body["type"], "order.created");

    let state = completed(&app, &t, &accepted).await;
    assert_eq!(state["events_scanned"], 1);
    assert_eq!(state["events_matched"], 1);
    assert_eq!(state["deliveries_created"], 1);
    assert_eq!(state["selection"], json!({"event_ids": [e0]}));
    assert!(state["started_at"].is_string() && state["completed_at"].is_string());
    let stored_after: Value = app
        .get(&event_url, &t.admin_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        stored_after, stored_before,
        "a replay changes no stored event"
    );

    // The request is in the audit trail, with the replay's id, and so are
    // the replay's started and completed notices.
    let replay_id = accepted["replay_id"].as_str().unwrap().to_string();
    app.eventually("the replay is audited", || {
        let (app, key, replay_id) = (&app, t.admin_key.clone(), replay_id.clone());
        async move {
            let audit: Value = app
                .get("/api/v1/audit?limit=100", &key)
                .await
                .json()
                .await
                .unwrap();
            let records = audit["records"].as_array().unwrap();
            let resource = format!("/api/v1/events/replay/{replay_id}");
            // The request, and the worker's lifecycle notices.
            let noticed = |kind: &str| {
                records
                    .iter()
                    .any(|r| r["operation"] == kind && r["resource"] == resource.as_str())
            };
            records.iter().any(|r| {
                r["operation"] == "POST /api/v1/events/replay"
                    && r["detail"].as_str().unwrap_or("").contains(&replay_id)
            }) && noticed("event.replay.started")
                && noticed("event.replay.completed")
        }
    })
    .await;

    // A sentinel replay of e1: once it arrives, a second copy of e0 would have too.
    let sentinel = replay(&app, &t, json!({"event_ids": [e1]})).await;
    let r = receiver.next("the sentinel replay", WAIT).await;
    assert_eq!(r.header("herald-replay"), sentinel["replay_id"].as_str());
    assert!(receiver.try_next().is_none(), "e0 was replayed once");
}

async fn replays_by_stream_and_by_time_range_with_a_filter_reach_only_their_targets(
    backend: Backend,
) {
    let (app, t, mut receiver) = setup(backend).await;
    let (all_id, all_secret) = subscribe(&app, &t, &receiver, "all", json!({})).await;
    let (_, orders_secret) = subscribe(
        &app,
        &t,
        &receiver,
        "orders",
        json!({"event_types": ["order.*"]}),
    )
    .await;
    let at = |minute: u32| format!("2026-06-01T10:0{minute}:00Z");
    let mut ids = Vec::new();
    for (minute, event_type, stream) in [
        (0, "order.created", Some("order:1")),
        (1, "user.signup", None),
        (2, "order.paid", Some("order:1")),
        (3, "order.created", Some("order:2")),
        (4, "order.shipped", Some("order:1")),
    ] {
        let mut body =
            json!({"event_type": event_type, "category": "business", "timestamp": at(minute)});
        if let Some(s) = stream {
            body["stream_id"] = json!(s);
        }
        ids.push(store_event(&app, &t, body).await);
    }
    // The fan-out's own: five to `all`, four to `orders`.
    receive(&mut receiver, 9, "first delivery").await;

    // Stream order:1 to `all` alone (named by id).
    let by_stream = replay(
        &app,
        &t,
        json!({"stream_id": "order:1", "target_service": all_id}),
    )
    .await;
    let got = receive(&mut receiver, 3, "stream replay").await;
    let mut events: Vec<String> = got
        .iter()
        .map(|r| {
            assert_eq!(r.uri.path(), "/all");
            assert_eq!(r.header("herald-replay"), by_stream["replay_id"].as_str());
            verified(r, &all_secret)["data"]["event_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    events.sort();
    let mut expected = vec![ids[0].clone(), ids[2].clone(), ids[4].clone()];
    expected.sort();
    assert_eq!(events, expected);
    assert_eq!(
        completed(&app, &t, &by_stream).await["deliveries_created"],
        3
    );

    // 10:01..=10:03, order.created or user.signup, to every subscription
    // that matches: ids[1] → all; ids[3] → all and orders.
    let by_range = replay(
        &app,
        &t,
        json!({"start_time": at(1), "end_time": at(3), "event_type": ["order.created", "user.signup"]}),
    )
    .await;
    let got = receive(&mut receiver, 3, "range replay").await;
    let mut pairs: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            assert_eq!(r.header("herald-replay"), by_range["replay_id"].as_str());
            let secret = if r.uri.path() == "/all" {
                &all_secret
            } else {
                &orders_secret
            };
            let id = verified(r, secret)["data"]["event_id"]
                .as_str()
                .unwrap()
                .to_string();
            (r.uri.path().to_string(), id)
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("/all".to_string(), ids[1].clone()),
            ("/all".to_string(), ids[3].clone()),
            ("/orders".to_string(), ids[3].clone()),
        ]
    );
    let state = completed(&app, &t, &by_range).await;
    assert_eq!(
        (
            &state["events_scanned"],
            &state["events_matched"],
            &state["deliveries_created"]
        ),
        (&json!(2), &json!(2), &json!(3))
    );
}

async fn a_dry_run_sends_nothing_and_counts_what_the_real_run_sends(backend: Backend) {
    let (app, t, mut receiver) = setup(backend).await;
    subscribe(&app, &t, &receiver, "all", json!({})).await;
    subscribe(
        &app,
        &t,
        &receiver,
        "orders",
        json!({"event_types": ["order.*"]}),
    )
    .await;
    for (i, event_type) in ["order.created", "user.signup", "order.paid"]
        .iter()
        .enumerate()
    {
        store_event(
            &app,
            &t,
            json!({"event_type": event_type, "category": "business", "stream_id": "order:9", "data": {"i": i}}),
        )
        .await;
    }
    receive(&mut receiver, 5, "first delivery").await;

    let dry = replay(&app, &t, json!({"stream_id": "order:9", "dry_run": true})).await;
    assert_eq!(dry["state"], "completed");
    assert_eq!(dry["events"], 3);
    assert_eq!(dry["deliveries"], 5);
    assert_eq!(dry["complete"], true);
    assert_eq!(dry["bound"], 10_000);
    let dry_state = completed(&app, &t, &dry).await;
    assert_eq!(dry_state["dry_run"], true);

    let real = replay(&app, &t, json!({"stream_id": "order:9"})).await;
    assert_eq!(real["state"], "pending");
    let got = receive(&mut receiver, 5, "real replay").await;
    // Had the dry run sent anything, it would have arrived before these.
    for r in &got {
        assert_eq!(
            r.header("herald-replay"),
            real["replay_id"].as_str(),
            "{r:?}"
        );
    }
    let state = completed(&app, &t, &real).await;
    assert_eq!(state["events_matched"], dry["events"]);
    assert_eq!(state["deliveries_created"], dry["deliveries"]);
    let sentinel = replay(
        &app,
        &t,
        json!({"stream_id": "order:9", "target_service": "orders"}),
    )
    .await;
    let r = receiver.next("the sentinel", WAIT).await;
    assert_eq!(r.header("herald-replay"), sentinel["replay_id"].as_str());
}

async fn bad_replay_requests_name_every_bad_field(backend: Backend) {
    let (app, t, _receiver) = setup(backend).await;
    let fields = |body: Value| {
        let app = &app;
        let key = t.admin_key.clone();
        async move {
            let res = app.post("/api/v1/events/replay", &key, &body).await;
            assert_eq!(res.status(), 400);
            assert_eq!(
                res.headers()["content-type"].to_str().unwrap(),
                "application/problem+json"
            );
            let problem: Value = res.json().await.unwrap();
            let mut f: Vec<String> = problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["field"].as_str().unwrap().to_string())
                .collect();
            f.sort();
            f
        }
    };
    assert_eq!(
        fields(json!({})).await,
        ["/end_time", "/event_ids", "/start_time", "/stream_id"]
    );
    assert_eq!(
        fields(json!({"event_ids": ["nope"], "target_service": "nobody", "dry_run": "yes", "colour": 1})).await,
        ["/colour", "/dry_run", "/event_ids/0", "/target_service"]
    );
    assert_eq!(
        fields(
            json!({"stream_id": "order:1", "start_time": "2026-01-01T00:00:00Z", "end_time": "x"})
        )
        .await,
        ["/end_time", "/start_time", "/stream_id"]
    );
    let read = app.key(&t, &["read"]).await;
    let res = app
        .post(
            "/api/v1/events/replay",
            &read,
            &json!({"stream_id": "order:1"}),
        )
        .await;
    assert_eq!(res.status(), 403, "replaying needs manage");
    let res = app.get("/api/v1/events/replay/rpl_nothing", &read).await;
    assert_eq!(res.status(), 404);
}

async fn an_identifier_stored_redacted_is_selected_by_the_value_it_was(backend: Backend) {
    let (app, t, mut receiver) = setup(backend).await;
    let (_, secret) = subscribe(&app, &t, &receiver, "all", json!({})).await;
    let at = "2026-06-01T10:00:00Z";
    let ada = store_event(
        &app,
        &t,
        json!({"event_type": "user.login", "category": "security", "user_id": "ada@example.com", "timestamp": at}),
    )
    .await;
    store_event(
        &app,
        &t,
        json!({"event_type": "user.login", "category": "security", "user_id": "bob@example.com", "timestamp": at}),
    )
    .await;
    receive(&mut receiver, 2, "first delivery").await;

    let accepted = replay(
        &app,
        &t,
        json!({"start_time": at, "end_time": at, "user_id": "ada@example.com", "target_service": "all"}),
    )
    .await;
    let r = receiver.next("the replayed login", WAIT).await;
    assert_eq!(verified(&r, &secret)["data"]["event_id"], json!(ada));
    let state = completed(&app, &t, &accepted).await;
    assert_eq!(state["deliveries_created"], 1);
    let stored = state["selection"]["user_id"].as_str().unwrap();
    assert!(
        !stored.contains("ada@example.com"),
        "the replay keeps the identifier as the events store it: {stored}"
    );
}

/// The whole webhook body, after the signature checks of
/// [`crate::delivery::verified`] (Herald's verifier and the official
/// Standard Webhooks library).
fn verified(r: &Received, secret: &WebhookSecret) -> Value {
    crate::delivery::verified(r, secret);
    r.json()
}
