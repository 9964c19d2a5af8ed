//! Webhooks end to end on the real server, on both stores: events ingested
//! over HTTP reach a subscription's endpoint (a receiver on 127.0.0.1)
//! exactly once each, signed with the secret the subscription's 201 showed;
//! a dead letter and a 410 are told on NATS (`delivery.exhausted`,
//! `subscription.disabled`) and in the audit trail; with `ordering:
//! stream`, a receiver that fails for a while still gets each stream's
//! events in version order.
//! [`verified`] checks every delivery twice: with Herald's own verifier and
//! with the official Standard Webhooks library, on the bytes received.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_testkit::receiver::{Received, WebhookReceiver};
use herald_testkit::{Backend, NatsStream, TestApp, nats_url, spawn_on};
use herald_workers::delivery::signature::{WebhookSecret, verify};
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    each_matching_event_reaches_the_endpoint_once_signed,
    a_dead_letter_and_a_gone_endpoint_are_told_on_nats_and_audited,
    a_stream_ordering_subscription_gets_each_stream_in_version_order_through_failures,
    a_cloudevents_subscription_gets_structured_cloudevents_signed,
);

const WAIT: Duration = Duration::from_secs(15);

/// The event a webhook carries, after checking its signature by Herald's
/// verifier and by the official Standard Webhooks library, byte for byte.
pub(crate) fn verified(r: &Received, secret: &WebhookSecret) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = |name: &str| {
        r.header(name)
            .unwrap_or_else(|| panic!("no {name} header: {r:?}"))
    };
    verify(
        header("webhook-id"),
        header("webhook-timestamp"),
        &r.body,
        header("webhook-signature"),
        std::slice::from_ref(secret),
        now,
        300,
    )
    .unwrap_or_else(|e| panic!("signature of {r:?}: {e}"));
    standardwebhooks::Webhook::new(&secret.expose())
        .expect("the official library takes Herald's secret")
        .verify(&r.body, &r.headers)
        .unwrap_or_else(|e| panic!("the official Standard Webhooks library refuses {r:?}: {e}"));
    r.json()["data"].clone()
}

async fn each_matching_event_reaches_the_endpoint_once_signed(backend: Backend) {
    let mut receiver = WebhookReceiver::start().await;
    let app = spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await;
    let t = app.tenant("acme").await;
    let res = app
        .post(
            "/api/v1/events/subscriptions",
            &t.admin_key,
            &json!({
                "subscriber_name": "orders",
                "callback_url": format!("{}/hooks", receiver.url),
                "event_types": ["order.*"],
                "headers": {"x-team": "billing"},
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let secret = WebhookSecret::parse(created["webhook_secret"].as_str().unwrap()).unwrap();

    let mut expected = BTreeSet::new();
    for i in 0..3 {
        let (status, out) = app
            .create(
                &t.admin_key,
                &json!({"event_type": "order.created", "category": "business", "data": {"i": i}}),
            )
            .await;
        assert!(status == 201 || status == 202, "{status} {out}");
        expected.insert(out["event_id"].as_str().unwrap().to_string());
    }
    // Not subscribed to: never sent.
    let (status, _) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "user.login", "category": "security"}),
        )
        .await;
    assert!(status == 201 || status == 202);

    let mut got = BTreeSet::new();
    for n in 0..expected.len() {
        let r = receiver.next(&format!("webhook {n}"), WAIT).await;
        assert_eq!(r.uri.path(), "/hooks");
        assert_eq!(r.header("x-team"), Some("billing"));
        let event = verified(&r, &secret);
        assert!(
            got.insert(event["event_id"].as_str().unwrap().to_string()),
            "sent twice: {event}"
        );
    }
    assert_eq!(got, expected);

    // A sentinel after them: once it arrives, anything extra would have too.
    let (_, sentinel) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "order.sentinel", "category": "business"}),
        )
        .await;
    let r = receiver.next("the sentinel", WAIT).await;
    assert_eq!(verified(&r, &secret)["event_id"], sentinel["event_id"]);
    assert!(receiver.try_next().is_none(), "nothing else was sent");
}

/// Creates a webhook subscription; its id.
async fn subscribe(app: &TestApp, key: &str, spec: Value) -> String {
    let res = app.post("/api/v1/events/subscriptions", key, &spec).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    created["subscription_id"].as_str().unwrap().to_string()
}

