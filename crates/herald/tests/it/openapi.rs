//! The OpenAPI document describes what the server really answers: real
//! answers of every route (successes and problems) are validated against
//! the schema the document gives for that route and status, with every
//! documented object closed, so an undocumented field or a wrong type fails.

use serde_json::{Value, json};

use herald_testkit::app::*;

/// The document with every object that lists its properties closed to
/// others, as a JSON Schema root that `$ref`s can resolve against.
fn strict(doc: &Value) -> Value {
    fn close(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if m.get("type") == Some(&json!("object"))
                    && m.contains_key("properties")
                    && !m.contains_key("additionalProperties")
                {
                    m.insert("additionalProperties".into(), json!(false));
                }
                m.values_mut().for_each(close);
            }
            Value::Array(a) => a.iter_mut().for_each(close),
            _ => {}
        }
    }
    let mut doc = doc.clone();
    close(&mut doc["components"]);
    doc
}

struct Checker {
    doc: Value,
    checked: Vec<String>,
    /// Answers that do not match, all reported at the end.
    mismatches: Vec<String>,
}

impl Checker {
    /// Checks one real answer against the document's schema for it.
    async fn check(&mut self, method: &str, route: &str, res: reqwest::Response) -> Value {
        let status = res.status().as_u16();
        let media = res.headers()["content-type"].to_str().unwrap().to_string();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let responses = &self.doc["paths"][route][method]["responses"];
        assert!(
            responses.is_object(),
            "{method} {route} is not in the document"
        );
        let (answer, documented) = match responses.get(status.to_string()) {
            Some(a) => (a, "application/json"),
            None => (&responses["default"], "application/problem+json"),
        };
        assert!(
            status < 300 || documented == "application/problem+json",
            "{method} {route} answered {status}, which the document does not list"
        );
        assert_eq!(media, documented, "{method} {route} {status}");
        let schema_ref = answer["content"][documented]["schema"]["$ref"]
            .as_str()
            .unwrap();
        let mut root = self.doc.clone();
        root["$ref"] = json!(schema_ref);
        let validator = jsonschema::validator_for(&root).expect("the document compiles");
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .take(5)
            .collect();
        if !errors.is_empty() {
            self.mismatches.push(format!(
                "{method} {route} {status}: the answer does not match {schema_ref}: {errors:#?}\n{body}"
            ));
        }
        self.checked.push(format!("{method} {route} {status}"));
        body
    }
}

