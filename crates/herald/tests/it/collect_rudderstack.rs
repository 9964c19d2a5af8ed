//! The RudderStack webhook destination over real HTTP: a RudderStack
//! event as its data plane sends it (from RudderStack's event spec), one
//! or an array, the write key, and the HMAC signature when the key has a
//! webhook secret (a missing or bad one is a 401 and a security record).

use herald_collect::rudderstack::sign;
use herald_testkit::Backend;
use herald_testkit::app::*;
use serde_json::{Value, json};

herald_testkit::on_each_backend!(rudderstack_events_are_stored_with_their_original_times_and_ids);

fn rudder_event(message_id: &str, event: &str) -> Value {
    json!({
        "anonymousId": "anon-1",
        "channel": "web",
        "context": {
            "app": {"build": "1.0.0", "name": "RudderLabs JavaScript SDK", "version": "2.48.1"},
            "library": {"name": "RudderLabs JavaScript SDK", "version": "2.48.1"},
            "locale": "en-US",
            "userAgent": "Mozilla/5.0 (X11; Linux x86_64)"
        },
        "event": event,
        "integrations": {"All": true},
        "messageId": message_id,
        "originalTimestamp": "2026-12-07T11:00:00.000Z",
        "properties": {"sku": "G-32", "price": 18.99},
        "receivedAt": "2026-12-07T11:00:01.250Z",
        "request_ip": "203.0.113.9",
        "rudderId": "8f8fa6b5-8e24-489c-8e22-61f23f2e364f",
        "sentAt": "2026-12-07T11:00:00.900Z",
        "timestamp": "2026-12-07T11:00:00.350Z",
        "type": "track",
        "userId": "u-1"
    })
}

async fn rudderstack_events_are_stored_with_their_original_times_and_ids(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("Acme").await;
    let key = app.key(&t, &["collect"]).await;
    let res = app
        .client
        .post(app.url("/webhooks/rudderstack"))
        .basic_auth(&key, Some(""))
        .json(&json!([
            rudder_event("msg-1", "Product Added"),
            rudder_event("msg-2", "Order Completed")
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["count"], 2);
    let id = body["event_ids"][0].as_str().unwrap();
    let e: Value = app
        .get(&format!("/api/v1/events/{id}"), &t.admin_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(e["event_type"], "Product Added");
    assert_eq!(e["event_source"], "frontend");
    assert_eq!(e["event_category"], "user_action");
    assert_eq!(e["idempotency_key"], "msg-1");
    // RudderStack already corrected the time: kept as its `timestamp` says.
    assert!(
        e["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-07T11:00:00.35"),
        "{e}"
    );
    let meta = &e["metadata"]["rudderstack"];
    assert_eq!(meta["originalTimestamp"], "2026-12-07T11:00:00.000Z");
    assert_eq!(meta["sentAt"], "2026-12-07T11:00:00.900Z");
    assert_eq!(meta["receivedAt"], "2026-12-07T11:00:01.250Z");
    assert!(meta["heraldReceivedAt"].is_string());
    assert_eq!(
        e["metadata"]["unknown_fields"]["rudderId"],
        "8f8fa6b5-8e24-489c-8e22-61f23f2e364f"
    );
    assert_eq!(e["metadata"]["unknown_fields"]["request_ip"], "203.0.113.9");
    assert_eq!(e["data"]["properties"]["sku"], "G-32");

    // One event, the key in the query; a repeat of msg-1 stores nothing new.
    let res = app
        .client
        .post(app.url(&format!("/webhooks/rudderstack?writeKey={key}")))
        .json(&rudder_event("msg-1", "Product Added"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["count"], 0);
    assert_eq!(again["event_ids"][0], id);
}

#[tokio::test]
async fn a_webhook_secret_makes_the_signature_required() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let res = app
        .post(
            &format!("/api/v1/admin/tenants/{}/keys", t.tenant_id),
            ROOT_KEY,
            &json!({"name": "rudder", "scopes": ["collect"], "webhook_secret": "whsec-0123456789abcdef"}),
        )
        .await;
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["collect"]["webhook_secret_set"], true);
    assert!(
        !created.to_string().contains("whsec-0123456789abcdef"),
        "the secret is never answered"
    );
    let key = created["api_key"].as_str().unwrap().to_string();
    let body = serde_json::to_vec(&rudder_event("s-1", "Signed")).unwrap();
    let send = |signature: Option<String>| {
        let mut req = app
            .client
            .post(app.url("/webhooks/rudderstack"))
            .basic_auth(&key, Some(""))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(s) = signature {
            req = req.header("x-webhook-signature", s);
        }
        req.send()
    };
    let res = send(None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let res = send(Some(sign(b"whsec-wrong-secret-000", &body)))
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = send(Some(sign(b"whsec-0123456789abcdef", &body)))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["count"], 1);
    // Both refusals are security records in the tenant's audit trail.
    app.eventually("the refusals are audited", || async {
        let audit: Value = app
            .get("/api/v1/audit?outcome=security_violation", &t.admin_key)
            .await
            .json()
            .await
            .unwrap();
        audit["records"].as_array().is_some_and(|r| {
            r.iter()
                .filter(|r| r["operation"] == "POST /webhooks/rudderstack")
                .count()
                == 2
        })
    })
    .await;
}