async fn a_dead_letter_and_a_gone_endpoint_are_told_on_nats_and_audited(backend: Backend) {
    let Some(url) = nats_url() else { return };
    let stream = NatsStream::new(&url).await;
    let failing = WebhookReceiver::start().await;
    failing.respond_with(500);
    let gone = WebhookReceiver::start().await;
    gone.respond_with(410);
    let app = spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
        c.nats_url = Some(url.clone());
        c.nats_stream = stream.name.clone();
        c.nats_subject_prefix = stream.prefix.clone();
    })
    .await;
    let t = app.tenant("acme").await;
    let failing_id = subscribe(
        &app,
        &t.admin_key,
        json!({"subscriber_name": "failing", "callback_url": format!("{}/hooks", failing.url),
               "event_types": ["order.*"], "retry_policy": {"schedule": [1]}}),
    )
    .await;
    let gone_id = subscribe(
        &app,
        &t.admin_key,
        json!({"subscriber_name": "gone", "callback_url": format!("{}/hooks", gone.url),
               "event_types": ["order.*"]}),
    )
    .await;
    let (status, out) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "order.created", "category": "business"}),
        )
        .await;
    assert!(status == 201 || status == 202, "{status} {out}");
    let event_id = out["event_id"].as_str().unwrap().to_string();

    // Each delivery died (the failing one after its one retry, the other at
    // the 410): one `delivery.exhausted` each, naming what died and why.
    let exhausted = stream.wait_for("lifecycle.*.delivery.exhausted", 2).await;
    let mut by_subscription: Vec<(String, Value)> = exhausted
        .iter()
        .map(|m| {
            assert_eq!(m.payload["event_id"], event_id.as_str(), "{:?}", m.payload);
            assert_eq!(m.payload["tenant_id"], t.tenant_id.as_str());
            assert!(
                m.payload["delivery_id"]
                    .as_str()
                    .unwrap()
                    .starts_with("dlv_")
            );
            let sub = m.payload["subscription_id"].as_str().unwrap().to_string();
            (sub, m.payload.clone())
        })
        .collect();
    by_subscription.sort_by(|a, b| a.0.cmp(&b.0));
    let of = |id: &str| {
        by_subscription
            .iter()
            .find(|(s, _)| s == id)
            .unwrap_or_else(|| panic!("no delivery.exhausted for {id}: {by_subscription:?}"))
            .1
            .clone()
    };
    let failed = of(&failing_id);
    assert_eq!(failed["attempts"], 2, "{failed}");
    assert_eq!(failed["last_status"], 500);
    assert_eq!(failed["last_error_class"], "http_5xx");
    assert_eq!(of(&gone_id)["last_status"], 410);

    // The 410 turned its subscription off, once.
    let disabled = stream
        .wait_for("lifecycle.*.subscription.disabled", 1)
        .await;
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    assert_eq!(disabled[0].payload["subscription_id"], gone_id.as_str());
    assert_eq!(disabled[0].payload["reason"], "gone");
    assert_eq!(
        disabled[0].subject,
        format!(
            "{}.lifecycle.{}.subscription.disabled",
            stream.prefix, t.tenant_id
        )
    );

    // Both are in the tenant's audit trail too.
    app.eventually("the notices are audited", || async {
        let body: Value = app
            .get("/api/v1/audit?limit=100", &t.admin_key)
            .await
            .json()
            .await
            .unwrap();
        let ops: Vec<(String, String)> = body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["operation"].as_str().unwrap_or("").to_string(),
                    r["resource"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        ops.contains(&(
            "subscription.disabled".into(),
            format!("/api/v1/events/subscriptions/{gone_id}"),
        )) && ops
            .iter()
            .filter(|(op, _)| op == "delivery.exhausted")
            .count()
            == 2
    })
    .await;
}

