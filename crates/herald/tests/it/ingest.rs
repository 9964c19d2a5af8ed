//! Create, batch, idempotency, errors and limits, gzip, processing worker,
//! graceful shutdown.

use std::io::Write;

use serde_json::{Value, json};

use herald_testkit::app::*;

#[tokio::test]
async fn create_returns_201_with_seed_003_and_canonical_fields() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (status, e) = app
        .create(
            &t.admin_key,
            &json!({
                "event_type": "user.registered", "event_source": "backend", "event_category": "user_lifecycle",
                "user_id": "user_123", "data": {"email": "user@example.com", "plan": "premium"},
                "metadata": {}, "context": {}, "timestamp": "2025-12-30T10:00:00.123456+02:00"
            }),
        )
        .await;
    assert_eq!(status, 201, "{e}");
    for field in [
        "event_id",
        "event_type",
        "event_source",
        "event_category",
        "user_id",
        "data",
        "status",
        "timestamp",
        "created_at",
    ] {
        assert!(
            !e[field].is_null(),
            "EventResponse field {field} missing: {e}"
        );
    }
    assert_eq!(e["status"], "pending");
    assert_eq!(e["category"], "business", "derived from event_category");
    assert_eq!(e["tenant_id"], t.tenant_id.as_str());
    assert_eq!(
        e["timestamp"], "2025-12-30T10:00:00.123456+02:00",
        "kept exactly"
    );
    assert_eq!(e["data"]["plan"], "premium");
    assert!(
        !e.to_string().contains("user@example.com"),
        "emails never stored: {e}"
    );
    assert_eq!(e["actor"]["email_hash"].as_str().unwrap().len(), 64);

    let got: Value = app
        .get(
            &format!("/api/v1/events/{}", e["event_id"].as_str().unwrap()),
            &t.admin_key,
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["event_id"], e["event_id"]);
    assert_eq!(got["data"], e["data"]);

    // The answer's shape holds for a bare event too: the keys are there, null.
    let (status, bare) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "x", "category": "system"}),
        )
        .await;
    assert_eq!(status, 201, "{bare}");
    for field in ["event_category", "user_id"] {
        assert!(
            bare.as_object().unwrap().get(field) == Some(&Value::Null),
            "{field} should be null: {bare}"
        );
    }
}

#[tokio::test]
async fn invalid_events_name_every_bad_field_and_malformed_json_points_at_the_position() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let res = app
        .post("/api/v1/events/create", &t.admin_key, &json!({"category": "finance", "event_source": "fax", "outcome": {"status": "meh"}, "timestamp": "yesterday"}))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
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
            "/event_source",
            "/event_type",
            "/outcome/status",
            "/timestamp"
        ],
        "{p}"
    );
    let cat = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["field"] == "/category")
        .unwrap();
    assert!(
        cat["message"]
            .as_str()
            .unwrap()
            .contains("business, system, delivery, security")
    );

    let res = app
        .client
        .post(app.url("/api/v1/events/create"))
        .bearer_auth(&t.admin_key)
        .header("content-type", "application/json")
        .body("{\n  \"event_type\": \"x\",\n  \"category\": system\n}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let p: Value = res.json().await.unwrap();
    let msg = p["errors"][0]["message"].as_str().unwrap();
    assert!(msg.contains("line 3"), "{msg}");

    // Built-in vocabulary: a system action under business is refused.
    let (status, p) = app
        .create(&t.admin_key, &event("db_error", "business"))
        .await;
    assert_eq!(status, 400);
    assert_eq!(p["errors"][0]["field"], "/event_type");
}

#[tokio::test]
async fn limits_answer_413_and_say_the_limit_and_non_json_is_415() {
    let app = spawn_with(|c| {
        c.max_event_bytes = 1024;
        c.max_batch_events = 3;
        c.max_batch_bytes = 4096;
    })
    .await;
    let t = app.tenant("Acme").await;
    let big = json!({"event_type": "x", "category": "system", "data": {"blob": "a".repeat(1500)}});
    let (status, p) = app.create(&t.admin_key, &big).await;
    assert_eq!(status, 413);
    assert!(
        p["errors"][0]["message"].as_str().unwrap().contains("1024"),
        "{p}"
    );

    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &json!([
                event("a", "system"),
                event("b", "system"),
                event("c", "system"),
                event("d", "system")
            ]),
        )
        .await;
    assert_eq!(res.status(), 413);
    let p: Value = res.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("limit is 3"), "{p}");

    let res = app.post("/api/v1/events/batch", &t.admin_key, &json!({"events": [{"event_type": "x", "category": "system", "data": "b".repeat(5000)}]})).await;
    assert_eq!(res.status(), 413);

    let res = app
        .client
        .post(app.url("/api/v1/events/create"))
        .bearer_auth(&t.admin_key)
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn a_413_states_the_configured_limit_however_far_over_the_body_is() {
    let app = spawn_with(|c| c.max_event_bytes = 1024).await;
    let t = app.tenant("Acme").await;
    // Just over the limit, and over twice the limit (past the slack the
    // route reads to measure a body), plain and gzip-compressed.
    for blob in [1500, 3000, 50_000] {
        let body = serde_json::to_vec(
            &json!({"event_type": "x", "category": "system", "data": {"blob": "a".repeat(blob)}}),
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&body).unwrap();
        for (encoding, bytes) in [("identity", body.clone()), ("gzip", gz.finish().unwrap())] {
            let res = app
                .client
                .post(app.url("/api/v1/events/create"))
                .bearer_auth(&t.admin_key)
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 413, "{blob} bytes, {encoding}");
            assert_eq!(res.headers()["content-type"], "application/problem+json");
            let p: Value = res.json().await.unwrap();
            let text = p.to_string();
            assert!(
                p["errors"][0]["message"].as_str().unwrap().contains("1024"),
                "{blob} bytes, {encoding}: {p}"
            );
            assert!(
                !text.contains("2048"),
                "{blob} bytes, {encoding}: states the read cap, not the limit: {p}"
            );
            assert_eq!(p["errors"][0]["kind"], "too_large", "{p}");
        }
    }
}

