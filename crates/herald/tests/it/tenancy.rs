//! Tenants, keys, scopes, 401/403/404, the audit trail, and security events.

use serde_json::{Value, json};

use herald_testkit::app::*;

#[tokio::test]
async fn root_key_creates_tenants_and_scoped_keys_are_enforced_on_every_route() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let ingest_only = app.key(&t, &["ingest"]).await;
    let read_only = app.key(&t, &["read"]).await;

    // Missing and bad keys: 401 problem+json.
    let res = app
        .client
        .post(app.url("/api/v1/events/create"))
        .json(&event("x", "system"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(app.create("hk_nope", &event("x", "system")).await.0, 401);

    // Scope per route.
    let (status, created) = app.create(&ingest_only, &event("x", "system")).await;
    assert_eq!(status, 201);
    let id = created["event_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/events/{id}"), &ingest_only)
            .await
            .status(),
        403
    );
    assert_eq!(
        app.get(&format!("/api/v1/events/{id}"), &read_only)
            .await
            .status(),
        200
    );
    assert_eq!(app.create(&read_only, &event("x", "system")).await.0, 403);
    assert_eq!(
        app.post("/api/v1/events/query", &ingest_only, &json!({}))
            .await
            .status(),
        403
    );
    assert_eq!(
        app.post(
            "/api/v1/events/batch",
            &read_only,
            &json!([event("x", "system")])
        )
        .await
        .status(),
        403
    );
    assert_eq!(app.get("/api/v1/audit", &read_only).await.status(), 403);
    let res = app.get("/api/v1/audit", &ingest_only).await;
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("`manage`"),
        "{problem}"
    );
    // The root key manages tenants; it is not a tenant key.
    assert_eq!(app.create(ROOT_KEY, &event("x", "system")).await.0, 403);
    // Tenant keys cannot create tenants.
    assert_eq!(
        app.post(
            "/api/v1/admin/tenants",
            &t.admin_key,
            &json!({"name": "evil"})
        )
        .await
        .status(),
        403
    );
}

#[tokio::test]
async fn keys_are_validated_and_revocation_takes_effect_at_once() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let res = app
        .post(
            &format!("/api/v1/admin/tenants/{}/keys", t.tenant_id),
            ROOT_KEY,
            &json!({"scopes": ["ingest", "write"]}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["/name", "/scopes/1"], "{problem}");

    let res = app
        .post(
            &format!("/api/v1/admin/tenants/{}/keys", t.tenant_id),
            &t.admin_key,
            &json!({"name": "ci", "scopes": ["ingest"]}),
        )
        .await;
    assert_eq!(
        res.status(),
        201,
        "a tenant's manage key may issue its own keys"
    );
    let body: Value = res.json().await.unwrap();
    let (key, key_id) = (
        body["api_key"].as_str().unwrap(),
        body["key_id"].as_str().unwrap(),
    );
    assert_eq!(app.create(key, &event("x", "system")).await.0, 201);

    let other = app.tenant("Globex").await;
    let path = format!("/api/v1/admin/tenants/{}/keys/{key_id}", t.tenant_id);
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&other.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "another tenant cannot revoke");
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(ROOT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        app.create(key, &event("x", "system")).await.0,
        401,
        "revoked keys stop at once"
    );
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(ROOT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn another_tenants_event_looks_exactly_like_an_unknown_one() {
    let app = spawn_app().await;
    let (a, b) = (app.tenant("A").await, app.tenant("B").await);
    let (_, created) = app.create(&a.admin_key, &event("x", "system")).await;
    let id = created["event_id"].as_str().unwrap();
    let theirs = app.get(&format!("/api/v1/events/{id}"), &b.admin_key).await;
    let unknown = app
        .get(
            "/api/v1/events/01a20243-5458-753c-b085-534d47e43611",
            &b.admin_key,
        )
        .await;
    let garbage = app.get("/api/v1/events/not-an-id", &b.admin_key).await;
    assert_eq!(
        (
            theirs.status().as_u16(),
            unknown.status().as_u16(),
            garbage.status().as_u16()
        ),
        (404, 404, 404)
    );
    let (p1, p2): (Value, Value) = (theirs.json().await.unwrap(), unknown.json().await.unwrap());
    assert_eq!(p1["title"], p2["title"]);
    assert_eq!(app.query(&b.admin_key, &json!({})).await["total"], 0);
}

#[tokio::test]
async fn body_naming_another_tenant_is_refused_and_audited_as_a_security_event() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let mut body = event("x", "system");
    body["tenant_id"] = json!("someone_else");
    let (status, problem) = app.create(&t.admin_key, &body).await;
    assert_eq!(status, 403, "{problem}");
    body["tenant_id"] = json!(t.tenant_id);
    assert_eq!(
        app.create(&t.admin_key, &body).await.0,
        201,
        "naming your own tenant is fine"
    );

    app.eventually("the security event is in the audit trail", || async {
        let res = app
            .get("/api/v1/audit?outcome=security_violation", &t.admin_key)
            .await;
        let body: Value = res.json().await.unwrap();
        body["count"] == 1
            && body["records"][0]["status_code"] == 403
            && body["records"][0]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("someone_else")
    })
    .await;
}

