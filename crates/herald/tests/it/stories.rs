//! Stories over HTTP on both stores: "why did order 123 fail?" found whole
//! from the order id (checkout → request → db error → the deploy an hour
//! earlier) with its depths, linking keys, time order, categories and
//! evidence; the depth and size limits respected and reported; a hot key
//! cut at the limit and named; identity keys listed, not walked, unless
//! asked; tenant isolation; every bad parameter named; an event's story;
//! and a property: over random event sets, the story is the breadth-first
//! closure of shared keys computed independently here.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

use herald_testkit::problem::assert_problem;
use herald_testkit::{Backend, Tenant, TestApp, spawn_on};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    why_did_order_123_fail_is_found_whole_from_the_order_id,
    the_depth_and_size_limits_are_respected_and_reported,
    a_hot_key_is_cut_at_the_limit_and_named,
    identity_keys_are_walked_only_when_asked,
    stories_never_cross_tenants,
    bad_keys_and_parameters_are_named_all_at_once,
    an_event_story_starts_from_the_event_keys,
    the_story_is_the_breadth_first_closure_of_shared_keys,
);

async fn setup(backend: Backend) -> (TestApp, Tenant) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    (app, t)
}

async fn create(app: &TestApp, key: &str, body: Value) -> String {
    let (status, out) = app.create(key, &body).await;
    assert_eq!(status, 201, "{out}");
    out["event_id"].as_str().unwrap().to_string()
}

async fn get_json(app: &TestApp, key: &str, path: &str) -> (u16, Value) {
    let res = app.get(path, key).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn story(app: &TestApp, key: &str, path: &str) -> Value {
    let (status, body) = get_json(app, key, path).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// The event ids of the timeline, in its order.
fn timeline_ids(s: &Value) -> Vec<String> {
    s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn entry<'a>(s: &'a Value, id: &str) -> &'a Value {
    s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == id)
        .unwrap_or_else(|| panic!("{id} is not in the story: {s:#}"))
}

fn kv(key: &str, value: &str) -> Value {
    json!({"key": key, "value": value})
}

/// The failed order's events, each sent with its own keys, plus noise.
struct Order123 {
    deploy: String,
    checkout: String,
    request: String,
    db_error: String,
    failed: String,
    /// Another order by the same user.
    other_order: String,
}

async fn order_123(app: &TestApp, key: &str) -> Order123 {
    // Sent out of time order: the deploy, an hour earlier, comes last.
    let checkout = create(app, key, json!({
        "event_type": "checkout_started", "category": "business", "timestamp": "2026-12-01T10:00:00Z",
        "user_id": "u-1", "object": {"order_id": "123", "session_id": "s-1"},
    }))
    .await;
    let request = create(app, key, json!({
        "event_type": "request_received", "category": "system", "timestamp": "2026-12-01T10:00:01Z",
        "object": {"order_id": "123", "request_id": "req-9"}, "context": {"service": "api"},
    }))
    .await;
    let db_error = create(app, key, json!({
        "event_type": "db_error", "category": "system", "timestamp": "2026-12-01T10:00:02Z",
        "object": {"request_id": "req-9"},
        "correlation": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "correlation_id": "release-77"},
        "outcome": {"status": "failure", "error_class": "QueryError", "message": "column total does not exist"},
        "evidence": {"trace_url": "https://traces.example/4bf92f", "log_references": ["logs://db/1"]},
    }))
    .await;
    let failed = create(app, key, json!({
        "event_type": "order_failed", "category": "business", "timestamp": "2026-12-01T10:00:03Z",
        "object": {"order_id": "123"}, "outcome": {"status": "failure"},
    }))
    .await;
    let other_order = create(app, key, json!({
        "event_type": "checkout_started", "category": "business", "timestamp": "2026-12-01T09:00:00Z",
        "user_id": "u-1", "object": {"order_id": "99"},
    }))
    .await;
    create(app, key, json!({
        "event_type": "deploy_completed", "category": "delivery", "timestamp": "2026-11-30T10:00:00Z",
        "correlation": {"correlation_id": "release-76"},
    }))
    .await;
    let deploy = create(app, key, json!({
        "event_type": "deploy_completed", "category": "delivery", "timestamp": "2026-12-01T09:00:02Z",
        "correlation": {"correlation_id": "release-77"},
        "evidence": {"github": {"commit_sha": "abc", "pr": "42", "repository": "acme/shop"}},
    }))
    .await;
    Order123 {
        deploy,
        checkout,
        request,
        db_error,
        failed,
        other_order,
    }
}