#[tokio::test]
async fn gzip_bodies_are_accepted_and_bombs_are_capped() {
    let app = spawn_with(|c| c.max_batch_bytes = 64 * 1024).await;
    let t = app.tenant("Acme").await;
    let gz = |bytes: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    };
    let body = serde_json::to_vec(&json!([event("a", "system"), event("b", "system")])).unwrap();
    let res = app
        .client
        .post(app.url("/api/v1/events/batch"))
        .bearer_auth(&t.admin_key)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz(&body))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // 10 MB of zeros gzip to ~10 KB; decoding stops at the limit.
    let bomb = gz(&vec![b' '; 10 * 1024 * 1024]);
    let res = app
        .client
        .post(app.url("/api/v1/events/batch"))
        .bearer_auth(&t.admin_key)
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let res = app
        .client
        .post(app.url("/api/v1/events/create"))
        .bearer_auth(&t.admin_key)
        .header("content-encoding", "br")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
}

#[tokio::test]
async fn batch_answers_item_by_item_in_request_order() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &json!({"events": [
                event("first", "system"),
                {"category": "nope"},
                {"event_type": "dup", "category": "system", "message_id": "m-1"},
                {"event_type": "dup", "category": "system", "messageId": "m-1"},
                "not an object",
            ]}),
        )
        .await;
    assert_eq!(res.status(), 207);
    let body: Value = res.json().await.unwrap();
    let statuses: Vec<u64> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![201, 400, 201, 200, 400], "{body}");
    let r = &body["results"];
    assert_eq!(
        r[3]["event_id"], r[2]["event_id"],
        "the in-batch duplicate returns the first"
    );
    assert!(r[1]["error"]["errors"].as_array().unwrap().len() >= 2);
    assert_eq!(
        (
            body["stored"].as_u64(),
            body["duplicates"].as_u64(),
            body["rejected"].as_u64()
        ),
        (Some(2), Some(1), Some(2))
    );

    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &json!([event("a", "system"), event("b", "system")]),
        )
        .await;
    assert_eq!(
        res.status(),
        201,
        "a bare array works and all-stored is 201"
    );
    assert_eq!(app.query(&t.admin_key, &json!({})).await["total"], 4);
}

#[tokio::test]
async fn idempotency_key_returns_the_first_event_with_200_even_after_restart() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let body = json!({"event_type": "order.created", "category": "business", "idempotency_key": "order-77"});
    let (s1, first) = app.create(&t.admin_key, &body).await;
    let (s2, second) = app.create(&t.admin_key, &body).await;
    assert_eq!((s1, s2), (201, 200));
    assert_eq!(first["event_id"], second["event_id"]);

    let app2 = app.restart().await;
    let (s3, third) = app2.create(&t.admin_key, &body).await;
    assert_eq!(s3, 200);
    assert_eq!(third["event_id"], first["event_id"]);
    assert_eq!(app2.query(&t.admin_key, &json!({})).await["total"], 1);
}

#[tokio::test]
async fn status_worker_moves_events_to_processed_and_records_the_duration() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (_, e) = app.create(&t.admin_key, &event("x", "system")).await;
    let path = format!("/api/v1/events/{}", e["event_id"].as_str().unwrap());
    app.eventually("event processed", || async {
        let got: Value = app.get(&path, &t.admin_key).await.json().await.unwrap();
        got["status"] == "processed"
            && got["processing_ms"].as_f64().is_some()
            && got["processed_at"].is_string()
    })
    .await;
    let q = app
        .query(&t.admin_key, &json!({"status": "processed"}))
        .await;
    assert_eq!(q["total"], 1);
}

#[tokio::test]
async fn graceful_shutdown_commits_everything_acknowledged() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let (status, e) = app
            .create(
                &t.admin_key,
                &json!({"event_type": "x", "category": "system", "data": {"i": i}}),
            )
            .await;
        assert_eq!(status, 201);
        ids.push(e["event_id"].as_str().unwrap().to_string());
    }
    let app2 = app.restart().await;
    for id in &ids {
        assert_eq!(
            app2.get(&format!("/api/v1/events/{id}"), &t.admin_key)
                .await
                .status(),
            200
        );
    }
    assert!(app2.stop().await.is_ok(), "stops cleanly");
}

#[tokio::test]
async fn prefer_return_minimal_acknowledges_with_ids_only() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let res = app
        .client
        .post(app.url("/api/v1/events/batch"))
        .bearer_auth(&t.admin_key)
        .header("prefer", "return=minimal")
        .json(&json!([event("a", "system"), {"category": "nope"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 207);
    assert_eq!(res.headers()["preference-applied"], "return=minimal");
    let body: Value = res.json().await.unwrap();
    assert!(body["results"][0]["event_id"].is_string());
    assert!(body["results"][0].get("event").is_none(), "{body}");
    assert!(
        body["results"][1]["error"]["errors"].is_array(),
        "rejections still say why"
    );

    let res = app
        .client
        .post(app.url("/api/v1/events/create"))
        .bearer_auth(&t.admin_key)
        .header("prefer", "respond-async, return=minimal")
        .json(&event("b", "system"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
    let id = body["event_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("/api/v1/events/{id}"), &t.admin_key)
            .await
            .status(),
        200
    );
}
