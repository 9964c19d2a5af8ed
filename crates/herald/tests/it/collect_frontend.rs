//! Browser collection over real HTTP: write keys (query, header, body),
//! text/plain bodies, the client context (socket address, trusted
//! proxies, the IP policy), CORS and refusals per the key's allowed
//! origins, rate limits, batches, repeats, scopes and the health route.

use herald_testkit::Backend;
use herald_testkit::app::*;
use herald_testkit::problem::read_problem;
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    a_browser_event_is_stored_with_the_client_context,
    a_batch_merges_client_info_and_answers_207_for_rejected_events,
);

const ORIGIN: &str = "https://shop.example";

/// A write key of `t` (only the `collect` scope) allowing `origins`.
async fn write_key(app: &TestApp, t: &Tenant, origins: Option<&[&str]>) -> (String, String) {
    let res = app
        .post(
            &format!("/api/v1/admin/tenants/{}/keys", t.tenant_id),
            ROOT_KEY,
            &json!({ "name": "site", "scopes": ["collect"], "allowed_origins": origins }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["collect"]["allowed_origins"], json!(origins));
    (
        body["api_key"].as_str().unwrap().to_string(),
        body["key_id"].as_str().unwrap().to_string(),
    )
}

fn frontend(app: &TestApp, path: &str, key: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("{path}?writeKey={key}")))
        .header("user-agent", "Mozilla/5.0 (test)")
        .header("referer", "https://shop.example/cart")
}