#[tokio::test]
async fn a_body_naming_another_tenant_is_403_even_when_the_event_is_invalid_too() {
    let app = spawn_with(|c| c.max_event_bytes = 1024).await;
    let t = app.tenant("Acme").await;
    let invalid = json!({"tenant_id": "mallory", "category": "finance", "event_source": "fax"});
    let too_large = json!({"tenant_id": "mallory", "event_type": "x", "category": "system", "data": "a".repeat(1500)});
    for body in [&invalid, &too_large] {
        let (status, problem) = app.create(&t.admin_key, body).await;
        assert_eq!(status, 403, "{problem}");
        assert_eq!(problem["status"], 403);
    }
    // In a batch, the item is refused as such; its neighbours are not.
    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &json!([invalid, event("fine", "system")]),
        )
        .await;
    assert_eq!(res.status(), 207);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["results"][0]["status"], 403, "{body}");
    assert_eq!(body["results"][1]["status"], 201, "{body}");
    // Invalid without naming another tenant is still a plain 400.
    let (status, _) = app
        .create(
            &t.admin_key,
            &json!({"tenant_id": t.tenant_id, "category": "finance"}),
        )
        .await;
    assert_eq!(status, 400);

    app.eventually("three security events in the audit trail", || async {
        let body: Value = app
            .get("/api/v1/audit?outcome=security_violation", &t.admin_key)
            .await
            .json()
            .await
            .unwrap();
        body["count"] == 3
            && body["records"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["detail"].as_str().unwrap_or("").contains("mallory"))
    })
    .await;
}

#[tokio::test]
async fn admin_bodies_follow_the_same_rules_as_every_json_route() {
    let app = spawn_app().await;
    let gz = |v: &Value| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut enc, &serde_json::to_vec(v).unwrap()).unwrap();
        enc.finish().unwrap()
    };
    let send = |path: String, content_type: &'static str, encoding: &'static str, body: Vec<u8>| {
        app.client
            .post(app.url(&path))
            .bearer_auth(ROOT_KEY)
            .header("content-type", content_type)
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    let tenants = "/api/v1/admin/tenants".to_string();
    let res = send(
        tenants.clone(),
        "application/json",
        "gzip",
        gz(&json!({"name": "Zipped"})),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201, "gzip is decoded");
    let tenant: Value = res.json().await.unwrap();
    let keys = format!(
        "/api/v1/admin/tenants/{}/keys",
        tenant["tenant_id"].as_str().unwrap()
    );
    let res = send(
        keys.clone(),
        "application/json",
        "gzip",
        gz(&json!({"name": "k", "scopes": ["read"]})),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201, "gzip is decoded");

    for path in [tenants, keys] {
        let res = send(
            path.clone(),
            "text/plain",
            "identity",
            br#"{"name": "x", "scopes": ["read"]}"#.to_vec(),
        )
        .await
        .unwrap();
        assert_eq!(res.status(), 415, "{path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let big = serde_json::to_vec(
            &json!({"name": "x", "scopes": ["read"], "pad": "a".repeat(20_000)}),
        )
        .unwrap();
        for (encoding, body) in [
            ("identity", big.clone()),
            ("gzip", gz(&serde_json::from_slice(&big).unwrap())),
        ] {
            let res = send(path.clone(), "application/json", encoding, body)
                .await
                .unwrap();
            assert_eq!(res.status(), 413, "{path} {encoding}");
            let p: Value = res.json().await.unwrap();
            assert!(p["detail"].as_str().unwrap().contains("16384"), "{p}");
        }
    }
}