async fn why_did_order_123_fail_is_found_whole_from_the_order_id(backend: Backend) {
    let (app, t) = setup(backend).await;
    let o = order_123(&app, &t.admin_key).await;
    let s = story(&app, &t.admin_key, "/api/v1/stories/order_id/123").await;

    assert_eq!(
        timeline_ids(&s),
        [
            &*o.deploy,
            &*o.checkout,
            &*o.request,
            &*o.db_error,
            &*o.failed
        ],
        "the whole story in time order: {s:#}"
    );
    assert_eq!(s["origin"], kv("order_id", "123"));
    assert_eq!(s["seeds"], json!([kv("order_id", "123")]));
    for (id, depth, linked_by, via) in [
        (&o.checkout, 0, kv("order_id", "123"), Value::Null),
        (&o.request, 0, kv("order_id", "123"), Value::Null),
        (&o.failed, 0, kv("order_id", "123"), Value::Null),
        (&o.db_error, 1, kv("request_id", "req-9"), json!(o.request)),
        (
            &o.deploy,
            2,
            kv("correlation_id", "release-77"),
            json!(o.db_error),
        ),
    ] {
        let e = entry(&s, id);
        assert_eq!(
            (&e["depth"], &e["linked_by"], &e["via_event_id"]),
            (&json!(depth), &linked_by, &via),
            "{e:#}"
        );
        assert_eq!(e["event"]["event_id"], *id);
    }
    let deploy = entry(&s, &o.deploy);
    assert_eq!(deploy["event_type"], "deploy_completed");
    assert_eq!(deploy["category"], "delivery");
    for link in [
        json!({"rel": "github_commit", "value": "abc"}),
        json!({"rel": "github_pr", "value": "42"}),
        json!({"rel": "github_repository", "value": "acme/shop"}),
    ] {
        assert!(
            deploy["links"].as_array().unwrap().contains(&link),
            "{deploy:#}"
        );
    }
    let db = entry(&s, &o.db_error);
    assert_eq!(db["outcome_status"], "failure");
    assert!(
        db["links"]
            .as_array()
            .unwrap()
            .contains(&json!({"rel": "log_reference", "value": "logs://db/1"}))
    );

    assert_eq!(
        s["by_category"]["business"],
        json!({"count": 2, "event_ids": [o.checkout, o.failed]})
    );
    assert_eq!(
        s["by_category"]["system"],
        json!({"count": 2, "event_ids": [o.request, o.db_error]})
    );
    assert_eq!(
        s["by_category"]["delivery"],
        json!({"count": 1, "event_ids": [o.deploy]})
    );
    assert_eq!(
        s["by_category"]["security"],
        json!({"count": 0, "event_ids": []})
    );
    assert_eq!(
        s["depth"],
        json!({"limit": 3, "reached": false, "deepest": 2})
    );
    assert_eq!(
        s["size"],
        json!({"limit": 200, "reached": false, "count": 5})
    );
    assert_eq!(s["truncated"], json!([]));
    assert_eq!(s["first_at"], "2026-12-01T09:00:02Z");
    assert_eq!(s["last_at"], "2026-12-01T10:00:03Z");
    // The user and session are identities: listed, not walked, so the
    // user's other order is not part of this story.
    assert!(!timeline_ids(&s).contains(&o.other_order));
    let not_followed = s["not_followed"].as_array().unwrap();
    for (key, value) in [("user_id", "u-1"), ("session_id", "s-1")] {
        assert!(
            not_followed.contains(
                &json!({"key": key, "value": value, "depth": 1, "reason": "identity_key"})
            ),
            "{not_followed:#?}"
        );
    }
    // Each key value was looked up once, level by level.
    let followed: Vec<(String, String, u64)> = s["followed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["key"].as_str().unwrap().to_string(),
                f["value"].as_str().unwrap().to_string(),
                f["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut unique = followed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), followed.len(), "{followed:?}");
    assert!(followed.contains(&(
        "trace_id".into(),
        "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        2
    )));
    assert!(followed.contains(&("request_id".into(), "req-9".into(), 1)));
}

async fn the_depth_and_size_limits_are_respected_and_reported(backend: Backend) {
    let (app, t) = setup(backend).await;
    let o = order_123(&app, &t.admin_key).await;

    let s = story(&app, &t.admin_key, "/api/v1/stories/order_id/123?depth=1").await;
    assert_eq!(
        timeline_ids(&s),
        [&*o.checkout, &*o.request, &*o.db_error, &*o.failed]
    );
    assert_eq!(
        s["depth"],
        json!({"limit": 1, "reached": true, "deepest": 1})
    );
    assert_eq!(s["size"]["reached"], false);
    let not_followed = s["not_followed"].as_array().unwrap();
    for key in ["trace_id", "correlation_id"] {
        assert!(
            not_followed
                .iter()
                .any(|n| n["key"] == key && n["reason"] == "depth_limit" && n["depth"] == 2),
            "{not_followed:#?}"
        );
    }

    let s = story(&app, &t.admin_key, "/api/v1/stories/order_id/123?depth=0").await;
    assert_eq!(timeline_ids(&s), [&*o.checkout, &*o.request, &*o.failed]);
    assert_eq!(
        s["depth"],
        json!({"limit": 0, "reached": true, "deepest": 0})
    );

    // Three events carry the order: two fit, the newest two.
    let s = story(&app, &t.admin_key, "/api/v1/stories/order_id/123?limit=2").await;
    assert_eq!(timeline_ids(&s), [&*o.request, &*o.failed]);
    assert_eq!(s["size"], json!({"limit": 2, "reached": true, "count": 2}));
    assert_eq!(
        s["truncated"],
        json!([{"key": "order_id", "value": "123", "depth": 0}])
    );
    assert_eq!(s["followed"][0]["read"], 3, "at most the room plus one row");
    // What the full story would have walked next was not looked up.
    assert!(
        s["not_followed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["key"] == "request_id" && n["reason"] == "size_limit"),
        "{s:#}"
    );

    // Room for the order's three events and the request's one more.
    let s = story(&app, &t.admin_key, "/api/v1/stories/order_id/123?limit=4").await;
    assert_eq!(s["size"], json!({"limit": 4, "reached": true, "count": 4}));
    assert_eq!(timeline_ids(&s).len(), 4);
    assert!(timeline_ids(&s).contains(&o.db_error));
    assert!(!timeline_ids(&s).contains(&o.deploy));
}

async fn a_hot_key_is_cut_at_the_limit_and_named(backend: Backend) {
    let (app, t) = setup(backend).await;
    // A bot's session: 40 events, each with an order of its own.
    let mut batch = Vec::new();
    for n in 0..40 {
        batch.push(json!({
            "event_type": "page_view", "category": "business",
            "timestamp": format!("2026-12-01T10:{:02}:00Z", n),
            "user_id": "bot", "object": {"session_id": "hot", "order_id": format!("o-{n}")},
        }));
    }
    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &json!({"events": batch}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let ids: Vec<String> = res.json::<Value>().await.unwrap()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_id"].as_str().unwrap().to_string())
        .collect();

    // Starting from the hot key: its newest 10, the lookup stopped at 11 rows.
    let s = story(
        &app,
        &t.admin_key,
        "/api/v1/stories/session_id/hot?limit=10&depth=0",
    )
    .await;
    assert_eq!(timeline_ids(&s), ids[30..].to_vec());
    assert_eq!(
        s["truncated"],
        json!([{"key": "session_id", "value": "hot", "depth": 0}])
    );
    assert_eq!(s["followed"][0]["read"], 11);
    assert_eq!(
        s["size"],
        json!({"limit": 10, "reached": true, "count": 10})
    );

    // Reached through an order with identities followed: cut and named
    // the same way, the walk never reading the whole session.
    let s = story(
        &app,
        &t.admin_key,
        "/api/v1/stories/order_id/o-3?limit=10&follow_identities=true",
    )
    .await;
    assert_eq!(
        s["size"],
        json!({"limit": 10, "reached": true, "count": 10})
    );
    assert_eq!(timeline_ids(&s)[..1], [ids[3].clone()]);
    let truncated = s["truncated"].as_array().unwrap();
    assert!(
        truncated.contains(&json!({"key": "session_id", "value": "hot", "depth": 1})),
        "{truncated:#?}"
    );
    // Each lookup reads at most the limit plus one row.
    for f in s["followed"].as_array().unwrap() {
        assert!(f["read"].as_u64().unwrap() <= 11, "{f}");
    }
}

async fn identity_keys_are_walked_only_when_asked(backend: Backend) {
    let (app, t) = setup(backend).await;
    let o = order_123(&app, &t.admin_key).await;
    let s = story(
        &app,
        &t.admin_key,
        "/api/v1/stories/order_id/123?follow_identities=true",
    )
    .await;
    assert_eq!(
        s["identity_keys"],
        json!({"keys": ["session_id", "user_id", "email_hash"], "followed": true})
    );
    // The user's other order joins through the user, one level down.
    let other = entry(&s, &o.other_order);
    assert_eq!(
        (&other["depth"], &other["linked_by"]),
        (&json!(1), &kv("user_id", "u-1"))
    );
    assert!(
        !s["not_followed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["reason"] == "identity_key")
    );

    let s = story(&app, &t.admin_key, "/api/v1/stories/order_id/123").await;
    assert_eq!(s["identity_keys"]["followed"], false);
    assert!(!timeline_ids(&s).contains(&o.other_order));

    // Starting from an identity key walks it (level 0) and what it leads to.
    let s = story(&app, &t.admin_key, "/api/v1/stories/user_id/u-1").await;
    let other = entry(&s, &o.other_order);
    assert_eq!(
        (&other["depth"], &other["linked_by"]),
        (&json!(0), &kv("user_id", "u-1"))
    );
    assert_eq!(entry(&s, &o.deploy)["depth"], 3);
}

async fn stories_never_cross_tenants(backend: Backend) {
    let (app, acme) = setup(backend).await;
    let globex = app.tenant("globex").await;
    let o = order_123(&app, &acme.admin_key).await;
    // Globex has an order 123 too, sharing acme's request id and trace.
    let theirs = create(
        &app,
        &globex.admin_key,
        json!({
            "event_type": "checkout_started", "category": "business",
            "object": {"order_id": "123", "request_id": "req-9"},
            "correlation": {"correlation_id": "release-77"},
        }),
    )
    .await;
    let only_theirs = create(
        &app,
        &globex.admin_key,
        json!({
            "event_type": "checkout_started", "category": "business", "object": {"order_id": "g-1"},
        }),
    )
    .await;

    let s = story(&app, &acme.admin_key, "/api/v1/stories/order_id/123").await;
    assert_eq!(timeline_ids(&s).len(), 5);
    assert!(!timeline_ids(&s).contains(&theirs));
    let s = story(&app, &globex.admin_key, "/api/v1/stories/order_id/123").await;
    assert_eq!(timeline_ids(&s), [&*theirs]);

    let reader = app.key(&acme, &["read"]).await;
    assert_eq!(
        timeline_ids(&story(&app, &reader, "/api/v1/stories/order_id/123").await).len(),
        5
    );
    for path in [
        "/api/v1/stories/order_id/g-1".to_string(),
        format!("/api/v1/events/{only_theirs}/story"),
        format!("/api/v1/events/{theirs}/story"),
    ] {
        assert_problem(app.get(&path, &reader).await, 404, "Not found", &[]).await;
    }
    let ingest_only = app.key(&acme, &["ingest"]).await;
    let res = app.get("/api/v1/stories/order_id/123", &ingest_only).await;
    assert_eq!(res.status(), 403);
    let res = app
        .get(
            &format!("/api/v1/events/{}/story", o.checkout),
            &ingest_only,
        )
        .await;
    assert_eq!(res.status(), 403);
}

async fn bad_keys_and_parameters_are_named_all_at_once(backend: Backend) {
    let (app, t) = setup(backend).await;
    order_123(&app, &t.admin_key).await;
    let body = assert_problem(
        app.get(
            "/api/v1/stories/span_id/x?depth=9&limit=0&follow_identities=maybe&colour=red",
            &t.admin_key,
        )
        .await,
        400,
        "Invalid input",
        &["/colour", "/depth", "/follow_identities", "/key", "/limit"],
    )
    .await;
    let key_error = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "/key")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    for allowed in [
        "order_id",
        "session_id",
        "ticket_id",
        "user_id",
        "email_hash",
        "trace_id",
        "request_id",
        "correlation_id",
    ] {
        assert!(key_error.contains(allowed), "{key_error}");
    }
    assert_problem(
        app.get(
            "/api/v1/stories/order_id/123?limit=1001&depth=-1",
            &t.admin_key,
        )
        .await,
        400,
        "Invalid input",
        &["/depth", "/limit"],
    )
    .await;
    assert_problem(
        app.get("/api/v1/stories/order_id/123?limit=abc", &t.admin_key)
            .await,
        400,
        "Invalid input",
        &["/limit"],
    )
    .await;
    assert_problem(
        app.get("/api/v1/events/not-an-id/story?depth=6", &t.admin_key)
            .await,
        400,
        "Invalid input",
        &["/depth"],
    )
    .await;
    assert_problem(
        app.get("/api/v1/stories/order_id/nobody-ordered-this", &t.admin_key)
            .await,
        404,
        "Not found",
        &[],
    )
    .await;
}

async fn an_event_story_starts_from_the_event_keys(backend: Backend) {
    let (app, t) = setup(backend).await;
    let o = order_123(&app, &t.admin_key).await;
    let s = story(
        &app,
        &t.admin_key,
        &format!("/api/v1/events/{}/story", o.db_error),
    )
    .await;
    assert_eq!(s["origin"], json!({"event_id": o.db_error}));
    assert_eq!(
        s["seeds"],
        json!([
            kv("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
            kv("correlation_id", "release-77"),
            kv("request_id", "req-9"),
        ])
    );
    assert_eq!(
        timeline_ids(&s),
        [
            &*o.deploy,
            &*o.checkout,
            &*o.request,
            &*o.db_error,
            &*o.failed
        ]
    );
    let own = entry(&s, &o.db_error);
    assert_eq!(
        (&own["depth"], &own["linked_by"], &own["via_event_id"]),
        (&json!(0), &Value::Null, &Value::Null)
    );
    assert_eq!(entry(&s, &o.deploy)["depth"], 0);
    assert_eq!(entry(&s, &o.request)["depth"], 0);
    let checkout = entry(&s, &o.checkout);
    assert_eq!(
        (
            &checkout["depth"],
            &checkout["linked_by"],
            &checkout["via_event_id"]
        ),
        (&json!(1), &kv("order_id", "123"), &json!(o.request))
    );

    // An event with only identity keys starts from them.
    let lone = create(&app, &t.admin_key, json!({
        "event_type": "page_view", "category": "business", "user_id": "u-lone", "object": {"session_id": "s-lone"},
    }))
    .await;
    let mate = create(
        &app,
        &t.admin_key,
        json!({
            "event_type": "click", "category": "business", "object": {"session_id": "s-lone"},
        }),
    )
    .await;
    let s = story(&app, &t.admin_key, &format!("/api/v1/events/{lone}/story")).await;
    assert_eq!(
        s["seeds"],
        json!([kv("session_id", "s-lone"), kv("user_id", "u-lone")])
    );
    assert_eq!(timeline_ids(&s).len(), 2);
    assert_eq!(entry(&s, &mate)["linked_by"], kv("session_id", "s-lone"));

    // An event with no key at all is a story of one.
    let bare = create(
        &app,
        &t.admin_key,
        json!({"event_type": "tick", "category": "system"}),
    )
    .await;
    let s = story(&app, &t.admin_key, &format!("/api/v1/events/{bare}/story")).await;
    assert_eq!(timeline_ids(&s), [bare]);
    assert_eq!(s["seeds"], json!([]));

    for id in ["0190a0a0-0000-7000-8000-000000000000", "nope"] {
        assert_problem(
            app.get(&format!("/api/v1/events/{id}/story"), &t.admin_key)
                .await,
            404,
            "Not found",
            &[],
        )
        .await;
    }
}

/// The keys the property's events carry (email_hash, made by redaction
/// from an email, behaves as user_id does).
const KEYS: [&str; 7] = [
    "trace_id",
    "correlation_id",
    "request_id",
    "order_id",
    "session_id",
    "ticket_id",
    "user_id",
];

fn is_identity(key: &str) -> bool {
    matches!(key, "session_id" | "user_id")
}

/// One generated event: a value index (or none) per key, and a minute.
#[derive(Debug, Clone)]
struct Gen {
    keys: [Option<u8>; 7],
    minute: u8,
}

fn gen_event() -> impl Strategy<Value = Gen> {
    // Few values per key, so keys are shared and chains form; most keys absent.
    let key = prop_oneof![3 => Just(None), 1 => (0u8..3).prop_map(Some)];
    (proptest::array::uniform7(key), 0u8..30).prop_map(|(keys, minute)| Gen { keys, minute })
}

fn value(case: usize, key: usize, v: u8) -> String {
    format!("c{case}-{}-{v}", KEYS[key])
}

fn body(case: usize, g: &Gen) -> Value {
    let mut e = json!({
        "event_type": "step", "category": "business",
        "timestamp": format!("2026-12-01T10:{:02}:00Z", g.minute),
        "object": {}, "correlation": {},
    });
    for (k, v) in g.keys.iter().enumerate() {
        let Some(v) = v else { continue };
        let v = value(case, k, *v);
        match KEYS[k] {
            "trace_id" | "correlation_id" => e["correlation"][KEYS[k]] = json!(v),
            "user_id" => e["user_id"] = json!(v),
            key => e["object"][key] = json!(v),
        }
    }
    e
}

/// The oracle: breadth-first over events and key values, level by level.
/// Level 0 is every event carrying the seed; level n+1 every event not yet
/// found carrying a non-identity key value of a level-n event not met
/// before. Depths up to `max_depth`; also the key values the last level
/// leaves to look up.
fn closure(
    events: &[Gen],
    seed: (usize, u8),
    max_depth: u32,
) -> (BTreeMap<usize, u32>, BTreeSet<(usize, u8)>) {
    let mut depth_of = BTreeMap::new();
    let mut met: BTreeSet<(usize, u8)> = BTreeSet::from([seed]);
    let mut level: BTreeSet<(usize, u8)> = BTreeSet::from([seed]);
    for d in 0..=max_depth {
        let found: Vec<usize> = (0..events.len())
            .filter(|i| !depth_of.contains_key(i))
            .filter(|i| level.iter().any(|(k, v)| events[*i].keys[*k] == Some(*v)))
            .collect();
        let mut next = BTreeSet::new();
        for i in found {
            depth_of.insert(i, d);
            for (k, v) in events[i].keys.iter().enumerate() {
                if let Some(v) = v
                    && met.insert((k, *v))
                    && !is_identity(KEYS[k])
                {
                    next.insert((k, *v));
                }
            }
        }
        level = next;
    }
    (depth_of, level)
}

async fn the_story_is_the_breadth_first_closure_of_shared_keys(backend: Backend) {
    let (app, t) = setup(backend).await;
    let cases = AtomicUsize::new(0);
    let strategy = (
        proptest::collection::vec(gen_event(), 1..24),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    );
    let mut runner = TestRunner::new(Config {
        cases: 24,
        failure_persistence: None,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    let result = runner.run(&strategy, |(events, pick_event, pick_key)| {
        // Each run (shrinking included) has key values of its own.
        let case = cases.fetch_add(1, Ordering::Relaxed);
        let seed_event = &events[pick_event.index(events.len())];
        let present: Vec<(usize, u8)> = seed_event
            .keys
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect();
        if present.is_empty() {
            return Ok(());
        }
        let seed = present[pick_key.index(present.len())];
        let (want, left) = closure(&events, seed, 5);
        let got = tokio::task::block_in_place(|| {
            handle.block_on(async {
                let bodies: Vec<Value> = events.iter().map(|g| body(case, g)).collect();
                let res = app
                    .post(
                        "/api/v1/events/batch",
                        &t.admin_key,
                        &json!({"events": bodies}),
                    )
                    .await;
                assert_eq!(res.status(), 201);
                let out: Value = res.json().await.unwrap();
                let ids: Vec<String> = out["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["event_id"].as_str().unwrap().to_string())
                    .collect();
                let path = format!(
                    "/api/v1/stories/{}/{}?depth=5&limit=1000",
                    KEYS[seed.0],
                    value(case, seed.0, seed.1)
                );
                (ids, story(&app, &t.admin_key, &path).await)
            })
        });
        let (ids, s) = got;
        let index: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut found = BTreeMap::new();
        let mut last = (String::new(), 0usize);
        for e in s["timeline"].as_array().unwrap() {
            let i = index[e["event_id"].as_str().unwrap()];
            let depth = e["depth"].as_u64().unwrap() as u32;
            found.insert(i, depth);
            // Time order, then commit order (the batch's order).
            let at = (e["timestamp"].as_str().unwrap().to_string(), i);
            prop_assert!(
                at > last || last.0.is_empty(),
                "out of order: {:?} after {:?}",
                at,
                last
            );
            last = at;
            // Linked by a key value it carries, looked up at its depth.
            let linked = &e["linked_by"];
            let k = KEYS.iter().position(|k| *k == linked["key"]).unwrap();
            prop_assert_eq!(
                Some(linked["value"].as_str().unwrap().to_string()),
                events[i].keys[k].map(|v| value(case, k, v))
            );
            prop_assert!(
                s["followed"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["key"] == linked["key"]
                        && f["value"] == linked["value"]
                        && f["depth"] == e["depth"])
            );
        }
        prop_assert_eq!(&found, &want, "story {:#}", s);
        prop_assert_eq!(&s["truncated"], &json!([]));
        prop_assert_eq!(&s["size"]["reached"], &json!(false));
        let depth_limited: BTreeSet<(usize, u8)> = s["not_followed"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["reason"] == "depth_limit")
            .map(|n| {
                let k = KEYS.iter().position(|k| *k == n["key"]).unwrap();
                let v = n["value"]
                    .as_str()
                    .unwrap()
                    .rsplit('-')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                (k, v)
            })
            .collect();
        prop_assert_eq!(&depth_limited, &left);
        prop_assert_eq!(s["depth"]["reached"].as_bool().unwrap(), !left.is_empty());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