#[tokio::test]
async fn every_real_answer_matches_the_documented_schema() {
    // Subscriptions below call back to loopback.
    let app = spawn_with(|c| c.delivery_allowed_networks = "127.0.0.0/8".into()).await;
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut c = Checker {
        doc: strict(&doc),
        checked: Vec::new(),
        mismatches: Vec::new(),
    };
    let post = |path: &str, key: &str, body: Value| {
        app.client
            .post(app.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let get = |path: &str, key: &str| app.client.get(app.url(path)).bearer_auth(key).send();

    c.check(
        "get",
        "/health",
        app.client.get(app.url("/health")).send().await.unwrap(),
    )
    .await;
    let tenant = c
        .check(
            "post",
            "/api/v1/admin/tenants",
            post("/api/v1/admin/tenants", ROOT_KEY, json!({"name": "Acme"}))
                .await
                .unwrap(),
        )
        .await;
    let (tid, admin) = (
        tenant["tenant_id"].as_str().unwrap().to_string(),
        tenant["api_key"].as_str().unwrap().to_string(),
    );
    let keys = format!("/api/v1/admin/tenants/{tid}/keys");
    let key = c
        .check(
            "post",
            "/api/v1/admin/tenants/{tenant_id}/keys",
            post(&keys, ROOT_KEY, json!({"name": "ci", "scopes": ["read"]}))
                .await
                .unwrap(),
        )
        .await;
    let revoke = format!("{keys}/{}", key["key_id"].as_str().unwrap());
    let res = app
        .client
        .delete(app.url(&revoke))
        .bearer_auth(ROOT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // Events: a full one, a bare one, a repeat, a batch with a bad item.
    let full = json!({
        "event_type": "checkout_started", "category": "business", "event_category": "order",
        "user_id": "u1", "idempotency_key": "k1", "stream_id": "order:1",
        "actor": {"email": "a@example.com", "role": "buyer"}, "object": {"order_id": "o1"},
        "correlation": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        "outcome": {"status": "failure", "error_code": "E1", "message": "declined"},
        "evidence": {"github": {"commit_sha": "abc"}, "log_references": ["l1"]},
        "context": {"service": "api", "endpoint": "/cart"}, "data": {"amount": 3},
        "metadata": {"m": 1}, "surprise": true
    });
    let created = c
        .check(
            "post",
            "/api/v1/events/create",
            post("/api/v1/events/create", &admin, full.clone())
                .await
                .unwrap(),
        )
        .await;
    c.check(
        "post",
        "/api/v1/events/create",
        post("/api/v1/events/create", &admin, full).await.unwrap(),
    )
    .await;
    c.check(
        "post",
        "/api/v1/events/create",
        post(
            "/api/v1/events/create",
            &admin,
            json!({"event_type": "x", "category": "system"}),
        )
        .await
        .unwrap(),
    )
    .await;
    for bad in [
        json!({"category": "finance"}),
        json!({"event_type": "x", "category": "system", "data": "a".repeat(70_000)}),
    ] {
        c.check(
            "post",
            "/api/v1/events/create",
            post("/api/v1/events/create", &admin, bad).await.unwrap(),
        )
        .await;
    }
    c.check(
        "post",
        "/api/v1/events/batch",
        post(
            "/api/v1/events/batch",
            &admin,
            json!([{"event_type": "y", "category": "system"}]),
        )
        .await
        .unwrap(),
    )
    .await;
    c.check(
        "post",
        "/api/v1/events/batch",
        post(
            "/api/v1/events/batch",
            &admin,
            json!({"events": [{"event_type": "y", "category": "system"}, {"category": "nope"}]}),
        )
        .await
        .unwrap(),
    )
    .await;
    let id = created["event_id"].as_str().unwrap();
    let event_deliveries = format!("/api/v1/events/{id}/deliveries");
    c.check(
        "get",
        "/api/v1/events/{event_id}",
        get(&format!("/api/v1/events/{id}"), &admin).await.unwrap(),
    )
    .await;
    c.check(
        "get",
        "/api/v1/events/{event_id}",
        get("/api/v1/events/nope", &admin).await.unwrap(),
    )
    .await;
    // Stories: by key (with identities followed, so every list has rows),
    // by event, a bad key and parameters, an unknown value.
    for path in [
        "/api/v1/stories/order_id/o1?follow_identities=true&limit=1",
        "/api/v1/stories/order_id/o1",
        "/api/v1/stories/span_id/x?depth=9",
        "/api/v1/stories/order_id/nobody",
    ] {
        c.check(
            "get",
            "/api/v1/stories/{key}/{value}",
            get(path, &admin).await.unwrap(),
        )
        .await;
    }
    for path in [
        format!("/api/v1/events/{id}/story?depth=0"),
        "/api/v1/events/nope/story".to_string(),
    ] {
        c.check(
            "get",
            "/api/v1/events/{event_id}/story",
            get(&path, &admin).await.unwrap(),
        )
        .await;
    }
    c.check(
        "post",
        "/api/v1/events/query",
        post("/api/v1/events/query", &admin, json!({"limit": 2}))
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "post",
        "/api/v1/events/query",
        post("/api/v1/events/query", "hk_nope", json!({}))
            .await
            .unwrap(),
    )
    .await;
    // The live tail: a bad filter is a problem; the stream itself is
    // `text/event-stream`, read up to its first message (it never ends).
    c.check(
        "get",
        "/api/v1/events/tail",
        get("/api/v1/events/tail?q=red", &admin).await.unwrap(),
    )
    .await;
    let mut tail = get(
        "/api/v1/events/tail?after=0&event_type=order.created",
        &admin,
    )
    .await
    .unwrap();
    assert_eq!(tail.status(), 200);
    assert!(
        doc["paths"]["/api/v1/events/tail"]["get"]["responses"]["200"]["content"]
            ["text/event-stream"]
            .is_object()
    );
    assert_eq!(
        tail.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let first = tail.chunk().await.unwrap().unwrap_or_default();
    assert!(first.starts_with(b"id:"), "{first:?}");
    drop(tail);
    c.checked.push("get /api/v1/events/tail 200".into());
    // `/metrics` is Prometheus text, documented as `text/plain`.
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object()
    );
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        metrics.headers()
    );
    assert!(metrics.text().await.unwrap().contains("# TYPE "));
    c.checked.push("get /metrics 200".into());

    // Definitions and settings.
    let def = json!({"event_type": "order.created", "category": "business", "name": "Order created",
        "payload_schema": {"type": "object", "properties": {"amount": {"type": "number"}}},
        "allowed_sources": ["backend"], "examples": [{"amount": 1}], "ui": {"icon": "cart"}});
    let registered = c
        .check(
            "post",
            "/api/v1/event-definitions",
            post("/api/v1/event-definitions", &admin, def)
                .await
                .unwrap(),
        )
        .await;
    let def_id = registered["id"].as_str().unwrap().to_string();
    c.check(
        "put",
        "/api/v1/event-definitions/{id}",
        app.client
            .put(app.url(&format!("/api/v1/event-definitions/{def_id}")))
            .bearer_auth(&admin)
            .json(&json!({"event_type": "order.created", "category": "business",
                "payload_schema": {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]}}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        "/api/v1/event-definitions/{id}",
        get(&format!("/api/v1/event-definitions/{def_id}"), &admin)
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        "/api/v1/event-definitions",
        get("/api/v1/event-definitions?limit=3", &admin)
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        "/api/v1/settings",
        get("/api/v1/settings", &admin).await.unwrap(),
    )
    .await;
    c.check(
        "put",
        "/api/v1/settings",
        app.client
            .put(app.url("/api/v1/settings"))
            .bearer_auth(&admin)
            .json(&json!({"validation_mode": "strict"}))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // Subscriptions: create (with the secret shown once), a bad one, list,
    // get, replace, rotate, delete, and a missing one.
    let subs = "/api/v1/events/subscriptions";
    let sub = c
        .check(
            "post",
            subs,
            post(subs, &admin, json!({"subscriber_name": "billing", "callback_url": "http://127.0.0.1:9/h",
                "event_types": ["order.*"], "filter": "event.data.amount > 1", "rate_limit": 5, "headers": {"x-team": "a"}}))
                .await
                .unwrap(),
        )
        .await;
    c.check(
        "post",
        subs,
        post(subs, &admin, json!({"subscriber_name": 3}))
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        subs,
        get(&format!("{subs}?limit=1"), &admin).await.unwrap(),
    )
    .await;
    let one = format!("{subs}/{}", sub["subscription_id"].as_str().unwrap());
    let sub_route = "/api/v1/events/subscriptions/{subscription_id}";
    c.check("get", sub_route, get(&one, &admin).await.unwrap())
        .await;
    c.check(
        "put",
        sub_route,
        app.client
            .put(app.url(&one))
            .bearer_auth(&admin)
            .json(&json!({"subscriber_name": "billing", "callback_url": "http://127.0.0.1:9/h2", "ordering": "stream"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // Replays: a dry run (with its counts), a real one, a bad one, its
    // state, and a missing one.
    let replays = "/api/v1/events/replay";
    c.check(
        "post",
        replays,
        post(
            replays,
            &admin,
            json!({"stream_id": "order:1", "target_service": "billing", "dry_run": true}),
        )
        .await
        .unwrap(),
    )
    .await;
    let accepted = c
        .check(
            "post",
            replays,
            post(replays, &admin, json!({"start_time": "2025-01-01T00:00:00Z", "end_time": "2035-01-01T00:00:00Z", "event_type": "order.created"}))
                .await
                .unwrap(),
        )
        .await;
    c.check(
        "post",
        replays,
        post(replays, &admin, json!({"event_ids": ["x"]}))
            .await
            .unwrap(),
    )
    .await;
    let replay_route = "/api/v1/events/replay/{replay_id}";
    c.check(
        "get",
        replay_route,
        get(accepted["status_url"].as_str().unwrap(), &admin)
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        replay_route,
        get("/api/v1/events/replay/rpl_missing", &admin)
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "post",
        "/api/v1/events/subscriptions/{subscription_id}/secret/rotate",
        post(&format!("{one}/secret/rotate"), &admin, json!({}))
            .await
            .unwrap(),
    )
    .await;
    // After a rotation the answer says until when the old secret signs.
    c.check("get", sub_route, get(&one, &admin).await.unwrap())
        .await;
    // Its deliveries, a recover (and a bad one), and the dead-letter queue:
    // its listing, a redrive (and a bad one) and a discard of an unknown id.
    c.check(
        "get",
        "/api/v1/events/subscriptions/{subscription_id}/deliveries",
        get(&format!("{one}/deliveries?limit=1"), &admin)
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        "/api/v1/events/{event_id}/deliveries",
        get(&event_deliveries, &admin).await.unwrap(),
    )
    .await;
    let recover = "/api/v1/events/subscriptions/{subscription_id}/recover";
    for body in [json!({"since": "2000-01-01T00:00:00Z"}), json!({})] {
        c.check(
            "post",
            recover,
            post(&format!("{one}/recover"), &admin, body).await.unwrap(),
        )
        .await;
    }
    for query in ["?limit=1", "?limit=0"] {
        c.check(
            "get",
            "/api/v1/dlq",
            get(&format!("/api/v1/dlq{query}"), &admin).await.unwrap(),
        )
        .await;
    }
    for body in [json!({"ids": ["dlv_none"]}), json!({})] {
        c.check(
            "post",
            "/api/v1/dlq/redrive",
            post("/api/v1/dlq/redrive", &admin, body).await.unwrap(),
        )
        .await;
    }
    c.check(
        "delete",
        "/api/v1/dlq/{delivery_id}",
        app.client
            .delete(app.url("/api/v1/dlq/dlv_none"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let res = app
        .client
        .delete(app.url(&one))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    c.checked.push(format!("delete {sub_route} 204"));
    c.check("get", sub_route, get(&one, &admin).await.unwrap())
        .await;

    // Processors: create (a webhook with its secret, an enrich one, a bad
    // one), list, get, replace, toggle (and a bad toggle), delete; an event
    // they ran on, with its results, and a dead letter of one that failed.
    let procs = "/api/v1/events/processors";
    let proc_route = "/api/v1/events/processors/{processor_id}";
    c.check(
        "post",
        procs,
        post(procs, &admin, json!({"processor_name": "score", "processor_type": "webhook",
            "config": {"url": "http://127.0.0.1:9/score"}, "filters": {"event_types": ["nothing.here"]}}))
            .await
            .unwrap(),
    )
    .await;
    let enrich = c
        .check(
            "post",
            procs,
            post(
                procs,
                &admin,
                json!({"processor_name": "risk", "processor_type": "enrich", "priority": 3,
                "filters": {"event_types": ["order_failed"]}, "config": {"fields": {"risk": "'low'"}}}),
            )
            .await
            .unwrap(),
        )
        .await;
    c.check(
        "post",
        procs,
        post(
            procs,
            &admin,
            json!({"processor_name": "", "processor_type": "x"}),
        )
        .await
        .unwrap(),
    )
    .await;
    c.check(
        "get",
        procs,
        get(&format!("{procs}?limit=1"), &admin).await.unwrap(),
    )
    .await;
    let p_one = format!("{procs}/{}", enrich["processor_id"].as_str().unwrap());
    c.check("get", proc_route, get(&p_one, &admin).await.unwrap())
        .await;
    c.check(
        "put",
        proc_route,
        app.client
            .put(app.url(&p_one))
            .bearer_auth(&admin)
            .json(
                &json!({"processor_name": "risk", "processor_type": "enrich", "priority": 4,
                "filters": {"event_types": ["order_failed"]}, "config": {"fields": {"risk": "'low'"}}}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    let toggle_route = "/api/v1/events/processors/{processor_id}/toggle";
    for query in ["?enabled=true", "?enabled=maybe"] {
        c.check(
            "put",
            toggle_route,
            app.client
                .put(app.url(&format!("{p_one}/toggle{query}")))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    let strict = c
        .check(
            "post",
            procs,
            post(procs, &admin, json!({"processor_name": "strict", "processor_type": "enrich",
                "filters": {"event_types": ["payment_authorized"]}, "config": {"fields": {"n": "event.data.missing + 1"}},
                "retry_policy": {"schedule": []}}))
                .await
                .unwrap(),
        )
        .await;
    let (status, ran) = app
        .create(
            &admin,
            &json!({"event_type": "order_failed", "category": "business"}),
        )
        .await;
    assert_eq!(status, 201, "{ran}");
    let ran_path = format!("/api/v1/events/{}", ran["event_id"].as_str().unwrap());
    herald_testkit::wait::wait_until(
        "the processors ran",
        std::time::Duration::from_secs(20),
        || async {
            let e: Value = get(&ran_path, &admin).await.unwrap().json().await.unwrap();
            e["processing_results"].is_array()
        },
    )
    .await;
    c.check(
        "get",
        "/api/v1/events/{event_id}",
        get(&ran_path, &admin).await.unwrap(),
    )
    .await;
    let (status, refused) = app
        .create(
            &admin,
            &json!({"event_type": "payment_authorized", "category": "business"}),
        )
        .await;
    assert_eq!(status, 201, "{refused}");
    herald_testkit::wait::wait_until(
        "a processing dead letter",
        std::time::Duration::from_secs(20),
        || async {
            let page: Value = get("/api/v1/dlq", &admin)
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page["count"].as_u64().unwrap_or(0) > 0
        },
    )
    .await;
    c.check(
        "get",
        "/api/v1/dlq",
        get("/api/v1/dlq", &admin).await.unwrap(),
    )
    .await;
    let res = app
        .client
        .delete(app.url(&p_one))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    c.checked.push(format!("delete {proc_route} 204"));
    let strict = format!("{procs}/{}", strict["processor_id"].as_str().unwrap());
    let res = app
        .client
        .delete(app.url(&strict))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    c.check("get", proc_route, get(&p_one, &admin).await.unwrap())
        .await;

    // A stream (its page, a bad id, an unknown one) and its projection
    // (now, at a version, a bad parameter, an unknown entity).
    let stream_route = "/api/v1/events/stream/{stream_id}";
    for path in [
        "/api/v1/events/stream/order:1?limit=1",
        "/api/v1/events/stream/order-1",
        "/api/v1/events/stream/order:none",
    ] {
        c.check("get", stream_route, get(path, &admin).await.unwrap())
            .await;
    }
    let projection_route = "/api/v1/events/projections/{entity_type}/{entity_id}";
    for path in [
        "/api/v1/events/projections/order/1",
        "/api/v1/events/projections/order/1?at_version=1",
        "/api/v1/events/projections/order/1?at=soon",
        "/api/v1/events/projections/order/none",
    ] {
        c.check("get", projection_route, get(path, &admin).await.unwrap())
            .await;
    }

    // Browser collection: a write key with an allowed origin, its
    // settings replaced, one event (new, then a repeat), a batch (all
    // stored, then one rejected), the open health route.
    let write = c
        .check(
            "post",
            "/api/v1/admin/tenants/{tenant_id}/keys",
            post(
                &keys,
                ROOT_KEY,
                json!({"name": "site", "scopes": ["collect"], "allowed_origins": ["https://shop.example"]}),
            )
            .await
            .unwrap(),
        )
        .await;
    let (write_key, write_id) = (
        write["api_key"].as_str().unwrap().to_string(),
        write["key_id"].as_str().unwrap().to_string(),
    );
    c.check(
        "put",
        "/api/v1/admin/tenants/{tenant_id}/keys/{key_id}/collect",
        app.client
            .put(app.url(&format!("{keys}/{write_id}/collect")))
            .bearer_auth(&admin)
            .json(&json!({"allowed_origins": ["https://shop.example", "*"], "webhook_secret": "0123456789abcdef"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let collect = |path: &str, body: Value| {
        app.client
            .post(app.url(&format!("{path}?writeKey={write_key}")))
            .header("origin", "https://shop.example")
            .json(&body)
            .send()
    };
    for _ in 0..2 {
        c.check(
            "post",
            "/api/v1/events/frontend",
            collect(
                "/api/v1/events/frontend",
                json!({"event_type": "clicked", "idempotency_key": "f-1"}),
            )
            .await
            .unwrap(),
        )
        .await;
    }
    for events in [
        json!([{"event_type": "a"}]),
        json!([{"event_type": "a"}, {"data": 1}]),
    ] {
        c.check(
            "post",
            "/api/v1/events/frontend/batch",
            collect(
                "/api/v1/events/frontend/batch",
                json!({"events": events, "client_info": {"screen": "1x1"}}),
            )
            .await
            .unwrap(),
        )
        .await;
    }
    c.check(
        "get",
        "/api/v1/events/frontend/health",
        app.client
            .get(app.url("/api/v1/events/frontend/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;

    // The Segment-compatible routes: one message or a batch each, 200
    // (their 400 and 401 are Segment's shape, checked in collect_segment.rs).
    for (path, body) in [
        (
            "/v1/track",
            json!({"type": "track", "event": "Signed Up", "userId": "u"}),
        ),
        (
            "/v1/identify",
            json!({"userId": "u", "traits": {"plan": "pro"}}),
        ),
        ("/v1/page", json!({"userId": "u", "name": "Home"})),
        ("/v1/screen", json!({"userId": "u", "name": "Home"})),
        ("/v1/group", json!({"userId": "u", "groupId": "g"})),
        ("/v1/alias", json!({"userId": "u", "previousId": "a"})),
        ("/v1/t", json!({"event": "Clicked", "anonymousId": "a"})),
        ("/v1/i", json!({"userId": "u"})),
        ("/v1/p", json!({"userId": "u"})),
        ("/v1/s", json!({"userId": "u"})),
        ("/v1/g", json!({"userId": "u", "groupId": "g"})),
        ("/v1/a", json!({"userId": "u", "previousId": "a"})),
        (
            "/v1/batch",
            json!({"batch": [{"type": "track", "event": "A", "userId": "u"}, {"type": "track"}]}),
        ),
        (
            "/v1/b",
            json!({"batch": [{"type": "track", "event": "A", "userId": "u"}]}),
        ),
        (
            "/v1/import",
            json!({"batch": [{"type": "track", "event": "A", "userId": "u"}]}),
        ),
        (
            "/beacon/v1/batch",
            json!({"batch": [{"type": "track", "event": "A", "userId": "u"}]}),
        ),
    ] {
        c.check(
            "post",
            path,
            app.client
                .post(app.url(path))
                .basic_auth(&write_key, Some(""))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }

    // The RudderStack webhook: one event, then an array with a bad one.
    for body in [
        json!({"type": "track", "event": "A", "userId": "u", "messageId": "r-1"}),
        json!([{"type": "track", "event": "B", "userId": "u"}, {"type": "track", "userId": "u"}]),
    ] {
        c.check(
            "post",
            "/webhooks/rudderstack",
            app.client
                .post(app.url("/webhooks/rudderstack"))
                .basic_auth(&write_key, Some(""))
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
    }

    // CloudEvents: structured (new, repeat), binary, batched (one bad).
    let ce = |id: &str| json!({"specversion": "1.0", "type": "com.example.x", "source": "/s", "id": id, "data": {"a": 1}});
    for (content_type, body) in [
        ("application/cloudevents+json", ce("c-1")),
        ("application/cloudevents+json", ce("c-1")),
        ("application/cloudevents-batch+json", json!([ce("c-2")])),
        (
            "application/cloudevents-batch+json",
            json!([ce("c-3"), {"id": "x"}]),
        ),
    ] {
        c.check(
            "post",
            "/api/v1/events/cloudevents",
            app.client
                .post(app.url("/api/v1/events/cloudevents"))
                .bearer_auth(&admin)
                .header("content-type", content_type)
                .body(body.to_string())
                .send()
                .await
                .unwrap(),
        )
        .await;
    }

    // Waits: create (with a callback and its secret shown once), a bad
    // one, list, get (and a short long poll), cancel one, cancel a
    // workflow's, and a missing one.
    let waits = "/api/v1/waits";
    let wait = c
        .check(
            "post",
            waits,
            post(waits, &admin, json!({"workflow_instance_id": "wf-1", "event_type": "order.*",
                "filter": "event.data.order_id == wait.context.order_id", "context": {"order_id": "o-1"},
                "timeout": 60, "lookback": 5, "callback_url": "http://127.0.0.1:9/resume"}))
                .await
                .unwrap(),
        )
        .await;
    c.check(
        "post",
        waits,
        post(waits, &admin, json!({"event_type": "a..b", "timeout": -1}))
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        waits,
        get(&format!("{waits}?status=open&limit=1"), &admin)
            .await
            .unwrap(),
    )
    .await;
    let one_wait = format!("{waits}/{}", wait["wait_id"].as_str().unwrap());
    let wait_route = "/api/v1/waits/{wait_id}";
    c.check(
        "get",
        wait_route,
        get(&format!("{one_wait}?wait=1"), &admin).await.unwrap(),
    )
    .await;
    c.check(
        "delete",
        wait_route,
        app.client
            .delete(app.url(&one_wait))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    c.check("get", wait_route, get(&one_wait, &admin).await.unwrap())
        .await;
    c.check(
        "delete",
        waits,
        app.client
            .delete(app.url(&format!("{waits}?workflow_instance_id=wf-1")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        wait_route,
        get(&format!("{waits}/wait_missing"), &admin).await.unwrap(),
    )
    .await;

    // The audit trail, once the requests above are in it.
    app.eventually("the requests are audited", || async {
        let body: Value = get("/api/v1/audit", &admin)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["count"].as_u64().unwrap_or(0) >= 10
    })
    .await;
    c.check(
        "get",
        "/api/v1/audit",
        get("/api/v1/audit?limit=3", &admin).await.unwrap(),
    )
    .await;

    // Statistics and a timeseries (with a bad parameter too).
    let statistics = "/api/v1/events/statistics";
    c.check(
        "get",
        statistics,
        get(&format!("{statistics}?tz=Europe/Berlin&top=3"), &admin)
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        statistics,
        get(&format!("{statistics}?tz=Mars"), &admin).await.unwrap(),
    )
    .await;
    let timeseries = "/api/v1/events/statistics/timeseries";
    c.check(
        "get",
        timeseries,
        get(&format!("{timeseries}?interval=1h&group_by=status"), &admin)
            .await
            .unwrap(),
    )
    .await;
    c.check(
        "get",
        timeseries,
        get(&format!("{timeseries}?interval=1d"), &admin)
            .await
            .unwrap(),
    )
    .await;

    // Every route of the document was exercised at least once.
    let routes: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{m} {path}"))
        })
        .collect();
    let missed: Vec<&String> = routes
        .iter()
        .filter(|r| {
            !c.checked
                .iter()
                .any(|done| done.starts_with(&format!("{r} ")))
                && ![
                    "get /api/openapi.json",
                    "delete /api/v1/admin/tenants/{tenant_id}/keys/{key_id}",
                ]
                .contains(&r.as_str())
        })
        .collect();
    assert!(missed.is_empty(), "routes never checked: {missed:?}");
    assert!(c.mismatches.is_empty(), "{}", c.mismatches.join("\n\n"));
}
