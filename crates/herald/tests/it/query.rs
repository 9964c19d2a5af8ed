//! `POST /api/v1/events/query`: every filter, ordering, offset and cursor
//! paging, and bad filters named.

use serde_json::{Value, json};

use herald_testkit::app::*;

async fn seeded() -> (TestApp, String) {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let events = json!([
        {"event_type": "checkout_started", "category": "business", "event_category": "order", "event_source": "frontend", "user_id": "u1",
         "timestamp": "2025-01-01T10:00:00Z", "object": {"order_id": "o-1", "session_id": "s-1", "sku": "W-1"},
         "context": {"environment": "staging", "service": "web"}, "data": {"note": "blue widget"}},
        {"event_type": "request_received", "category": "system", "timestamp": "2025-01-01T10:00:01Z",
         "correlation": {"trace_id": "t-1", "span_id": "sp-1", "correlation_id": "c-1"}, "object": {"request_id": "r-1", "order_id": "o-1"},
         "context": {"service": "api"}, "actor": {"service_name": "gateway"}},
        {"event_type": "db_error", "category": "system", "timestamp": "2025-01-01T10:00:02Z",
         "correlation": {"trace_id": "t-1"}, "outcome": {"status": "failure", "error_class": "Timeout"},
         "context": {"service": "api"}, "data": {"query": "select red widget"}},
        {"event_type": "deploy_completed", "category": "delivery", "timestamp": "2025-01-01T09:00:00Z", "event_source": "scheduled"},
        {"event_type": "permission_denied", "category": "security", "timestamp": "2025-01-01T11:00:00Z",
         "actor": {"user_id": "u2"}, "object": {"ticket_id": "T-9"}}
    ]);
    let res = app
        .post("/api/v1/events/batch", &t.admin_key, &events)
        .await;
    assert_eq!(res.status(), 201);
    (app, t.admin_key)
}

fn types(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn each_filter_narrows_the_result() {
    let (app, key) = seeded().await;
    let cases = [
        (
            json!({}),
            vec![
                "permission_denied",
                "db_error",
                "request_received",
                "checkout_started",
                "deploy_completed",
            ],
        ),
        (
            json!({"order": "asc", "limit": 2}),
            vec!["deploy_completed", "checkout_started"],
        ),
        (json!({"user_id": "u1"}), vec!["checkout_started"]),
        (json!({"event_type": "db_error"}), vec!["db_error"]),
        (
            json!({"event_type": ["db_error", "deploy_completed"]}),
            vec!["db_error", "deploy_completed"],
        ),
        (
            json!({"event_source": "scheduled"}),
            vec!["deploy_completed"],
        ),
        (json!({"event_category": "order"}), vec!["checkout_started"]),
        (json!({"category": "security"}), vec!["permission_denied"]),
        (
            json!({"categories": ["delivery", "security"]}),
            vec!["permission_denied", "deploy_completed"],
        ),
        (json!({"status": "failed"}), vec![]),
        (
            json!({"start_time": "2025-01-01T10:00:00Z", "end_time": "2025-01-01T10:00:01Z"}),
            vec!["request_received", "checkout_started"],
        ),
        (
            json!({"trace_id": "t-1"}),
            vec!["db_error", "request_received"],
        ),
        (json!({"span_id": "sp-1"}), vec!["request_received"]),
        (json!({"correlation_id": "c-1"}), vec!["request_received"]),
        (json!({"request_id": "r-1"}), vec!["request_received"]),
        (
            json!({"order_id": "o-1"}),
            vec!["request_received", "checkout_started"],
        ),
        (json!({"session_id": "s-1"}), vec!["checkout_started"]),
        (json!({"ticket_id": "T-9"}), vec!["permission_denied"]),
        (
            json!({"actor": {"user_id": "u2"}}),
            vec!["permission_denied"],
        ),
        (
            json!({"actor": {"service_name": "gateway"}}),
            vec!["request_received"],
        ),
        (json!({"object": {"sku": "W-1"}}), vec!["checkout_started"]),
        (json!({"outcome_status": "failure"}), vec!["db_error"]),
        (
            json!({"outcome": {"status": "failure", "error_class": "Timeout"}}),
            vec!["db_error"],
        ),
        (json!({"environment": "staging"}), vec!["checkout_started"]),
        (
            json!({"service": "api"}),
            vec!["db_error", "request_received"],
        ),
        (json!({"q": "widget"}), vec!["db_error", "checkout_started"]),
        (
            json!({"q": "red widget", "service": "api"}),
            vec!["db_error"],
        ),
    ];
    for (filter, want) in cases {
        let page = app.query(&key, &filter).await;
        assert_eq!(types(&page), want, "filter {filter}");
        if filter.get("limit").is_none() {
            assert_eq!(page["total"], want.len(), "total for {filter}");
        }
    }
}

#[tokio::test]
async fn cursor_paging_visits_every_event_once_and_offset_still_works() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let items: Vec<Value> = (0..45)
        .map(|i| json!({"event_type": "tick", "category": "system", "data": {"i": i}}))
        .collect();
    assert_eq!(
        app.post("/api/v1/events/batch", &t.admin_key, &Value::Array(items))
            .await
            .status(),
        201
    );
    let mut seen = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = app
            .query(&t.admin_key, &json!({"limit": 10, "cursor": cursor}))
            .await;
        assert_eq!(page["total"], 45);
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["data"]["i"].as_i64().unwrap()),
        );
        if page["has_more"] == false {
            assert!(page["next_cursor"].is_null());
            break;
        }
        cursor = page["next_cursor"].clone();
    }
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, (0..45).collect::<Vec<_>>());
    assert_eq!(
        app.query(&t.admin_key, &json!({"limit": 1})).await["total_relation"],
        "eq"
    );
    assert_eq!(
        app.query(&t.admin_key, &json!({"limit": 1, "track_total": true}))
            .await["total"],
        45
    );
    let page = app
        .query(&t.admin_key, &json!({"limit": 10, "offset": 40}))
        .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 5);
    assert_eq!(page["has_more"], false);
}

#[tokio::test]
async fn bad_filters_are_all_named() {
    let (app, key) = seeded().await;
    let res = app
        .post("/api/v1/events/query", &key, &json!({"usr_id": "x", "limit": 0, "category": "finance", "start_time": "soon", "order": "up", "cursor": "zzz", "track_total": "yes"}))
        .await;
    assert_eq!(res.status(), 400);
    let p: Value = res.json().await.unwrap();
    let mut fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "/category",
            "/cursor",
            "/limit",
            "/order",
            "/start_time",
            "/track_total",
            "/usr_id"
        ],
        "{p}"
    );
}

#[tokio::test]
async fn an_id_that_was_an_email_is_found_by_the_email_it_was() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (status, created) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "signup", "category": "business", "user_id": "Ada@Example.com",
                    "object": {"customer": "ada@example.com"}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let stored = created["actor"]["user_id"].as_str().unwrap();
    assert!(
        stored.starts_with("email_hash:"),
        "stored redacted: {stored}"
    );
    for filter in [
        json!({"user_id": "Ada@Example.com"}),
        json!({"object": {"customer": "ada@example.com"}}),
    ] {
        let page = app.query(&t.admin_key, &filter).await;
        assert_eq!(page["total"], 1, "{filter}");
    }
    let page = app
        .query(&t.admin_key, &json!({"user_id": "bob@example.com"}))
        .await;
    assert_eq!(page["total"], 0);
}