async fn a_stream_ordering_subscription_gets_each_stream_in_version_order_through_failures(
    backend: Backend,
) {
    let mut receiver = WebhookReceiver::start().await;
    // Four failures (fewer than open the breaker), then success.
    receiver.respond_in_turn(&[500, 500, 500, 500]);
    let app = spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await;
    let t = app.tenant("acme").await;
    subscribe(
        &app,
        &t.admin_key,
        json!({"subscriber_name": "ordered", "callback_url": format!("{}/hooks", receiver.url),
               "event_types": ["order.*"], "ordering": "stream",
               "retry_policy": {"schedule": [1, 1, 1, 1, 1, 1, 1, 1]}}),
    )
    .await;
    let streams = ["order:1", "order:2"];
    for version in 1..=3 {
        for stream in streams {
            let (status, out) = app
                .create(
                    &t.admin_key,
                    &json!({"event_type": "order.updated", "category": "business",
                            "stream_id": stream, "data": {"v": version}}),
                )
                .await;
            assert!(status == 201 || status == 202, "{status} {out}");
        }
    }
    // Six events and the four failed attempts.
    let mut seen: Vec<(String, i64)> = Vec::new();
    for n in 0..10 {
        let r = receiver.next(&format!("request {n}"), WAIT).await;
        let event = r.json()["data"].clone();
        seen.push((
            event["stream_id"].as_str().unwrap().to_string(),
            event["stream_version"].as_i64().unwrap(),
        ));
    }
    for stream in streams {
        let versions: Vec<i64> = seen
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, v)| *v)
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "{stream}: a version went out before the previous one was delivered: {seen:?}"
        );
        let mut distinct = versions.clone();
        distinct.dedup();
        assert_eq!(distinct, vec![1, 2, 3], "{stream}: {seen:?}");
    }
}

/// `payload_format: "cloudevents"`: each delivery is a structured-mode
/// CloudEvent (its content type says so), signed like every delivery; an
/// event that arrived as a CloudEvent goes out with its own id and source,
/// a native one with its event id and a Herald source; `data` is the event.
async fn a_cloudevents_subscription_gets_structured_cloudevents_signed(backend: Backend) {
    let mut receiver = WebhookReceiver::start().await;
    let app = spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await;
    let t = app.tenant("acme").await;
    let res = app
        .post(
            "/api/v1/events/subscriptions",
            &t.admin_key,
            &json!({"subscriber_name": "ce", "callback_url": format!("{}/ce", receiver.url),
                    "payload_format": "cloudevents"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["payload_format"], "cloudevents");
    let secret = WebhookSecret::parse(created["webhook_secret"].as_str().unwrap()).unwrap();
    let (status, native) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "order.created", "category": "business", "event_source": "backend",
                    "object": {"resource_id": "o-7"}, "data": {"amount": 5}}),
        )
        .await;
    assert_eq!(status, 201, "{native}");
    let res = app
        .client
        .post(app.url("/api/v1/events/cloudevents"))
        .bearer_auth(&t.admin_key)
        .header("content-type", "application/cloudevents+json")
        .body(
            json!({"specversion": "1.0", "type": "com.example.shipped", "source": "/warehouse/7",
                   "id": "ship-1", "subject": "o-7", "time": "2026-12-08T10:00:00Z",
                   "comexampleregion": "eu", "data": {"carrier": "dhl"}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let mut got = Vec::new();
    for _ in 0..2 {
        let r = receiver.next("a CloudEvents delivery", WAIT).await;
        assert_eq!(
            r.header("content-type"),
            Some("application/cloudevents+json")
        );
        verified(&r, &secret);
        got.push(r.json());
    }
    got.sort_by_key(|c| c["type"].as_str().unwrap_or_default().to_string());
    let (shipped, created) = (&got[0], &got[1]);
    assert_eq!(shipped["specversion"], "1.0");
    assert_eq!(
        (
            &shipped["id"],
            &shipped["source"],
            &shipped["subject"],
            &shipped["time"],
            &shipped["comexampleregion"]
        ),
        (
            &json!("ship-1"),
            &json!("/warehouse/7"),
            &json!("o-7"),
            &json!("2026-12-08T10:00:00Z"),
            &json!("eu")
        )
    );
    assert_eq!(shipped["data"]["data"], json!({"carrier": "dhl"}));
    assert_eq!(shipped["datacontenttype"], "application/json");
    assert_eq!(created["id"], native["event_id"]);
    assert_eq!(
        created["source"],
        format!("/herald/{}/backend", t.tenant_id)
    );
    assert_eq!(created["type"], "order.created");
    assert_eq!(created["subject"], "o-7");
    assert_eq!(created["data"]["event_id"], native["event_id"]);
    assert_eq!(created["data"]["data"], json!({"amount": 5}));

    // A format Herald does not write is named.
    let res = app
        .post(
            "/api/v1/events/subscriptions",
            &t.admin_key,
            &json!({"subscriber_name": "x", "callback_url": format!("{}/x", receiver.url),
                    "payload_format": "avro"}),
        )
        .await;
    let p = herald_testkit::problem::read_problem(res).await;
    assert_eq!(
        (p.status, p.fields.clone()),
        (400, vec!["/payload_format".to_string()]),
        "{}",
        p.body
    );
}
