//! Webhook subscriptions over HTTP on the real server, on both stores
//! (`<test>::sqlite`, `<test>::postgres`): create with and without a
//! secret (a generated one appears once), every bad field at once, type
//! patterns, paging, get/put/delete, another tenant's 404, scopes,
//! rotation, and the network guard on the callback URL.

use base64::Engine;
use herald_testkit::{Backend, TestApp, assert_problem, spawn_on};
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    a_subscription_without_a_secret_gets_one_shown_only_once,
    a_given_secret_is_kept_and_patterns_are_accepted,
    every_bad_field_is_named_at_once,
    listing_pages_and_shows_the_enabled_ones_unless_asked,
    put_replaces_the_definition_and_delete_removes_it,
    another_tenants_subscription_is_a_plain_404,
    scopes_decide_who_reads_and_who_changes,
    rotation_shows_a_new_secret_once_and_when_the_old_one_stops_signing,
    a_name_is_unique_per_tenant,
);

const SUBS: &str = "/api/v1/events/subscriptions";

/// A server that may send webhooks to the loopback receiver of a test.
async fn app(backend: Backend) -> TestApp {
    spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await
}

fn body(name: &str) -> Value {
    json!({ "subscriber_name": name, "callback_url": "http://127.0.0.1:9/hooks" })
}

async fn subscribe(app: &TestApp, key: &str, body: &Value) -> Value {
    let res = app.post(SUBS, key, body).await;
    let status = res.status();
    let out: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{out}");
    out
}

