//! Processors end to end on the real server, on both stores, with a real
//! webhook receiver on 127.0.0.1 (and NATS when it is configured): the
//! order they run in, each type's success and failure, a failing event
//! retried, dead-lettered, redriven and processed, toggling, and bad
//! definitions.

use std::time::Duration;

use herald_testkit::problem::assert_problem;
use herald_testkit::receiver::WebhookReceiver;
use herald_testkit::{Backend, NatsStream, TestApp, nats_url, spawn_on};
use herald_workers::delivery::signature::WebhookSecret;
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    processors_run_by_priority_and_their_results_are_on_the_event,
    a_failing_event_is_retried_dead_lettered_redriven_and_processed,
    a_processor_turned_off_is_not_applied_to_later_events,
    a_nats_processor_publishes_and_failures_send_processed_failed,
);

const WAIT: Duration = Duration::from_secs(20);

async fn app(backend: Backend) -> TestApp {
    spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await
}

async fn register(app: &TestApp, key: &str, body: Value) -> Value {
    let res = app.post("/api/v1/events/processors", key, &body).await;
    let status = res.status();
    let out: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{out}");
    out
}

async fn create(app: &TestApp, key: &str, body: Value) -> String {
    let (status, out) = app.create(key, &body).await;
    assert_eq!(status, 201, "{out}");
    out["event_id"].as_str().unwrap().to_string()
}