#[tokio::test]
async fn every_request_leaves_one_audit_record_with_who_what_and_how_it_went() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let read = app.key(&t, &["read"]).await;
    let res = app
        .client
        .post(app.url("/api/v1/events/create"))
        .bearer_auth(&t.admin_key)
        .header("x-request-id", "req-abc-1")
        .json(&event("x", "system"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-abc-1");
    app.create(&read, &event("x", "system")).await; // denied
    app.create(&t.admin_key, &json!({"category": "nope"})).await; // rejected

    app.eventually("three event requests audited", || async {
        let body: Value = app
            .get(
                "/api/v1/audit?operation=POST%20/api/v1/events/create",
                &t.admin_key,
            )
            .await
            .json()
            .await
            .unwrap();
        body["count"] == 3
    })
    .await;
    let body: Value = app
        .get(
            "/api/v1/audit?operation=POST%20/api/v1/events/create",
            &t.admin_key,
        )
        .await
        .json()
        .await
        .unwrap();
    let recs = body["records"].as_array().unwrap();
    let outcomes: Vec<&str> = recs
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        vec!["rejected", "denied", "success"],
        "newest first"
    );
    let first = &recs[2];
    assert_eq!(first["request_id"], "req-abc-1");
    assert_eq!(first["tenant_id"], t.tenant_id.as_str());
    assert_eq!(first["status_code"], 201);
    assert_eq!(first["resource"], "/api/v1/events/create");
    assert!(first["key_id"].as_str().unwrap().starts_with("key_"));
    assert!(first["duration_us"].as_u64().is_some());
    // The root key sees operator actions too, with key id `root`.
    let body: Value = app
        .get(
            "/api/v1/audit?operation=POST%20/api/v1/admin/tenants",
            ROOT_KEY,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["records"][0]["key_id"], "root");
}