async fn delete(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

async fn a_subscription_without_a_secret_gets_one_shown_only_once(backend: Backend) {
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let created = subscribe(&app, &t.admin_key, &body("billing")).await;
    let id = created["subscription_id"].as_str().unwrap();
    assert!(id.starts_with("sub_"), "{created}");
    let secret = created["webhook_secret"].as_str().unwrap();
    let key = secret.strip_prefix("whsec_").expect("a whsec_ secret");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("base64");
    assert_eq!(bytes.len(), 32);
    // The defaults, as documented.
    assert_eq!(created["subscriber_type"], "webhook");
    assert_eq!(created["ordering"], "none");
    assert_eq!(created["enabled"], true);
    assert_eq!(
        created["retry_policy"],
        json!({"schedule": [5, 300, 1800, 7200, 18000, 36000, 36000]})
    );
    assert_eq!(created["created_at"], created["updated_at"]);

    // Another subscription gets another secret.
    let other = subscribe(&app, &t.admin_key, &body("audit")).await;
    assert_ne!(other["webhook_secret"], created["webhook_secret"]);

    // Never again: not on get, not in the listing.
    let got: Value = app
        .get(&format!("{SUBS}/{id}"), &t.admin_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["subscription_id"], id);
    assert!(got.get("webhook_secret").is_none(), "{got}");
    let listed = app.get(SUBS, &t.admin_key).await.text().await.unwrap();
    assert!(listed.contains(id), "{listed}");
    assert!(!listed.contains(key), "a secret was listed: {listed}");
}

async fn a_given_secret_is_kept_and_patterns_are_accepted(backend: Backend) {
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut b = body("orders");
    b["webhook_secret"] = json!(secret);
    b["event_types"] = json!(["order.*", "order.>", "payment.captured"]);
    b["event_sources"] = json!(["backend", "frontend"]);
    b["event_categories"] = json!(["business", "payment"]);
    b["retry_policy"] = json!({"schedule": [1, 2, 4]});
    b["filter"] = json!("event.data.amount > 100");
    b["ordering"] = json!("stream");
    b["rate_limit"] = json!(2.5);
    b["headers"] = json!({"X-Team": "billing"});
    b["enabled"] = json!(false);
    let created = subscribe(&app, &t.admin_key, &b).await;
    assert_eq!(created["webhook_secret"], secret);
    for field in [
        "event_types",
        "event_sources",
        "event_categories",
        "retry_policy",
        "filter",
        "ordering",
        "rate_limit",
        "enabled",
    ] {
        assert_eq!(created[field], b[field], "{field}");
    }
    assert_eq!(created["headers"], json!({"x-team": "billing"}));
}

async fn every_bad_field_is_named_at_once(backend: Backend) {
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let res = app
        .post(
            SUBS,
            &t.admin_key,
            &json!({
                "subscriber_type": "email",
                "event_types": ["order.*", "order.>.x"],
                "event_sources": ["moon"],
                "event_categories": ["weather"],
                "callback_url": "ftp://example.com/x",
                "webhook_secret": "not-a-secret",
                "retry_policy": {"schedule": [-1], "jitter": true},
                "filter": "",
                "ordering": "random",
                "rate_limit": -3,
                "headers": {"Transfer-Encoding": "chunked", "Webhook-Signature": "x"},
                "enabled": "yes",
            }),
        )
        .await;
    assert_problem(
        res,
        400,
        "Invalid input",
        &[
            "/callback_url",
            "/enabled",
            "/event_categories/0",
            "/event_sources/0",
            "/event_types/1",
            "/filter",
            "/headers/Transfer-Encoding",
            "/headers/Webhook-Signature",
            "/ordering",
            "/rate_limit",
            "/retry_policy/jitter",
            "/retry_policy/schedule/0",
            "/subscriber_name",
            "/subscriber_type",
            "/webhook_secret",
        ],
    )
    .await;
    // Nothing was stored.
    let listed: Value = app
        .get(&format!("{SUBS}?all=true"), &t.admin_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 0, "{listed}");
}

async fn listing_pages_and_shows_the_enabled_ones_unless_asked(backend: Backend) {
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut b = body(&format!("s{i}"));
        b["enabled"] = json!(i != 1);
        ids.push(subscribe(&app, &t.admin_key, &b).await["subscription_id"].clone());
    }
    let page = |q: String| {
        let app = &app;
        let key = t.admin_key.clone();
        async move {
            let res = app.get(&format!("{SUBS}{q}"), &key).await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    // Default: the enabled ones, two at a time, in creation order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".into(),
        };
        let p = page(q).await;
        let items = p["subscriptions"].as_array().unwrap();
        assert!(items.len() <= 2 && p["count"] == items.len());
        seen.extend(items.iter().map(|s| s["subscription_id"].clone()));
        assert_eq!(p["has_more"], p["next_cursor"].is_string());
        match p["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let enabled: Vec<Value> = [0, 2, 3, 4].iter().map(|i| ids[*i].clone()).collect();
    assert_eq!(seen, enabled);
    let disabled = page("?enabled=false".into()).await;
    assert_eq!(disabled["subscriptions"][0]["subscription_id"], ids[1]);
    assert_eq!(disabled["count"], 1);
    let all = page("?all=true".into()).await;
    let all_ids: Vec<Value> = all["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subscription_id"].clone())
        .collect();
    assert_eq!(all_ids, ids);
    assert_problem(
        app.get(
            &format!("{SUBS}?all=true&enabled=true&limit=0"),
            &t.admin_key,
        )
        .await,
        400,
        "Invalid input",
        &["/all", "/limit"],
    )
    .await;
}

async fn put_replaces_the_definition_and_delete_removes_it(backend: Backend) {
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let mut b = body("billing");
    b["filter"] = json!("event.data.amount > 1");
    let created = subscribe(&app, &t.admin_key, &b).await;
    let path = format!("{SUBS}/{}", created["subscription_id"].as_str().unwrap());

    // A replacement: fields left out take their defaults again.
    let mut replacement = body("billing-v2");
    replacement["event_types"] = json!(["invoice.>"]);
    let res = app.put(&path, &t.admin_key, &replacement).await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["subscriber_name"], "billing-v2");
    assert_eq!(updated["event_types"], json!(["invoice.>"]));
    assert_eq!(updated["filter"], Value::Null);
    assert_eq!(updated["created_at"], created["created_at"]);
    assert!(updated.get("webhook_secret").is_none());
    let got: Value = app.get(&path, &t.admin_key).await.json().await.unwrap();
    assert_eq!(got, updated);

    // An answer sent back as it is, is a valid replacement.
    assert_eq!(app.put(&path, &t.admin_key, &got).await.status(), 200);

    // The secret cannot be set by PUT.
    let mut with_secret = body("billing-v2");
    with_secret["webhook_secret"] = json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    assert_problem(
        app.put(&path, &t.admin_key, &with_secret).await,
        400,
        "Invalid input",
        &["/webhook_secret"],
    )
    .await;

    assert_eq!(delete(&app, &path, &t.admin_key).await.status(), 204);
    assert_eq!(app.get(&path, &t.admin_key).await.status(), 404);
    assert_eq!(delete(&app, &path, &t.admin_key).await.status(), 404);
    assert_eq!(
        app.put(&path, &t.admin_key, &replacement).await.status(),
        404
    );
}

async fn another_tenants_subscription_is_a_plain_404(backend: Backend) {
    let app = app(backend).await;
    let (a, b) = (app.tenant("acme").await, app.tenant("globex").await);
    let created = subscribe(&app, &a.admin_key, &body("billing")).await;
    let path = format!("{SUBS}/{}", created["subscription_id"].as_str().unwrap());
    let missing = format!("{SUBS}/sub_00000000000000000000000000000000");
    for p in [&path, &missing] {
        let theirs = app.get(p, &b.admin_key).await;
        let problem = assert_problem(theirs, 404, "Not found", &[]).await;
        assert!(!problem["detail"].as_str().unwrap().contains("acme"));
    }
    assert_eq!(
        app.put(&path, &b.admin_key, &body("mine")).await.status(),
        404
    );
    assert_eq!(delete(&app, &path, &b.admin_key).await.status(), 404);
    assert_eq!(
        app.post(&format!("{path}/secret/rotate"), &b.admin_key, &json!({}))
            .await
            .status(),
        404
    );
    let theirs: Value = app.get(SUBS, &b.admin_key).await.json().await.unwrap();
    assert_eq!(theirs["count"], 0);
    // Still there for its owner.
    assert_eq!(app.get(&path, &a.admin_key).await.status(), 200);
}

