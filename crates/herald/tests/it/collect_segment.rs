//! The Segment HTTP Tracking API drop-in over real HTTP, with the bodies
//! the official SDKs send (analytics-python's `request.post` and
//! `client.track`; analytics-node's batch), RudderStack's import and beacon
//! paths, and Segment's answer for each failure class.

use std::io::Write;

use herald_testkit::Backend;
use herald_testkit::app::*;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

herald_testkit::on_each_backend!(
    the_python_sdk_batch_is_stored_mapped_deduplicated_and_clock_corrected,
    each_failure_class_answers_as_segment_does,
);

async fn write_key(app: &TestApp, t: &Tenant) -> String {
    app.key(t, &["collect"]).await
}

fn now_minus(secs: i64) -> String {
    (OffsetDateTime::now_utc() - time::Duration::seconds(secs))
        .format(&Rfc3339)
        .unwrap()
}

/// What analytics-python posts to `/v1/batch`: `{"batch": [...], "sentAt"}`,
/// each message as `client.track` builds it (library in the context, a
/// uuid4 `messageId`), HTTP Basic `writeKey:`, gzip when enabled.
fn python_batch(message_id: &str, device_time: &str, sent_at: &str) -> Value {
    json!({
        "batch": [{
            "properties": {"revenue": 39.95, "currency": "EUR"},
            "timestamp": device_time,
            "integrations": {},
            "context": {"library": {"name": "analytics-python", "version": "2.3.2"}, "ip": "198.51.100.23"},
            "userId": "u-1",
            "anonymousId": null,
            "event": "Order Completed",
            "type": "track",
            "messageId": message_id
        }],
        "sentAt": sent_at
    })
}

fn gzip(body: &Value) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(body.to_string().as_bytes()).unwrap();
    e.finish().unwrap()
}

async fn events_of(app: &TestApp, t: &Tenant, event_type: &str) -> Vec<Value> {
    app.query(&t.admin_key, &json!({"event_type": event_type}))
        .await["events"]
        .as_array()
        .unwrap()
        .clone()
}

async fn the_python_sdk_batch_is_stored_mapped_deduplicated_and_clock_corrected(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("Acme").await;
    let key = write_key(&app, &t).await;
    // The device's clock is an hour behind: it stamped the event, then sent
    // it 5 s later by its own clock.
    let device = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let (ts, sent) = (
        device.format(&Rfc3339).unwrap(),
        (device + time::Duration::seconds(5))
            .format(&Rfc3339)
            .unwrap(),
    );
    let body = python_batch("6f0c2a8e-4b1e-4c3a-9d4f-1e2b3c4d5e6f", &ts, &sent);
    let send = || {
        app.client
            .post(app.url("/v1/batch"))
            .basic_auth(&key, Some(""))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("user-agent", "analytics-python/2.3.2")
            .body(gzip(&body))
            .send()
    };
    let before = OffsetDateTime::now_utc();
    let res = send().await.unwrap();
    let after = OffsetDateTime::now_utc();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"success": true, "accepted": 1, "rejected": 0})
    );
    let stored = events_of(&app, &t, "Order Completed").await;
    assert_eq!(stored.len(), 1);
    let e = &stored[0];
    assert_eq!(e["event_category"], "user_action");
    assert_eq!(e["event_source"], "backend");
    assert_eq!(e["actor"]["user_id"], "u-1");
    assert_eq!(e["idempotency_key"], "6f0c2a8e-4b1e-4c3a-9d4f-1e2b3c4d5e6f");
    assert_eq!(
        e["data"]["properties"],
        json!({"revenue": 39.95, "currency": "EUR"})
    );
    assert_eq!(e["context"]["library"]["name"], "analytics-python");
    // The reported end-user address, truncated like a captured one.
    assert_eq!(e["context"]["ip"], "198.51.100.0");
    assert_eq!(e["metadata"]["segment"]["integrations"], json!({}));
    assert_eq!(e["metadata"]["segment"]["timestamp"], ts);
    assert_eq!(e["metadata"]["segment"]["sentAt"], sent);
    assert!(e["metadata"]["segment"]["receivedAt"].is_string());
    // receivedAt − (sentAt − timestamp): 5 s before it arrived, not an hour ago.
    let at = OffsetDateTime::parse(e["timestamp"].as_str().unwrap(), &Rfc3339).unwrap();
    let five = time::Duration::seconds(5);
    assert!(
        at >= before - five - time::Duration::milliseconds(1) && at <= after - five,
        "{at} not 5 s before [{before}, {after}]"
    );

    // A retry (the SDK reuses messageId) stores nothing new.
    let res = send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(events_of(&app, &t, "Order Completed").await.len(), 1);

    // analytics-node's batch: a wrapper `timestamp`, `_metadata` per message.
    let node = json!({
        "batch": [
            {"type": "identify", "userId": "u-2", "traits": {"plan": "pro", "email": "ada@example.com"},
             "context": {"library": {"name": "analytics-node", "version": "6.2.0"}},
             "_metadata": {"nodeVersion": "20.11.0"}, "timestamp": now_minus(1), "messageId": "node-1"},
            {"type": "page", "userId": "u-2", "name": "Pricing", "properties": {"path": "/pricing"}, "messageId": "node-2"},
            {"type": "group", "userId": "u-2", "groupId": "g-9", "traits": {"name": "Initech"}, "messageId": "node-3"},
            {"type": "alias", "userId": "u-2", "previousId": "anon-7", "messageId": "node-4"},
            {"type": "screen", "userId": "u-2", "name": "Home", "messageId": "node-5"}
        ],
        "timestamp": now_minus(0),
        "sentAt": now_minus(0)
    });
    let res = app
        .client
        .post(app.url("/v1/batch"))
        .basic_auth(&key, Some(""))
        .json(&node)
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["accepted"], 5);
    let identify = &events_of(&app, &t, "user_identified").await[0];
    assert_eq!(identify["event_category"], "user_lifecycle");
    assert_eq!(identify["data"]["traits"]["plan"], "pro");
    // Redaction runs as on every path: the email is hashed.
    assert!(
        !identify.to_string().contains("ada@example.com"),
        "{identify}"
    );
    assert_eq!(
        identify["metadata"]["unknown_fields"]["_metadata"]["nodeVersion"],
        "20.11.0"
    );
    assert!(identify["metadata"]["unknown_fields"]["batch"]["timestamp"].is_string());
    let page = &events_of(&app, &t, "page_viewed").await[0];
    assert_eq!(page["event_category"], "page_view");
    assert_eq!(page["data"]["name"], "Pricing");
    let group = &events_of(&app, &t, "group_identified").await[0];
    assert_eq!(group["data"]["group_id"], "g-9");
    let alias = &events_of(&app, &t, "user_aliased").await[0];
    assert_eq!(alias["data"]["previous_id"], "anon-7");
    assert_eq!(events_of(&app, &t, "screen_viewed").await.len(), 1);
}

