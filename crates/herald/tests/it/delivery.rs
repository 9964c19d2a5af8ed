//! Webhooks end to end on the real server, on both stores: events ingested
//! over HTTP reach a subscription's endpoint (a receiver on 127.0.0.1)
//! exactly once each, signed with the secret the subscription's 201 showed.
//! [`verified`] checks every delivery twice: with Herald's own verifier and
//! with the official Standard Webhooks library, on the bytes received.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_testkit::receiver::{Received, WebhookReceiver};
use herald_testkit::{Backend, spawn_on};
use herald_workers::delivery::signature::{WebhookSecret, verify};
use serde_json::{Value, json};

herald_testkit::on_each_backend!(each_matching_event_reaches_the_endpoint_once_signed,);

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