async fn get_json(app: &TestApp, path: &str, key: &str) -> Value {
    let res = app.get(path, key).await;
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

/// The event once its status is `status`.
async fn event_when(app: &TestApp, key: &str, id: &str, status: &str) -> Value {
    herald_testkit::wait::wait_for(&format!("event {id} {status}"), WAIT, || async {
        let e = get_json(app, &format!("/api/v1/events/{id}"), key).await;
        if e["status"] == status {
            Ok(e)
        } else {
            Err(e.to_string())
        }
    })
    .await
}

async fn processors_run_by_priority_and_their_results_are_on_the_event(backend: Backend) {
    let mut receiver = WebhookReceiver::start().await;
    receiver.respond_body(r#"{"score": 7}"#);
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let risk = register(
        &app,
        &t.admin_key,
        json!({
            "processor_name": "risk", "processor_type": "enrich", "priority": 10,
            "filters": {"event_types": ["order.*"]},
            "config": {"fields": {"risk": "event.data.amount > 1000 ? 'high' : 'low'", "double": "event.data.amount * 2"}},
        }),
    )
    .await;
    let scorer = register(
        &app,
        &t.admin_key,
        json!({
            "processor_name": "scorer", "processor_type": "webhook", "priority": 5,
            "filters": {"event_types": ["order.>"], "filter": "event.data.amount > 100"},
            "config": {"url": format!("{}/score", receiver.url), "timeout_ms": 2000},
        }),
    )
    .await;
    let secret = WebhookSecret::parse(scorer["webhook_secret"].as_str().unwrap()).unwrap();
    assert!(risk.get("webhook_secret").is_none(), "{risk}");
    register(
        &app,
        &t.admin_key,
        json!({
            "processor_name": "tag", "processor_type": "enrich", "priority": 1,
            "filters": {"event_categories": ["business"]},
            "config": {"fields": {"tag": "'seen'"}},
        }),
    )
    .await;

    let id = create(
        &app,
        &t.admin_key,
        json!({"event_type": "order.placed", "category": "business", "data": {"amount": 1500}}),
    )
    .await;
    let call = receiver.next("the scorer's call", WAIT).await;
    let body = crate::delivery::verified(&call, &secret);
    assert_eq!(body["event_id"], id.as_str());
    let event = event_when(&app, &t.admin_key, &id, "processed").await;
    let results = event["processing_results"].as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["processor_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["risk", "scorer", "tag"], "{event}");
    assert!(results.iter().all(|r| r["status"] == "success"), "{event}");
    assert_eq!(
        results[0]["result"],
        json!({"risk": "high", "double": 3000})
    );
    assert_eq!(results[1]["result"], json!({"score": 7}));
    assert_eq!(results[2]["result"], json!({"tag": "seen"}));
    // They ran in priority order: each finished no earlier than the one before.
    let finished: Vec<String> = results
        .iter()
        .map(|r| r["finished_at"].as_str().unwrap().to_string())
        .collect();
    let parsed: Vec<i64> = finished
        .iter()
        .map(|t| herald_core::Timestamp::parse(t).unwrap().unix_micros())
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "{finished:?}");
    assert!(event["processed_at"].is_string(), "{event}");

    // A query answer carries the same results.
    let page = app
        .query(&t.admin_key, &json!({"event_type": "order.placed"}))
        .await;
    assert_eq!(page["events"][0]["processing_results"], json!(results));

    // An event no processor matches is processed with no results; one the
    // webhook's filter leaves out runs the others only.
    let plain = create(
        &app,
        &t.admin_key,
        json!({"event_type": "user.login", "category": "security"}),
    )
    .await;
    let small = create(
        &app,
        &t.admin_key,
        json!({"event_type": "order.placed", "category": "business", "data": {"amount": 5}}),
    )
    .await;
    let e = event_when(&app, &t.admin_key, &plain, "processed").await;
    assert!(e.get("processing_results").is_none(), "{e}");
    let e = event_when(&app, &t.admin_key, &small, "processed").await;
    let names: Vec<&str> = e["processing_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["processor_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["risk", "tag"], "{e}");
    assert_eq!(e["processing_results"][0]["result"]["risk"], "low");

    // The listing shows all three, another tenant none.
    let list = get_json(&app, "/api/v1/events/processors", &t.admin_key).await;
    assert_eq!(list["count"], 3, "{list}");
    assert!(
        list["processors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("webhook_secret").is_none())
    );
    let other = app.tenant("globex").await;
    let list = get_json(&app, "/api/v1/events/processors", &other.admin_key).await;
    assert_eq!(list["count"], 0);
    let res = app
        .get(
            &format!(
                "/api/v1/events/processors/{}",
                risk["processor_id"].as_str().unwrap()
            ),
            &other.admin_key,
        )
        .await;
    assert_eq!(res.status(), 404);
}

async fn a_failing_event_is_retried_dead_lettered_redriven_and_processed(backend: Backend) {
    let mut receiver = WebhookReceiver::start().await;
    receiver.respond_with(500);
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let p = register(
        &app,
        &t.admin_key,
        json!({
            "processor_name": "fragile", "processor_type": "webhook",
            "config": {"url": format!("{}/hook", receiver.url)},
            "retry_policy": {"schedule": [1]},
        }),
    )
    .await;
    let pid = p["processor_id"].as_str().unwrap().to_string();
    let id = create(
        &app,
        &t.admin_key,
        json!({"event_type": "invoice.issued", "category": "business"}),
    )
    .await;

    // First attempt fails: the event is failed at once.
    let first = receiver.next("the first call", WAIT).await;
    let e = event_when(&app, &t.admin_key, &id, "failed").await;
    assert_eq!(e["processing_results"][0]["status"], "failed", "{e}");
    assert_eq!(e["processing_results"][0]["attempt"], 1);
    assert!(
        e["processing_results"][0]["error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{e}"
    );
    // The retry a second later fails too: the schedule is spent.
    let second = receiver.next("the retry", WAIT).await;
    assert_eq!(first.header("webhook-id"), second.header("webhook-id"));
    let dead = herald_testkit::wait::wait_for("the dead letter", WAIT, || async {
        let page = get_json(
            &app,
            &format!("/api/v1/dlq?processor_id={pid}"),
            &t.admin_key,
        )
        .await;
        match page["dead_letters"].as_array().and_then(|d| d.first()) {
            Some(d) => Ok(d.clone()),
            None => Err(page.to_string()),
        }
    })
    .await;
    assert_eq!(dead["target"], "processor", "{dead}");
    assert_eq!(dead["event_id"], id.as_str());
    assert_eq!(dead["event_type"], "invoice.issued");
    assert_eq!(dead["attempts"], 2);
    assert_eq!(dead["failed_processors"][0]["processor_id"], pid.as_str());
    assert_eq!(dead["event"]["status"], "failed");
    // It is in the unfiltered queue too, and not in a subscription's.
    let all = get_json(&app, "/api/v1/dlq", &t.admin_key).await;
    assert_eq!(all["count"], 1, "{all}");
    let by_sub = get_json(&app, "/api/v1/dlq?subscription_id=sub_x", &t.admin_key).await;
    assert_eq!(by_sub["count"], 0, "{by_sub}");

    // The endpoint recovers; the redrive processes the event.
    receiver.respond_body(r#"{"ok": true}"#);
    receiver.respond_with(200);
    let res = app
        .post(
            "/api/v1/dlq/redrive",
            &t.admin_key,
            &json!({"ids": [dead["dead_letter_id"]]}),
        )
        .await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"redriven": 1}));
    let e = event_when(&app, &t.admin_key, &id, "processed").await;
    assert_eq!(e["processing_results"][0]["status"], "success", "{e}");
    assert_eq!(e["processing_results"][0]["attempt"], 3);
    assert_eq!(e["processing_results"][0]["result"], json!({"ok": true}));
    let all = get_json(&app, "/api/v1/dlq", &t.admin_key).await;
    assert_eq!(all["count"], 0, "{all}");
}

async fn a_processor_turned_off_is_not_applied_to_later_events(backend: Backend) {
    let app = app(backend).await;
    let t = app.tenant("acme").await;
    let p = register(
        &app,
        &t.admin_key,
        json!({"processor_name": "n", "processor_type": "enrich", "config": {"fields": {"n": "1"}}}),
    )
    .await;
    let pid = p["processor_id"].as_str().unwrap();
    // It applies while on (the control for the assertion below).
    let on = create(
        &app,
        &t.admin_key,
        json!({"event_type": "a.b", "category": "system"}),
    )
    .await;
    let e = event_when(&app, &t.admin_key, &on, "processed").await;
    assert_eq!(e["processing_results"][0]["result"], json!({"n": 1}), "{e}");

    let res = app
        .put(
            &format!("/api/v1/events/processors/{pid}/toggle?enabled=false"),
            &t.admin_key,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["enabled"], false);
    let off = create(
        &app,
        &t.admin_key,
        json!({"event_type": "a.b", "category": "system"}),
    )
    .await;
    let e = event_when(&app, &t.admin_key, &off, "processed").await;
    assert!(e.get("processing_results").is_none(), "{e}");
    let list = get_json(
        &app,
        "/api/v1/events/processors?enabled=false",
        &t.admin_key,
    )
    .await;
    assert_eq!(list["count"], 1, "{list}");

    // The toggle needs its parameter; a read key cannot toggle.
    let res = app
        .put(
            &format!("/api/v1/events/processors/{pid}/toggle"),
            &t.admin_key,
            &json!({}),
        )
        .await;
    assert_problem(res, 400, "Invalid input", &["/enabled"]).await;
    let reader = app.key(&t, &["read"]).await;
    let res = app
        .put(
            &format!("/api/v1/events/processors/{pid}/toggle?enabled=true"),
            &reader,
            &json!({}),
        )
        .await;
    assert_eq!(res.status(), 403);

    // Bad definitions name every bad field; a taken name is a 409.
    let res = app
        .post(
            "/api/v1/events/processors",
            &t.admin_key,
            &json!({
                "processor_name": "bad", "processor_type": "enrich", "priority": 5000,
                "filters": {"event_types": ["a.*"], "filter": "event.nope > 1"},
                "config": {"fields": {"x": "1 +"}},
                "retry_policy": {"schedule": ["soon"]},
                "color": "red",
            }),
        )
        .await;
    assert_problem(
        res,
        400,
        "Invalid input",
        &[
            "/priority",
            "/filters/filter",
            "/config/fields/x",
            "/retry_policy/schedule/0",
            "/color",
        ],
    )
    .await;
    let res = app
        .post(
            "/api/v1/events/processors",
            &t.admin_key,
            &json!({"processor_name": "w", "processor_type": "webhook", "config": {"url": "http://10.1.2.3/x"}}),
        )
        .await;
    assert_problem(res, 400, "Invalid input", &["/config/url"]).await;
    let res = app
        .post(
            "/api/v1/events/processors",
            &t.admin_key,
            &json!({"processor_name": "q", "processor_type": "queue"}),
        )
        .await;
    assert_problem(res, 400, "Invalid input", &["/processor_type"]).await;
    let res = app
        .post(
            "/api/v1/events/processors",
            &t.admin_key,
            &json!({"processor_name": "n", "processor_type": "enrich", "config": {"fields": {"y": "2"}}}),
        )
        .await;
    assert_eq!(res.status(), 409);

    // Delete: gone.
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/events/processors/{pid}")))
        .bearer_auth(&t.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = app
        .get(&format!("/api/v1/events/processors/{pid}"), &t.admin_key)
        .await;
    assert_eq!(res.status(), 404);
}

async fn a_nats_processor_publishes_and_failures_send_processed_failed(backend: Backend) {
    let Some(url) = nats_url() else {
        return;
    };
    let stream = NatsStream::new(&url).await;
    let app = spawn_on(backend, |c| {
        c.nats_url = Some(url.clone());
        c.nats_stream = stream.name.clone();
        c.nats_subject_prefix = stream.prefix.clone();
    })
    .await;
    let t = app.tenant("acme").await;
    let client = async_nats::connect(url.as_str()).await.unwrap();
    let base = format!("proc-{}", stream.prefix);
    let mut sub = client.subscribe(format!("{base}.>")).await.unwrap();
    client.flush().await.unwrap();
    register(
        &app,
        &t.admin_key,
        json!({
            "processor_name": "route", "processor_type": "nats",
            "filters": {"event_types": ["order.placed"]},
            "config": {"subject": format!("{base}.{{event.data.region}}")},
        }),
    )
    .await;
    register(
        &app,
        &t.admin_key,
        json!({
            "processor_name": "strict", "processor_type": "enrich",
            "filters": {"event_types": ["order.refused"]},
            "config": {"fields": {"n": "event.data.missing + 1"}},
            "retry_policy": {"schedule": []},
        }),
    )
    .await;
    let id = create(
        &app,
        &t.admin_key,
        json!({"event_type": "order.placed", "category": "business", "data": {"region": "eu.west"}}),
    )
    .await;
    let msg = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut sub))
        .await
        .expect("the processor's message")
        .unwrap();
    assert_eq!(msg.subject.as_str(), format!("{base}.eu~2Ewest"));
    let body: Value = serde_json::from_slice(&msg.payload).unwrap();
    assert_eq!(body["event_id"], id.as_str());
    let e = event_when(&app, &t.admin_key, &id, "processed").await;
    assert_eq!(
        e["processing_results"][0]["result"]["subject"],
        format!("{base}.eu~2Ewest")
    );
    stream
        .wait_for_event("lifecycle.*.event.processed.success", &id)
        .await;

    // A processor that fails sends event.processed.failed.
    let bad = create(
        &app,
        &t.admin_key,
        json!({"event_type": "order.refused", "category": "business", "data": {}}),
    )
    .await;
    let e = event_when(&app, &t.admin_key, &bad, "failed").await;
    assert_eq!(e["processing_results"][0]["status"], "failed", "{e}");
    let failed = stream
        .wait_for_event("lifecycle.*.event.processed.failed", &bad)
        .await;
    assert_eq!(failed[0].payload["status"], "failed");
}

/// Two instances on one PostgreSQL schema share the processing: every
/// event is called once (one request per `webhook-id`, none overlapping
/// itself) and ends processed with one attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_run_each_event_once() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let mut receiver = WebhookReceiver::start().await;
    receiver.answer_after(Duration::from_millis(20));
    let a = app(backend).await;
    let b = spawn_on(Backend::Sqlite, |c| {
        a.backend.apply(c);
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await;
    let t = a.tenant("acme").await;
    register(
        &a,
        &t.admin_key,
        json!({"processor_name": "hook", "processor_type": "webhook",
               "config": {"url": format!("{}/hook", receiver.url)}}),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..40 {
        let via = if i % 2 == 0 { &a } else { &b };
        ids.push(
            create(
                via,
                &t.admin_key,
                json!({"event_type": "job.done", "category": "system", "data": {"i": i}}),
            )
            .await,
        );
    }
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for _ in 0..40 {
        let r = receiver.next("a processor call", WAIT).await;
        *seen
            .entry(r.header("webhook-id").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), 40, "one webhook-id per event: {seen:?}");
    for id in &ids {
        let e = event_when(&b, &t.admin_key, id, "processed").await;
        assert_eq!(e["processing_results"][0]["attempt"], 1, "{e}");
    }
    // Nothing more comes: no event was run a second time.
    assert!(receiver.try_next().is_none());
    let counts = receiver.counts();
    assert_eq!(counts.total, 40);
    assert_eq!(counts.max_in_flight_per_id, 1);
}
