//! Every 400 names all its bad fields, not just the first, as JSON
//! pointers: bodies
//! that are not the right shape, undecodable gzip, and query parameters
//! (named `/{parameter}`).

use std::io::Write;

use expect_test::{Expect, expect};
use herald_testkit::app::*;
use herald_testkit::{assert_problem, read_problem};
use serde_json::{Value, json};

/// The status, the sorted `errors[].field` and the body of a problem
/// answer (its content type and body `status` checked by the kit).
async fn named(res: reqwest::Response) -> (u16, Vec<String>, Value) {
    let p = read_problem(res).await;
    (p.status, p.fields, p.body)
}

/// A problem answer's whole body, pretty-printed, against a snapshot.
async fn check_problem(res: reqwest::Response, expected: Expect) {
    let p = read_problem(res).await;
    expected.assert_eq(&serde_json::to_string_pretty(&p.body).unwrap());
}

async fn raw(app: &TestApp, method: &str, path: &str, key: &str, body: &str) -> reqwest::Response {
    app.client
        .request(method.parse().unwrap(), app.url(path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_name_the_field_that_is_wrong() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let k = t.admin_key.as_str();
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("POST", "/api/v1/events/batch", "[]", &[""]),
        (
            "POST",
            "/api/v1/events/batch",
            r#"{"events": []}"#,
            &["/events"],
        ),
        (
            "POST",
            "/api/v1/events/batch",
            r#"{"events": "x"}"#,
            &["/events"],
        ),
        (
            "POST",
            "/api/v1/events/batch",
            r#"{"events": null}"#,
            &["/events"],
        ),
        (
            "POST",
            "/api/v1/events/batch",
            r#"{"evnts": []}"#,
            &["/events", "/evnts"],
        ),
        ("POST", "/api/v1/events/batch", r#""x""#, &[""]),
        ("POST", "/api/v1/events/query", "[]", &[""]),
        ("POST", "/api/v1/events/query", "42", &[""]),
        ("PUT", "/api/v1/settings", r#"["strict"]"#, &[""]),
    ];
    for (method, path, body, want) in cases {
        let (status, fields, p) = named(raw(&app, method, path, k, body).await).await;
        assert_eq!(status, 400, "{method} {path} {body}: {p}");
        assert_eq!(fields, *want, "{method} {path} {body}: {p}");
    }
    let (_, _, p) = named(
        raw(
            &app,
            "POST",
            "/api/v1/events/batch",
            k,
            r#"{"events": "x"}"#,
        )
        .await,
    )
    .await;
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("got string"),
        "{p}"
    );
    for path in [
        "/api/v1/admin/tenants",
        &format!("/api/v1/admin/tenants/{}/keys", t.tenant_id),
    ] {
        let (status, fields, p) = named(raw(&app, "POST", path, ROOT_KEY, "[1]").await).await;
        assert_eq!((status, fields), (400, vec![String::new()]), "{path}: {p}");
    }
}

#[tokio::test]
async fn an_undecodable_gzip_body_is_named() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(br#"{"event_type": "x", "category": "system"}"#)
        .unwrap();
    let mut truncated = gz.finish().unwrap();
    truncated.truncate(truncated.len() / 2);
    for body in [b"not gzip at all".to_vec(), truncated] {
        let res = app
            .client
            .post(app.url("/api/v1/events/create"))
            .bearer_auth(&t.admin_key)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, fields, p) = named(res).await;
        assert_eq!((status, fields), (400, vec![String::new()]), "{p}");
        assert_eq!(p["errors"][0]["kind"], "syntax", "{p}");
        assert!(
            p["errors"][0]["message"].as_str().unwrap().contains("gzip"),
            "{p}"
        );
    }
}

#[tokio::test]
async fn bad_query_parameters_are_all_named() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let k = t.admin_key.as_str();
    let created = app
        .post(
            "/api/v1/event-definitions",
            k,
            &json!({"event_type": "order.created", "category": "business"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let def = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "GET",
            "/api/v1/audit?nope=1&limit=0&start_time=yesterday".into(),
            vec!["/limit", "/nope", "/start_time"],
        ),
        ("GET", "/api/v1/audit?limit=ten".into(), vec!["/limit"]),
        (
            "GET",
            "/api/v1/audit?key_id=a&key_id=b".into(),
            vec!["/key_id"],
        ),
        (
            "GET",
            format!("/api/v1/event-definitions/{def}?version=0&nope=1"),
            vec!["/nope", "/version"],
        ),
        (
            "GET",
            format!("/api/v1/event-definitions/{def}?version=x"),
            vec!["/version"],
        ),
        (
            "GET",
            format!("/api/v1/event-definitions/{def}?versions=2"),
            vec!["/versions"],
        ),
        (
            "PUT",
            format!("/api/v1/event-definitions/{def}?allow_breaking=maybe&nope=1"),
            vec!["/allow_breaking", "/nope"],
        ),
        (
            "PUT",
            format!("/api/v1/event-definitions/{def}?force=true"),
            vec!["/force"],
        ),
        (
            "GET",
            "/api/v1/event-definitions?nope=1&limit=x&category=finance".into(),
            vec!["/category", "/limit", "/nope"],
        ),
    ];
    let body = r#"{"event_type": "order.created", "category": "business"}"#;
    for (method, path, want) in cases {
        let (status, fields, p) = named(raw(&app, method, &path, k, body).await).await;
        assert_eq!(status, 400, "{method} {path}: {p}");
        assert_eq!(fields, want, "{method} {path}: {p}");
    }
    // An unknown parameter's message lists the known ones.
    let (_, _, p) = named(app.get("/api/v1/audit?operaton=x", k).await).await;
    assert!(
        p["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("operation"),
        "{p}"
    );
}

#[tokio::test]
async fn a_path_that_does_not_decode_is_a_problem_json_404() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    for (method, path, key) in [
        (
            "GET",
            "/api/v1/events/%FF".to_string(),
            t.admin_key.as_str(),
        ),
        (
            "GET",
            "/api/v1/event-definitions/%FF".into(),
            t.admin_key.as_str(),
        ),
        (
            "PUT",
            "/api/v1/event-definitions/%FF".into(),
            t.admin_key.as_str(),
        ),
        ("POST", "/api/v1/admin/tenants/%FF/keys".into(), ROOT_KEY),
        (
            "DELETE",
            format!("/api/v1/admin/tenants/{}/keys/%FF", t.tenant_id),
            ROOT_KEY,
        ),
    ] {
        let res = raw(&app, method, &path, key, "{}").await;
        assert_problem(res, 404, "Not found", &[]).await;
    }
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_a_problem_json_405_with_allow() {
    let app = spawn_app().await;
    let res = app.get("/api/v1/events/create", ROOT_KEY).await;
    assert_eq!(res.headers()["allow"], "POST");
    assert_problem(res, 405, "Method not allowed", &[]).await;
}

#[tokio::test]
async fn an_invalid_event_is_one_problem_naming_every_bad_field() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let res = app
        .post(
            "/api/v1/events/create",
            &t.admin_key,
            &json!({"event_type": "order.created", "category": "business",
                    "timestamp": "yesterday", "event_source": "fax",
                    "outcome": {"status": "maybe"}}),
        )
        .await;
    check_problem(res, expect![[r#"
        {
          "type": "urn:herald:problem:validation",
          "title": "Invalid input",
          "status": 400,
          "detail": "the event has 3 invalid fields",
          "errors": [
            {
              "field": "/event_source",
              "message": "`fax` is not allowed; expected one of: frontend, backend, system, iot_device, external_api, scheduled",
              "kind": "invalid_value"
            },
            {
              "field": "/timestamp",
              "message": "expected an RFC 3339 timestamp like 2025-12-30T10:00:00Z, got `yesterday` (the 'year' component could not be parsed)",
              "kind": "invalid_value"
            },
            {
              "field": "/outcome/status",
              "message": "`maybe` is not allowed; expected one of: success, failure, pending",
              "kind": "invalid_value"
            }
          ]
        }"#]]).await;
}

#[tokio::test]
async fn a_missing_key_and_an_unknown_route_are_problems_too() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/api/v1/events/create"))
        .json(&event("x", "system"))
        .send()
        .await
        .unwrap();
    check_problem(
        res,
        expect![[r#"
        {
          "type": "urn:herald:problem:unauthorized",
          "title": "Missing or invalid API key",
          "status": 401,
          "detail": "send your API key as `Authorization: Bearer <key>`"
        }"#]],
    )
    .await;
    let res = app.get("/api/v1/nowhere", ROOT_KEY).await;
    check_problem(
        res,
        expect![[r#"
        {
          "type": "urn:herald:problem:not-found",
          "title": "Not found",
          "status": 404,
          "detail": "no such route; see GET /api/openapi.json"
        }"#]],
    )
    .await;
    let res = app.get("/api/v1/events/create", ROOT_KEY).await;
    check_problem(
        res,
        expect![[r#"
        {
          "type": "urn:herald:problem:method-not-allowed",
          "title": "Method not allowed",
          "status": 405,
          "detail": "/api/v1/events/create does not take GET; see GET /api/openapi.json"
        }"#]],
    )
    .await;
}
