//! The dead-letter queue end to end on the real server, on both stores,
//! with a real receiver on 127.0.0.1: a delivery the endpoint keeps
//! refusing dies, the queue shows it with its event, target, attempts and
//! last error; a redrive sends the same delivery again (same `webhook-id`,
//! valid signature) with its attempts numbered on; discard, recover,
//! filters, paging, tenancy and bad input.

use std::time::Duration;

use herald_core::Timestamp;
use herald_testkit::problem::assert_problem;
use herald_testkit::receiver::{Received, WebhookReceiver};
use herald_testkit::{Backend, TestApp, spawn_on};
use herald_workers::delivery::signature::WebhookSecret;
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    a_dead_letter_is_shown_then_redriven_as_the_same_signed_delivery,
    the_queue_filters_pages_discards_recovers_and_stays_within_its_tenant,
);

const WAIT: Duration = Duration::from_secs(15);

async fn app(backend: Backend) -> TestApp {
    spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await
}

/// A subscription that gives up after the first failed attempt; its id
/// and secret.
async fn subscribe(
    app: &TestApp,
    key: &str,
    name: &str,
    types: &[&str],
    receiver: &WebhookReceiver,
) -> (String, WebhookSecret) {
    let res = app
        .post(
            "/api/v1/events/subscriptions",
            key,
            &json!({
                "subscriber_name": name,
                "callback_url": format!("{}/{name}", receiver.url),
                "event_types": types,
                "retry_policy": {"schedule": []},
            }),
        )
        .await;
    let out: Value = res.json().await.unwrap();
    let id = out["subscription_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    let secret = WebhookSecret::parse(out["webhook_secret"].as_str().unwrap()).unwrap();
    (id.to_string(), secret)
}

async fn create(app: &TestApp, key: &str, event_type: &str) -> String {
    let (status, out) = app
        .create(
            key,
            &json!({"event_type": event_type, "category": "business", "data": {"n": 1}}),
        )
        .await;
    assert!(status == 201 || status == 202, "{status} {out}");
    out["event_id"].as_str().unwrap().to_string()
}

async fn get_json(app: &TestApp, path: &str, key: &str) -> Value {
    let res = app.get(path, key).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

async fn delete(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

/// The dead letters `GET /api/v1/dlq{query}` lists, once there are `n`.
async fn dead_letters(app: &TestApp, key: &str, query: &str, n: usize) -> Vec<Value> {
    herald_testkit::wait::wait_for(&format!("{n} dead letters at {query:?}"), WAIT, || async {
        let page = get_json(app, &format!("/api/v1/dlq{query}"), key).await;
        let items = page["dead_letters"].as_array().cloned().unwrap_or_default();
        if items.len() == n {
            Ok(items)
        } else {
            Err(page.to_string())
        }
    })
    .await
}

fn ids(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|d| d["delivery_id"].as_str().unwrap())
        .collect()
}

async fn a_dead_letter_is_shown_then_redriven_as_the_same_signed_delivery(backend: Backend) {
    let mut receiver = WebhookReceiver::start().await;
    receiver.respond_with(500);
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let (sub, secret) = subscribe(&app, &t.admin_key, "orders", &["order.*"], &receiver).await;
    let event_id = create(&app, &t.admin_key, "order.created").await;

    let refused = receiver.next("the first attempt", WAIT).await;
    let webhook_id = refused.header("webhook-id").unwrap().to_string();
    let dead = dead_letters(&app, &t.admin_key, "", 1).await.remove(0);
    assert_eq!(dead["state"], "dead", "{dead}");
    assert_eq!(dead["webhook_id"], webhook_id.as_str());
    assert_eq!(dead["event_type"], "order.created");
    assert_eq!(dead["event"]["event_id"], event_id.as_str());
    assert_eq!(dead["event"]["data"], json!({"n": 1}));
    assert_eq!(dead["subscription"]["subscription_id"], sub.as_str());
    assert_eq!(dead["subscription"]["subscriber_name"], "orders");
    assert_eq!(dead["next_attempt_at"], Value::Null);
    assert_eq!(dead["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(dead["last_error"]["attempt"], 1);
    assert_eq!(dead["last_error"]["status_code"], 500);
    assert_eq!(dead["last_error"]["error_class"], "http_5xx");
    assert_eq!(dead["last_error_class"], "http_5xx");
    assert!(dead["died_at"].is_string(), "{dead}");

    // The endpoint recovers; the redrive sends the same delivery again.
    receiver.respond_with(200);
    let id = dead["delivery_id"].as_str().unwrap();
    let res = app
        .post("/api/v1/dlq/redrive", &t.admin_key, &json!({"ids": [id]}))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"redriven": 1}));
    let again = receiver.next("the redriven delivery", WAIT).await;
    assert_eq!(again.header("webhook-id"), Some(webhook_id.as_str()));
    assert_eq!(
        verified(&again, &secret)["data"]["event_id"],
        event_id.as_str()
    );

    // Both listings show the delivery delivered with both attempts, numbered on.
    let delivered = |body: Value| {
        let d = body["deliveries"][0].clone();
        (d["state"] == "delivered")
            .then_some(d)
            .ok_or(body.to_string())
    };
    let by_sub = format!("/api/v1/events/subscriptions/{sub}/deliveries");
    let d = herald_testkit::wait::wait_for("the delivery delivered", WAIT, || async {
        delivered(get_json(&app, &by_sub, &t.admin_key).await)
    })
    .await;
    let attempts: Vec<(i64, i64)> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["attempt"].as_i64().unwrap(),
                a["status_code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, vec![(1, 500), (2, 200)], "{d}");
    assert_eq!(d["webhook_id"], webhook_id.as_str());
    assert_eq!(d["attempts"][0]["error_class"], "http_5xx");
    assert_eq!(d["attempts"][1]["error_class"], Value::Null);
    let of_event = get_json(
        &app,
        &format!("/api/v1/events/{event_id}/deliveries"),
        &t.admin_key,
    )
    .await;
    assert_eq!(of_event["deliveries"], json!([d]), "{of_event}");
    assert!(
        get_json(&app, "/api/v1/dlq", &t.admin_key).await["dead_letters"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The redrive is in the audit trail.
    app.eventually("the redrive audited", || async {
        let audit = get_json(
            &app,
            "/api/v1/audit?operation=POST%20/api/v1/dlq/redrive",
            &t.admin_key,
        )
        .await;
        audit["records"].as_array().is_some_and(|r| {
            r.iter().any(|r| {
                r["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("redrove 1"))
            })
        })
    })
    .await;
    assert!(receiver.try_next().is_none(), "nothing else was sent");
}

async fn the_queue_filters_pages_discards_recovers_and_stays_within_its_tenant(backend: Backend) {
    let mut receiver = WebhookReceiver::start().await;
    receiver.respond_with(500);
    let app = app(backend).await;
    let (t, other) = (app.tenant("acme").await, app.tenant("globex").await);
    let (orders, _) = subscribe(&app, &t.admin_key, "orders", &["order.*"], &receiver).await;
    let (payments, _) = subscribe(&app, &t.admin_key, "payments", &["payment.*"], &receiver).await;
    for _ in 0..3 {
        create(&app, &t.admin_key, "order.created").await;
    }
    create(&app, &t.admin_key, "payment.captured").await;
    let all = dead_letters(&app, &t.admin_key, "", 4).await;

    // Filters, each on its own and together.
    let q = |s: &str| format!("?{s}");
    assert_eq!(
        dead_letters(
            &app,
            &t.admin_key,
            &q(&format!("subscription_id={orders}")),
            3
        )
        .await
        .len(),
        3
    );
    let paid = dead_letters(&app, &t.admin_key, &q("event_type=payment.captured"), 1).await;
    assert_eq!(paid[0]["subscription_id"], payments.as_str());
    dead_letters(&app, &t.admin_key, &q("error_class=http_5xx"), 4).await;
    dead_letters(&app, &t.admin_key, &q("error_class=timeout"), 0).await;
    dead_letters(
        &app,
        &t.admin_key,
        &q(&format!(
            "subscription_id={payments}&event_type=order.created"
        )),
        0,
    )
    .await;
    dead_letters(&app, &t.admin_key, &q("start_time=2999-01-01T00:00:00Z"), 0).await;
    dead_letters(&app, &t.admin_key, &q("end_time=2999-01-01T00:00:00Z"), 4).await;

    // Pages of three, in creation order.
    let first = get_json(&app, "/api/v1/dlq?limit=3", &t.admin_key).await;
    assert_eq!(first["has_more"], true);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = get_json(
        &app,
        &format!("/api/v1/dlq?limit=3&cursor={cursor}"),
        &t.admin_key,
    )
    .await;
    assert_eq!(second["has_more"], false);
    let paged: Vec<Value> = [&first, &second]
        .iter()
        .flat_map(|p| p["dead_letters"].as_array().unwrap().clone())
        .collect();
    assert_eq!(ids(&paged), ids(&all));

    // Another tenant sees none of it and cannot touch it.
    let victim = all[0]["delivery_id"].as_str().unwrap();
    dead_letters(&app, &other.admin_key, "", 0).await;
    assert_eq!(
        delete(&app, &format!("/api/v1/dlq/{victim}"), &other.admin_key)
            .await
            .status(),
        404
    );
    let res = app
        .post(
            "/api/v1/dlq/redrive",
            &other.admin_key,
            &json!({"ids": [victim]}),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"redriven": 0}));
    let res = app
        .post(
            &format!("/api/v1/events/subscriptions/{orders}/recover"),
            &other.admin_key,
            &json!({"since": "2000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(res.status(), 404);

    // Bad input names every bad field.
    assert_problem(
        app.get(
            "/api/v1/dlq?limit=0&start_time=yesterday&colour=red&cursor=x",
            &t.admin_key,
        )
        .await,
        400,
        "Invalid input",
        &["/colour", "/cursor", "/limit", "/start_time"],
    )
    .await;
    let body = assert_problem(
        app.post("/api/v1/dlq/redrive", &t.admin_key, &json!({}))
            .await,
        400,
        "Invalid input",
        &[""],
    )
    .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("give `ids`"),
        "{body}"
    );
    assert_problem(
        app.post(
            "/api/v1/dlq/redrive",
            &t.admin_key,
            &json!({"ids": "dlv_1", "end_time": "soon"}),
        )
        .await,
        400,
        "Invalid input",
        &["", "/end_time", "/ids"],
    )
    .await;
    assert_problem(
        app.post(
            &format!("/api/v1/events/subscriptions/{orders}/recover"),
            &t.admin_key,
            &json!({"until": "2000-01-01T00:00:00Z", "from": 1}),
        )
        .await,
        400,
        "Invalid input",
        &["/from", "/since"],
    )
    .await;
    let read_only = app.key(&t, &["read"]).await;
    assert_eq!(
        app.post("/api/v1/dlq/redrive", &read_only, &json!({"ids": [victim]}))
            .await
            .status(),
        403
    );

    // Discard: gone, audited, and a second discard finds nothing.
    assert_eq!(
        delete(&app, &format!("/api/v1/dlq/{victim}"), &t.admin_key)
            .await
            .status(),
        204
    );
    assert_eq!(
        delete(&app, &format!("/api/v1/dlq/{victim}"), &t.admin_key)
            .await
            .status(),
        404
    );
    let left = dead_letters(&app, &t.admin_key, "", 3).await;
    assert!(!ids(&left).contains(&victim));
    app.eventually("the discard audited", || async {
        let audit = get_json(&app, "/api/v1/audit?limit=1000", &t.admin_key).await;
        audit["records"].as_array().is_some_and(|r| {
            r.iter().any(|r| {
                r["status_code"] == 204
                    && r["detail"].as_str() == Some(&format!("discarded dead letter {victim}"))
            })
        })
    })
    .await;

    // Recover: only the orders deliveries that died in the window, which
    // starts at the last of them to die; the others stay dead.
    let orders_left: Vec<&Value> = left
        .iter()
        .filter(|d| d["subscription_id"] == orders.as_str())
        .collect();
    let died = |d: &Value| {
        Timestamp::parse(d["died_at"].as_str().unwrap())
            .unwrap()
            .unix_nanos()
    };
    let since = orders_left.iter().map(|d| died(d)).max().unwrap();
    let (in_window, stay): (Vec<&Value>, Vec<&Value>) = left
        .iter()
        .partition(|d| d["subscription_id"] == orders.as_str() && died(d) >= since);
    let since_text = orders_left.iter().find(|d| died(d) == since).unwrap()["died_at"].clone();
    receiver.respond_with(200);
    // The refused attempts so far; the recovered ones come after them.
    while receiver.try_next().is_some() {}
    let res = app
        .post(
            &format!("/api/v1/events/subscriptions/{orders}/recover"),
            &t.admin_key,
            &json!({"since": since_text}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["recovered"], in_window.len(), "{out}");
    let mut sent = Vec::new();
    for d in &in_window {
        let r = receiver
            .next(&format!("recovered {}", d["delivery_id"]), WAIT)
            .await;
        sent.push(r.header("webhook-id").unwrap().to_string());
    }
    let mut want: Vec<String> = in_window
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap().to_string())
        .collect();
    sent.sort();
    want.sort();
    assert_eq!(sent, want, "the same deliveries, by webhook-id");
    let stayed = dead_letters(&app, &t.admin_key, "", stay.len()).await;
    assert_eq!(
        ids(&stayed),
        stay.iter()
            .map(|d| d["delivery_id"].as_str().unwrap())
            .collect::<Vec<_>>()
    );
}

/// The whole webhook body, after the signature checks of
/// [`crate::delivery::verified`] (Herald's verifier and the official
/// Standard Webhooks library).
fn verified(r: &Received, secret: &WebhookSecret) -> Value {
    crate::delivery::verified(r, secret);
    r.json()
}