async fn scopes_decide_who_reads_and_who_changes(backend: Backend) {
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let read = app.key(&t, &["read"]).await;
    let ingest = app.key(&t, &["ingest"]).await;
    let created = subscribe(&app, &t.admin_key, &body("billing")).await;
    let path = format!("{SUBS}/{}", created["subscription_id"].as_str().unwrap());

    assert_eq!(app.get(SUBS, &read).await.status(), 200);
    assert_eq!(app.get(&path, &read).await.status(), 200);
    assert_eq!(app.post(SUBS, &read, &body("x")).await.status(), 403);
    assert_eq!(app.put(&path, &read, &body("x")).await.status(), 403);
    assert_eq!(delete(&app, &path, &read).await.status(), 403);
    assert_eq!(
        app.post(&format!("{path}/secret/rotate"), &read, &json!({}))
            .await
            .status(),
        403
    );
    assert_eq!(app.get(SUBS, &ingest).await.status(), 403);
    assert_eq!(app.get(&path, &ingest).await.status(), 403);
    assert_eq!(app.post(SUBS, &ingest, &body("x")).await.status(), 403);
    // Nothing changed.
    let got: Value = app.get(&path, &read).await.json().await.unwrap();
    assert_eq!(got["subscriber_name"], "billing");
}

async fn rotation_shows_a_new_secret_once_and_when_the_old_one_stops_signing(backend: Backend) {
    let app = spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
        c.delivery_secret_overlap_secs = 3600;
    })
    .await;
    let t = app.tenant("acme").await;
    let created = subscribe(&app, &t.admin_key, &body("billing")).await;
    let old = created["webhook_secret"].as_str().unwrap().to_string();
    assert!(created.get("previous_secret_valid_until").is_none());
    let path = format!("{SUBS}/{}", created["subscription_id"].as_str().unwrap());
    let res = app
        .post(&format!("{path}/secret/rotate"), &t.admin_key, &json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let rotated: Value = res.json().await.unwrap();
    let new = rotated["webhook_secret"].as_str().unwrap();
    assert!(new.starts_with("whsec_") && new != old);
    let text = rotated.to_string();
    assert!(!text.contains(&old), "the old secret is never shown again");
    let updated = time::OffsetDateTime::parse(
        rotated["updated_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let until = time::OffsetDateTime::parse(
        rotated["previous_secret_valid_until"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(until - updated, time::Duration::hours(1));

    let got = app.get(&path, &t.admin_key).await.text().await.unwrap();
    assert!(!got.contains(new) && !got.contains(&old), "{got}");
    let got: Value = serde_json::from_str(&got).unwrap();
    assert_eq!(
        got["previous_secret_valid_until"],
        rotated["previous_secret_valid_until"]
    );
}

async fn a_name_is_unique_per_tenant(backend: Backend) {
    let app = app(backend).await;
    let (a, b) = (app.tenant("acme").await, app.tenant("globex").await);
    subscribe(&app, &a.admin_key, &body("billing")).await;
    let second = subscribe(&app, &a.admin_key, &body("audit")).await;
    let conflict = assert_problem(
        app.post(SUBS, &a.admin_key, &body("billing")).await,
        409,
        "Conflict",
        &[],
    )
    .await;
    assert!(
        conflict["detail"].as_str().unwrap().contains("`billing`"),
        "{conflict}"
    );
    let path = format!("{SUBS}/{}", second["subscription_id"].as_str().unwrap());
    assert_eq!(
        app.put(&path, &a.admin_key, &body("billing"))
            .await
            .status(),
        409
    );
    subscribe(&app, &b.admin_key, &body("billing")).await;
}

#[tokio::test]
async fn a_loopback_callback_is_refused_naming_the_setting_unless_allowed() {
    let app = herald_testkit::spawn_app().await;
    let t = app.tenant("acme").await;
    let problem = assert_problem(
        app.post(SUBS, &t.admin_key, &body("local")).await,
        400,
        "Invalid input",
        &["/callback_url"],
    )
    .await;
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("HERALD_DELIVERY_ALLOWED_NETWORKS")
            && message.contains("delivery_allowed_networks"),
        "{message}"
    );
    // `localhost` resolves to loopback: refused the same way.
    let named = json!({"subscriber_name": "named", "callback_url": "http://localhost:9/h"});
    assert_problem(
        app.post(SUBS, &t.admin_key, &named).await,
        400,
        "Invalid input",
        &["/callback_url"],
    )
    .await;
    // With the range allowed, the same body is stored.
    let allowed = spawn_on(Backend::Sqlite, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8,::1/128".into();
    })
    .await;
    let t = allowed.tenant("acme").await;
    subscribe(&allowed, &t.admin_key, &body("local")).await;
    subscribe(&allowed, &t.admin_key, &named).await;
}