async fn each_failure_class_answers_as_segment_does(backend: Backend) {
    let app = spawn_on(backend, |c| c.segment_max_message_bytes = 2048).await;
    let t = app.tenant("Acme").await;
    let key = write_key(&app, &t).await;
    let segment_error = |res: reqwest::Response, status: u16| async move {
        assert_eq!(res.status(), status);
        assert_eq!(res.headers()["content-type"], "application/json");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{body}"
        );
        body
    };
    let track = json!({"type": "track", "event": "Signed Up", "userId": "u-1"});
    // No key, an unknown key: 401.
    let res = app
        .client
        .post(app.url("/v1/track"))
        .json(&track)
        .send()
        .await
        .unwrap();
    segment_error(res, 401).await;
    let res = app
        .client
        .post(app.url("/v1/track"))
        .basic_auth("hk_nope", Some(""))
        .json(&track)
        .send()
        .await
        .unwrap();
    segment_error(res, 401).await;
    // Not JSON; too large: 400.
    let res = app
        .client
        .post(app.url("/v1/track"))
        .basic_auth(&key, Some(""))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(segment_error(res, 400).await["code"], "invalid_json");
    let big = json!({"type": "track", "event": "x", "userId": "u", "properties": {"blob": "a".repeat(3000)}});
    let res = app
        .client
        .post(app.url("/v1/track"))
        .basic_auth(&key, Some(""))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(segment_error(res, 400).await["code"], "request_too_large");
    // A bad message is not a 4xx: 200, rejected and counted, the rest stored.
    let res = app
        .client
        .post(app.url("/v1/batch"))
        .basic_auth(&key, Some(""))
        .json(&json!({"batch": [
            {"type": "track", "userId": "u-1", "messageId": "m-1"},
            big,
            {"type": "track", "event": "Kept", "userId": "u-1", "messageId": "m-2"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"success": true, "accepted": 1, "rejected": 2})
    );
    assert_eq!(events_of(&app, &t, "Kept").await.len(), 1);
    // Each rejected message is recorded for the tenant, with its reason.
    let records = events_of(&app, &t, "herald.collect.rejected").await;
    assert_eq!(records.len(), 2, "{records:?}");
    let unnamed = records
        .iter()
        .find(|r| r["data"]["index"] == 0)
        .expect("the message without a name is recorded");
    assert_eq!(unnamed["category"], "system");
    assert_eq!(unnamed["data"]["format"], "segment");
    assert_eq!(unnamed["data"]["message"]["messageId"], "m-1");
    assert!(
        unnamed["data"]["reason"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "/event_type"),
        "{unnamed}"
    );
    let large = records.iter().find(|r| r["data"]["index"] == 1).unwrap();
    assert!(large["data"]["message"].is_null());
    assert!(
        large["data"]["reason"]["detail"]
            .as_str()
            .unwrap()
            .contains("limit is 2048")
    );
    // A key without the collect scope may not collect.
    let read = app.key(&t, &["read"]).await;
    let res = app
        .client
        .post(app.url("/v1/track"))
        .basic_auth(&read, Some(""))
        .json(&track)
        .send()
        .await
        .unwrap();
    segment_error(res, 403).await;
}

#[tokio::test]
async fn short_paths_rudderstack_paths_and_body_write_keys() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let key = write_key(&app, &t).await;
    // analytics.js: short path, text/plain, the key in the body.
    let res = app
        .client
        .post(app.url("/v1/t"))
        .header("content-type", "text/plain")
        .body(json!({"type": "track", "event": "Clicked", "anonymousId": "a-1", "writeKey": key, "channel": "client",
                     "originalTimestamp": now_minus(2), "sentAt": now_minus(1)}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let e = &events_of(&app, &t, "Clicked").await[0];
    assert_eq!(e["event_source"], "frontend");
    assert_eq!(e["actor"]["anonymous_id"], "a-1");
    assert_eq!(e["metadata"]["unknown_fields"]["channel"], "client");
    for (path, name) in [
        ("/v1/import", "Imported"),
        ("/beacon/v1/batch", "Beaconed"),
        ("/v1/b", "Short batch"),
    ] {
        let res = app
            .client
            .post(app.url(&format!("{path}?writeKey={key}")))
            .json(&json!({"batch": [{"type": "track", "event": name, "userId": "u"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(events_of(&app, &t, name).await.len(), 1, "{path}");
    }
    for (path, event_type) in [
        ("/v1/identify", "user_identified"),
        ("/v1/i", "user_identified"),
        ("/v1/page", "page_viewed"),
        ("/v1/p", "page_viewed"),
        ("/v1/screen", "screen_viewed"),
        ("/v1/s", "screen_viewed"),
        ("/v1/group", "group_identified"),
        ("/v1/g", "group_identified"),
        ("/v1/alias", "user_aliased"),
        ("/v1/a", "user_aliased"),
    ] {
        // A message without `type` takes its route's.
        let res = app
            .client
            .post(app.url(path))
            .basic_auth(&key, Some(""))
            .json(&json!({"userId": "u", "messageId": path}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let stored = events_of(&app, &t, event_type).await;
        assert!(
            stored.iter().any(|e| e["idempotency_key"] == path),
            "{path} → {event_type}"
        );
    }
}

#[tokio::test]
async fn a_rate_limited_sdk_is_told_to_retry_in_segment_s_shape() {
    let app = spawn_with(|c| c.collect_key_rate = 2).await;
    let t = app.tenant("Acme").await;
    let key = write_key(&app, &t).await;
    // The burst is two requests; the SDK's next ones are refused with 429
    // and Retry-After (analytics-python and rudder-sdk retry it).
    for i in 0..20 {
        let res = app
            .client
            .post(app.url("/v1/track"))
            .basic_auth(&key, Some(""))
            .json(&json!({"event": "e", "userId": "u"}))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            assert!(i >= 2, "refused after {i}");
            assert!(res.headers().contains_key("retry-after"));
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["code"], "rate_limited");
            assert!(body["message"].is_string());
            return;
        }
        assert_eq!(res.status(), 200);
    }
    panic!("never rate limited");
}

#[tokio::test]
async fn the_browser_library_s_preflight_is_judged_by_the_key() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let res = app
        .post(
            &format!("/api/v1/admin/tenants/{}/keys", t.tenant_id),
            ROOT_KEY,
            &json!({"name": "site", "scopes": ["collect"], "allowed_origins": ["https://shop.example"]}),
        )
        .await;
    let key = res.json::<Value>().await.unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_string();
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                app.url(&format!("/v1/t?writeKey={key}")),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let res = preflight("https://shop.example").await.unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://shop.example"
    );
    let res = preflight("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    // The request itself from a foreign origin: 403 in Segment's shape.
    let res = app
        .client
        .post(app.url(&format!("/v1/t?writeKey={key}")))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(json!({"event": "e", "anonymousId": "a"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "forbidden");
}