async fn stored(app: &TestApp, t: &Tenant, id: &str) -> Value {
    let res = app.get(&format!("/api/v1/events/{id}"), &t.admin_key).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn a_browser_event_is_stored_with_the_client_context(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("Acme").await;
    let (key, _) = write_key(&app, &t, Some(&[ORIGIN])).await;
    let event = json!({
        "event_type": "button_clicked", "event_category": "click", "user_id": "u1",
        "anonymous_id": "anon-1", "session_id": "sess-1", "page_url": "https://shop.example/p/1",
        "timestamp": "2026-01-02T03:04:05Z", "data": {"button": "buy"},
        "context": {"ip": "6.6.6.6"}, "stream_id": "order:1"
    });
    let res = frontend(&app, "/api/v1/events/frontend", &key)
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let id = body["event_id"].as_str().unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let e = stored(&app, &t, id).await;
    assert_eq!(e["event_type"], "button_clicked");
    assert_eq!(e["event_source"], "frontend");
    assert_eq!(e["category"], "business");
    assert_eq!(e["actor"]["user_id"], "u1");
    assert_eq!(e["actor"]["anonymous_id"], "anon-1");
    assert_eq!(e["object"]["session_id"], "sess-1");
    assert_eq!(e["context"]["page_url"], "https://shop.example/p/1");
    // The socket's address, truncated by default; what the body claimed is kept apart.
    assert_eq!(e["context"]["ip"], "127.0.0.0");
    assert_eq!(e["context"]["user_agent"], "Mozilla/5.0 (test)");
    assert_eq!(e["context"]["referer"], "https://shop.example/cart");
    assert_eq!(e["metadata"]["client_reported"]["ip"], "6.6.6.6");
    // A public key cannot place events in a stream.
    assert!(e["stream_id"].is_null(), "{e}");
    assert_eq!(e["metadata"]["unknown_fields"]["stream_id"], "order:1");

    // text/plain (sendBeacon), the key in the body; a retry of the same
    // idempotency key answers the first event's id with 200.
    let beacon = json!({"event_type": "page_viewed", "writeKey": key, "idempotency_key": "b-1"});
    let send = || {
        app.client
            .post(app.url("/api/v1/events/frontend"))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(beacon.to_string())
            .send()
    };
    let first = send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), first);

    // HTTP Basic (`key:`), as analytics SDKs send it.
    let res = app
        .client
        .post(app.url("/api/v1/events/frontend"))
        .basic_auth(&key, Some(""))
        .json(&json!({"event_type": "signed_up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // The core's validation answers as everywhere: every bad field named.
    let res = frontend(&app, "/api/v1/events/frontend", &key)
        .json(&json!({"event_category": "nonsense", "timestamp": "yesterday"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let fields = read_problem(res).await.fields;
    for f in ["/event_type", "/event_category", "/timestamp"] {
        assert!(fields.iter().any(|x| x == f), "{f} in {fields:?}");
    }
}

async fn a_batch_merges_client_info_and_answers_207_for_rejected_events(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("Acme").await;
    let (key, _) = write_key(&app, &t, None).await;
    let batch = json!({
        "events": [
            {"event_type": "a", "context": {"locale": "de-DE"}},
            {"event_type": "b", "idempotency_key": "k-b"}
        ],
        "client_info": {"locale": "en-US", "screen": "1920x1080"}
    });
    let res = frontend(&app, "/api/v1/events/frontend/batch", &key)
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["count"], 2);
    assert_eq!(body["errors"], json!([]));
    let a = stored(&app, &t, body["event_ids"][0].as_str().unwrap()).await;
    assert_eq!(
        a["context"]["locale"], "de-DE",
        "the event's own context wins"
    );
    assert_eq!(a["context"]["screen"], "1920x1080");
    let b_id = body["event_ids"][1].clone();

    // One bad, one repeat, one new: 207, the bad one named by index.
    let res = frontend(&app, "/api/v1/events/frontend/batch", &key)
        .json(&json!({"events": [
            {"event_category": "nope"},
            {"event_type": "b", "idempotency_key": "k-b"},
            {"event_type": "c"}
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 207);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["count"], 1);
    assert_eq!(body["event_ids"][0], Value::Null);
    assert_eq!(body["event_ids"][1], b_id);
    assert!(body["event_ids"][2].is_string());
    assert_eq!(body["errors"][0]["index"], 0);
    assert_eq!(body["errors"][0]["status"], 400);
    let pointers: Vec<&str> = body["errors"][0]["error"]["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        pointers.contains(&"/event_type") && pointers.contains(&"/event_category"),
        "{pointers:?}"
    );

    // The wrapper's problems, all at once; an empty batch.
    let res = frontend(&app, "/api/v1/events/frontend/batch", &key)
        .json(&json!({"client_info": 3, "extra": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let fields = read_problem(res).await.fields;
    assert_eq!(fields, ["/client_info", "/events", "/extra"]);
    let res = frontend(&app, "/api/v1/events/frontend/batch", &key)
        .json(&json!({"events": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn cors_answers_only_the_origins_a_key_allows() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (key, key_id) = write_key(&app, &t, Some(&[ORIGIN])).await;
    let (bare, bare_id) = write_key(&app, &t, None).await;
    let preflight = |key: &str, origin: &str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                app.url(&format!("/api/v1/events/frontend?writeKey={key}")),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    // An allowed origin: the preflight names it; the request is stored and readable.
    let res = preflight(&key, ORIGIN).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);
    assert!(
        res.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let res = frontend(&app, "/api/v1/events/frontend", &key)
        .header("origin", ORIGIN)
        .json(&json!({"event_type": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["access-control-allow-origin"], ORIGIN);

    // Another origin: no CORS grant, and the request itself is refused
    // (a text/plain POST needs no preflight, so the answer is what stops it).
    let res = preflight(&key, "https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = frontend(&app, "/api/v1/events/frontend", &key)
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(json!({"event_type": "a"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("not among"),
        "{problem}"
    );

    // A key without origins: browsers are refused with how to set them;
    // servers (no Origin) are not.
    let res = preflight(&bare, ORIGIN).await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = frontend(&app, "/api/v1/events/frontend", &bare)
        .header("origin", ORIGIN)
        .json(&json!({"event_type": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let problem: Value = res.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("keys/{bare_id}/collect")) && detail.contains("allowed_origins"),
        "{detail}"
    );
    let res = frontend(&app, "/api/v1/events/frontend", &bare)
        .json(&json!({"event_type": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // Origins change later and take effect at once; `*` allows any.
    let res = app
        .put(
            &format!(
                "/api/v1/admin/tenants/{}/keys/{bare_id}/collect",
                t.tenant_id
            ),
            &t.admin_key,
            &json!({"allowed_origins": ["*"]}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["allowed_origins"], json!(["*"]));
    assert_eq!(body["webhook_secret_set"], false);
    let res = preflight(&bare, "https://any.example").await.unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://any.example"
    );
    let res = frontend(&app, "/api/v1/events/frontend", &bare)
        .header("origin", "https://any.example")
        .json(&json!({"event_type": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    // Bad settings are named, every one; another tenant's key is not found.
    let res = app
        .put(
            &format!("/api/v1/admin/tenants/{}/keys/{key_id}/collect", t.tenant_id),
            ROOT_KEY,
            &json!({"allowed_origins": ["https://ok.example", "https://x.example/path", 3], "webhook_secret": "short", "zz": 1}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let fields = read_problem(res).await.fields;
    assert_eq!(
        fields,
        [
            "/allowed_origins/1",
            "/allowed_origins/2",
            "/webhook_secret",
            "/zz"
        ]
    );
    let other = app.tenant("Globex").await;
    let res = app
        .put(
            &format!(
                "/api/v1/admin/tenants/{}/keys/{key_id}/collect",
                other.tenant_id
            ),
            &other.admin_key,
            &json!({"allowed_origins": ["*"]}),
        )
        .await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn a_write_key_only_collects() {
    let app = spawn_app().await;
    let t = app.tenant("Acme").await;
    let (key, _) = write_key(&app, &t, None).await;
    // A write key cannot read, query or use the native ingest routes.
    assert_eq!(
        app.post("/api/v1/events/query", &key, &json!({}))
            .await
            .status(),
        403
    );
    assert_eq!(
        app.create(&key, &json!({"event_type": "x", "category": "system"}))
            .await
            .0,
        403
    );
    // Collection needs the collect scope; no key or an unknown one is 401.
    let ingest = app.key(&t, &["ingest", "read"]).await;
    let send = |k: Option<String>| {
        let url = match k {
            Some(k) => app.url(&format!("/api/v1/events/frontend?writeKey={k}")),
            None => app.url("/api/v1/events/frontend"),
        };
        app.client
            .post(url)
            .json(&json!({"event_type": "a"}))
            .send()
    };
    assert_eq!(send(Some(ingest)).await.unwrap().status(), 403);
    let res = send(None).await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(send(Some("hk_nope".into())).await.unwrap().status(), 401);
    // An unknown query parameter is named.
    let res = app
        .client
        .post(app.url(&format!("/api/v1/events/frontend?writeKey={key}&debug=1")))
        .json(&json!({"event_type": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(read_problem(res).await.fields, ["/debug"]);
    // Not JSON, whatever the type says; a type that is neither JSON nor text.
    let res = app
        .client
        .post(app.url(&format!("/api/v1/events/frontend?writeKey={key}")))
        .header("content-type", "text/plain")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = app
        .client
        .post(app.url(&format!("/api/v1/events/frontend?writeKey={key}")))
        .header("content-type", "application/xml")
        .body("<a/>")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 415);
    // The health route is open.
    let res = app
        .client
        .get(app.url("/api/v1/events/frontend/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["collection"], "accepting");
    assert_eq!(body["nats"]["configured"], false);
}

#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies_and_the_ip_policy_applies() {
    // The test client connects from 127.0.0.1: trusted here.
    let app = spawn_with(|c| {
        c.collect_trusted_proxies = "127.0.0.1".into();
        c.collect_client_ip = "keep".into();
    })
    .await;
    let t = app.tenant("Acme").await;
    let (key, _) = write_key(&app, &t, None).await;
    let ip_of = |xff: &'static str| {
        let (app, t, key) = (&app, &t, key.clone());
        async move {
            let res = frontend(app, "/api/v1/events/frontend", &key)
                .header("x-forwarded-for", xff)
                .json(&json!({"event_type": "a"}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
            let id = res.json::<Value>().await.unwrap()["event_id"]
                .as_str()
                .unwrap()
                .to_string();
            stored(app, t, &id).await["context"]["ip"].clone()
        }
    };
    assert_eq!(ip_of("6.6.6.6, 198.51.100.7").await, "198.51.100.7");

    // Not trusted: the header is the client's claim, ignored.
    let app = spawn_with(|c| c.collect_client_ip = "hash".into()).await;
    let t = app.tenant("Acme").await;
    let (key, _) = write_key(&app, &t, None).await;
    let res = frontend(&app, "/api/v1/events/frontend", &key)
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({"event_type": "a"}))
        .send()
        .await
        .unwrap();
    let id = res.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ip = stored(&app, &t, &id).await["context"]["ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        ip.starts_with("ip_hash:") && !ip.contains("127.0.0.1"),
        "{ip}"
    );

    let app = spawn_with(|c| c.collect_client_ip = "drop".into()).await;
    let t = app.tenant("Acme").await;
    let (key, _) = write_key(&app, &t, None).await;
    let res = frontend(&app, "/api/v1/events/frontend", &key)
        .json(&json!({"event_type": "a", "context": {"ip": "6.6.6.6"}}))
        .send()
        .await
        .unwrap();
    let id = res.json::<Value>().await.unwrap()["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = stored(&app, &t, &id).await;
    assert!(e["context"]["ip"].is_null(), "{e}");
    assert_eq!(e["metadata"]["client_reported"]["ip"], "6.6.6.6");
}

/// Sends up to 20 requests, each with the next of `keys` (cycling), until
/// one is refused; the successes before it must fit the burst (one second
/// of `rate`) plus what refilled meanwhile. Returns the refusal.
async fn until_refused(app: &TestApp, keys: &[String], rate: u32) -> reqwest::Response {
    let started = std::time::Instant::now();
    for i in 0..20 {
        let res = frontend(app, "/api/v1/events/frontend", &keys[i % keys.len()])
            .json(&json!({"event_type": "a"}))
            .send()
            .await
            .unwrap();
        if res.status() == 429 {
            let refilled = (started.elapsed().as_secs_f64() * f64::from(rate)).ceil() as usize;
            assert!(i >= rate as usize, "refused after only {i} requests");
            assert!(i <= rate as usize + refilled, "{i} requests passed");
            return res;
        }
        assert_eq!(res.status(), 201);
    }
    panic!("20 requests and none refused");
}

#[tokio::test]
async fn rate_limits_per_write_key_and_per_client_address_answer_429() {
    let app = spawn_with(|c| c.collect_key_rate = 3).await;
    let t = app.tenant("Acme").await;
    let (k1, _) = write_key(&app, &t, None).await;
    let res = until_refused(&app, std::slice::from_ref(&k1), 3).await;
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(retry, 1, "a token is at most a third of a second away");
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("write key"),
        "{problem}"
    );
    // Another key is not held back by the first one's limit.
    let (k2, _) = write_key(&app, &t, None).await;
    assert_eq!(
        frontend(&app, "/api/v1/events/frontend", &k2)
            .json(&json!({"event_type": "a"}))
            .send()
            .await
            .unwrap()
            .status(),
        201
    );

    // Per client address: fresh keys do not get around it.
    let app = spawn_with(|c| c.collect_ip_rate = 3).await;
    let t = app.tenant("Acme").await;
    let mut keys = Vec::new();
    for _ in 0..4 {
        keys.push(write_key(&app, &t, None).await.0);
    }
    let res = until_refused(&app, &keys, 3).await;
    assert!(res.headers().contains_key("retry-after"));
    let problem: Value = res.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("client address"),
        "{problem}"
    );
}
