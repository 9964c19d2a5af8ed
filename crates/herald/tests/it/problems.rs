//! Every 400 names its bad fields as JSON pointers (DESIGN.md §3): query
//! parameters (named `/{parameter}`).

use serde_json::{Value, json};

use crate::helpers::*;

/// The status and the sorted `errors[].field` of a problem answer.
async fn named(res: reqwest::Response) -> (u16, Vec<String>, Value) {
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "status {status}"
    );
    let p: Value = res.json().await.unwrap();
    let mut fields: Vec<String> = p["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|e| e["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    fields.sort();
    (status, fields, p)
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