#[tokio::test]
async fn health_and_openapi_document_every_route() {
    let app = spawn_app().await;
    let health: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let doc: Value = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    // Every documented route exists (answers something other than the
    // fallback 404 or 405), so the table cannot drift from the router.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{event_id}", "01a20243-5458-753c-b085-534d47e43611")
                .replace("{tenant_id}", "t")
                .replace("{key_id}", "k");
            let req = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&concrete));
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert_ne!(status, 405, "{method} {path}");
            assert!(
                !(status == 404
                    && body["detail"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("no such route")),
                "{method} {path} is documented but not routed"
            );
        }
    }
    let res = app
        .client
        .get(app.url("/api/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");

    // Query parameters are documented as parameters, and a route takes
    // exactly the ones it documents: each documented one is accepted (the
    // answer may refuse its value, never its name), any other is named.
    let t = app.tenant("Acme").await;
    let query_params = |path: &str, method: &str| -> Vec<(String, String)> {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .map(|p| {
                assert!(
                    p["description"].is_string() && p["schema"]["type"].is_string(),
                    "{p}"
                );
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["schema"]["type"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let names = |path: &str, method: &str| -> Vec<String> {
        query_params(path, method)
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    };
    assert_eq!(
        names("/api/v1/audit", "get"),
        [
            "tenant_id",
            "key_id",
            "operation",
            "outcome",
            "start_time",
            "end_time",
            "limit",
            "cursor"
        ]
    );
    assert_eq!(
        names("/api/v1/event-definitions", "get"),
        [
            "category",
            "source",
            "type_prefix",
            "q",
            "builtin",
            "limit",
            "offset"
        ]
    );
    assert_eq!(names("/api/v1/event-definitions/{id}", "get"), ["version"]);
    assert_eq!(
        names("/api/v1/event-definitions/{id}", "put"),
        ["allow_breaking"]
    );
    let mut with_params = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let params = query_params(path, method);
            if params.is_empty() {
                continue;
            }
            with_params += 1;
            let concrete = path.replace("{id}", "order.created");
            // A problem names the parameter as a field; the Segment-compatible
            // routes answer in Segment's shape, `{"code", "message"}`.
            let unknown = |res: &Value, name: &str| {
                res["errors"].as_array().into_iter().flatten().any(|e| {
                    e["field"] == format!("/{name}")
                        && e["message"]
                            .as_str()
                            .unwrap_or("")
                            .starts_with("unknown parameter")
                }) || res["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(&format!("/{name} unknown parameter")))
            };
            for (name, kind) in &params {
                let value = match kind.as_str() {
                    "integer" => "1",
                    "boolean" => "true",
                    _ => "x",
                };
                let res = app
                    .client
                    .request(
                        method.to_uppercase().parse().unwrap(),
                        app.url(&format!("{concrete}?{name}={value}")),
                    )
                    .bearer_auth(&t.admin_key)
                    .send()
                    .await
                    .unwrap();
                // An event stream that opened took the parameter; it never
                // ends, so its body is not read.
                let streaming = res
                    .headers()
                    .get("content-type")
                    .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
                let body: Value = if streaming {
                    Value::Null
                } else {
                    res.json().await.unwrap_or(Value::Null)
                };
                assert!(
                    !unknown(&body, name),
                    "{method} {path} documents `{name}` but refuses it: {body}"
                );
            }
            let res = app
                .client
                .request(
                    method.to_uppercase().parse().unwrap(),
                    app.url(&format!("{concrete}?undocumented=1")),
                )
                .bearer_auth(&t.admin_key)
                .send()
                .await
                .unwrap();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            assert!(
                unknown(&body, "undocumented"),
                "{method} {path} takes an undocumented parameter: {body}"
            );
        }
    }
    assert_eq!(
        names("/api/v1/events/subscriptions", "get"),
        ["enabled", "all", "limit", "cursor"]
    );
    assert_eq!(
        names("/api/v1/waits", "get"),
        [
            "status",
            "workflow_instance_id",
            "event_type",
            "limit",
            "cursor"
        ]
    );
    assert_eq!(names("/api/v1/waits/{wait_id}", "get"), ["wait"]);
    assert_eq!(
        names("/api/v1/stories/{key}/{value}", "get"),
        ["depth", "limit", "follow_identities"]
    );
    assert_eq!(with_params, 38);
}

#[tokio::test]
async fn a_generated_root_key_is_kept_in_the_data_dir_readable_only_by_its_owner() {
    let app = spawn_with(|c| c.root_key = None).await;
    let path = app.data_dir.path().join("root.key");
    let key = std::fs::read_to_string(&path).expect("root.key written at first start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let res = app
        .post("/api/v1/admin/tenants", key.trim(), &json!({"name": "x"}))
        .await;
    assert_eq!(res.status(), 201, "the generated key is the root key");
    // A restart keeps the same key.
    let app = app.restart_with(|c| c.root_key = None).await;
    let res = app
        .post("/api/v1/admin/tenants", key.trim(), &json!({"name": "y"}))
        .await;
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn a_batch_wrapper_naming_another_tenant_is_refused_and_its_other_keys_are_named() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let batch = |extra: Value| {
        let mut body = json!({"events": [event("x", "system")]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    // Another tenant: 403 whatever else is wrong, nothing stored.
    for body in [
        batch(json!({"tenant_id": "mallory"})),
        json!({"tenant_id": "mallory", "sent_at": 1}),
    ] {
        let res = app.post("/api/v1/events/batch", &t.admin_key, &body).await;
        assert_eq!(res.status(), 403, "{body}");
    }
    assert_eq!(app.query(&t.admin_key, &json!({})).await["total"], 0);
    // The wrapper's other keys are named, not dropped.
    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &batch(json!({"tenant_id": 7, "sent_at": 1})),
        )
        .await;
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["/tenant_id", "/sent_at"], "{problem}");
    // Naming its own tenant is fine.
    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &batch(json!({"tenant_id": t.tenant_id})),
        )
        .await;
    assert_eq!(res.status(), 201);

    app.eventually("both refusals audited as security events", || async {
        let body: Value = app
            .get("/api/v1/audit?outcome=security_violation", &t.admin_key)
            .await
            .json()
            .await
            .unwrap();
        body["count"] == 2
            && body["records"].as_array().unwrap().iter().all(|r| {
                r["operation"] == "POST /api/v1/events/batch"
                    && r["detail"].as_str().unwrap_or("").contains("mallory")
            })
    })
    .await;
}

#[tokio::test]
async fn a_collect_key_is_refused_everywhere_but_collection() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let collect = app.key(&t, &["collect"]).await;
    let (status, created) = app.create(&t.admin_key, &event("x", "system")).await;
    assert_eq!(status, 201);
    let id = created["event_id"].as_str().unwrap();

    let posts = [
        ("/api/v1/events/create", event("x", "system")),
        ("/api/v1/events/batch", json!([event("x", "system")])),
        ("/api/v1/events/query", json!({})),
        (
            "/api/v1/event-definitions",
            json!({"event_type": "x", "category": "system"}),
        ),
    ];
    for (path, body) in &posts {
        let res = app.post(path, &collect, body).await;
        assert_eq!(res.status(), 403, "POST {path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    for path in [
        format!("/api/v1/events/{id}"),
        "/api/v1/audit".into(),
        "/api/v1/event-definitions".into(),
        "/api/v1/settings".into(),
    ] {
        assert_eq!(app.get(&path, &collect).await.status(), 403, "GET {path}");
    }
    assert_eq!(
        app.query(&t.admin_key, &json!({})).await["total"],
        1,
        "nothing was stored through the collect key"
    );
}

#[tokio::test]
async fn the_audit_trail_pages_and_filters_by_key_time_and_tenant_acted_on() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let res = app
        .post(
            &format!("/api/v1/admin/tenants/{}/keys", t.tenant_id),
            ROOT_KEY,
            &json!({"name": "ci", "scopes": ["ingest", "read"]}),
        )
        .await;
    let issued: Value = res.json().await.unwrap();
    let (ci, ci_id) = (
        issued["api_key"].as_str().unwrap().to_string(),
        issued["key_id"].as_str().unwrap().to_string(),
    );
    for _ in 0..3 {
        assert_eq!(app.create(&ci, &event("x", "system")).await.0, 201);
    }
    // Every record so far is audited before the window opens.
    app.eventually("the first requests are audited", || async {
        let body: Value = app
            .get(&format!("/api/v1/audit?key_id={ci_id}"), &t.admin_key)
            .await
            .json()
            .await
            .unwrap();
        body["count"] == 3
    })
    .await;
    let window = herald_core::Timestamp::now().to_string();
    for _ in 0..2 {
        assert_eq!(app.create(&t.admin_key, &event("y", "system")).await.0, 201);
    }
    let path = format!("/api/v1/admin/tenants/{}/keys/{ci_id}", t.tenant_id);
    let res = app
        .client
        .delete(app.url(&path))
        .bearer_auth(ROOT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    // The operator's actions on the tenant are in the tenant's own trail.
    app.eventually("the revocation is in the tenant's trail", || async {
        let body: Value = app
            .get(
                "/api/v1/audit?operation=DELETE%20/api/v1/admin/tenants/%7Btenant_id%7D/keys/%7Bkey_id%7D",
                &t.admin_key,
            )
            .await
            .json()
            .await
            .unwrap();
        body["count"] == 1
            && body["records"][0]["key_id"] == "root"
            && body["records"][0]["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&ci_id))
    })
    .await;
    let issued: Value = app
        .get(
            "/api/v1/audit?operation=POST%20/api/v1/admin/tenants/%7Btenant_id%7D/keys",
            &t.admin_key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(issued["count"], 1, "{issued}");
    assert!(
        issued["records"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("ingest, read"),
        "{issued}"
    );

    // Time window: only what came after it (two creates and the revocation).
    let encoded = window.replace('+', "%2B");
    let recent: Value = app
        .get(&format!("/api/v1/audit?start_time={encoded}"), &t.admin_key)
        .await
        .json()
        .await
        .unwrap();
    let ops: Vec<&str> = recent["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["operation"].as_str().unwrap())
        .collect();
    assert!(
        ops.iter()
            .filter(|o| **o == "POST /api/v1/events/create")
            .count()
            == 2,
        "{ops:?}"
    );
    let before: Value = app
        .get(&format!("/api/v1/audit?end_time={encoded}"), &t.admin_key)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        before["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["at"].as_str().unwrap() <= window.as_str()),
        "{before}"
    );

    // Paging: two at a time, newest first, every record once.
    let all: Value = app
        .get("/api/v1/audit?limit=1000", &t.admin_key)
        .await
        .json()
        .await
        .unwrap();
    let everything: Vec<String> = all["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap().to_string())
        .collect();
    assert!(everything.len() >= 7, "{all}");
    assert_eq!(all["has_more"], false);
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/api/v1/audit?limit=2".to_string(),
            Some(c) => format!("/api/v1/audit?limit=2&cursor={c}"),
        };
        let page: Value = app.get(&path, &t.admin_key).await.json().await.unwrap();
        paged.extend(
            page["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["request_id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page["has_more"], true);
                cursor = Some(c.to_string());
            }
            None => break,
        }
    }
    // Listings audited after the full one are newer: they can only open the
    // walk, which then holds the full listing in order, each record once.
    assert!(paged.ends_with(&everything), "{paged:?} vs {everything:?}");
    let unique: std::collections::HashSet<&String> = paged.iter().collect();
    assert_eq!(unique.len(), paged.len(), "no record twice");

    let res = app.get("/api/v1/audit?cursor=soon", &t.admin_key).await;
    assert_eq!(res.status(), 400);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "/cursor", "{problem}");
}

#[tokio::test]
async fn an_unknown_audit_outcome_is_a_400_naming_the_allowed_values() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    // Positive control: a known outcome filters and answers 200.
    let res = app.get("/api/v1/audit?outcome=denied", &t.admin_key).await;
    assert_eq!(res.status(), 200);

    let res = app.get("/api/v1/audit?outcome=bogus", &t.admin_key).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.unwrap();
    let errors = problem["errors"].as_array().expect("field errors");
    assert_eq!(errors.len(), 1, "{problem}");
    assert_eq!(errors[0]["field"], "/outcome", "{problem}");
    let message = errors[0]["message"].as_str().unwrap();
    for allowed in [
        "success",
        "denied",
        "rejected",
        "error",
        "security_violation",
    ] {
        assert!(message.contains(allowed), "{message}");
    }
}
