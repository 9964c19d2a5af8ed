//! Workflow waits end to end on the real server, on both stores: a wait
//! resolves on the first matching event (its filter reading the wait's
//! own context), through its lookback on an event stored just before it,
//! times out, is cancelled alone or with its workflow; a long poll answers
//! when it ends; a callback is POSTed once, signed with the wait's secret
//! (checked with Herald's verifier and the official Standard Webhooks
//! library) and retried after a failing answer; open waits survive a
//! restart; two instances on one PostgreSQL resolve a wait once; bad
//! bodies name every bad field; scopes and tenants are enforced.

use std::time::Duration;

use herald_testkit::receiver::{Received, WebhookReceiver};
use herald_testkit::{Backend, TestApp, assert_problem, spawn_on, wait_for};
use herald_workers::delivery::signature::{WebhookSecret, verify};
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    a_wait_resolves_on_the_first_matching_event_only,
    an_event_stored_just_before_a_wait_resolves_it_through_the_lookback,
    a_wait_times_out_when_nothing_matches,
    waits_are_cancelled_one_by_one_or_by_workflow,
    a_long_poll_answers_when_the_wait_ends,
    the_callback_is_posted_once_signed_and_retried_after_a_failure,
    open_waits_resolve_and_time_out_after_a_restart,
    bad_bodies_name_every_bad_field,
    scopes_and_tenants_are_enforced,
);

const WAIT: Duration = Duration::from_secs(20);
const WAITS: &str = "/api/v1/waits";

async fn json_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// `POST /api/v1/waits`, which must answer 201.
async fn create_wait(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, out) = json_of(app.post(WAITS, key, &body).await).await;
    assert_eq!(status, 201, "{body} → {out}");
    out
}

async fn get_wait(app: &TestApp, key: &str, id: &str) -> Value {
    let (status, out) = json_of(app.get(&format!("{WAITS}/{id}"), key).await).await;
    assert_eq!(status, 200, "{out}");
    out
}

async fn delete(app: &TestApp, path: &str, key: &str) -> reqwest::Response {
    app.client
        .delete(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .expect("request")
}

async fn send(app: &TestApp, key: &str, event_type: &str, data: Value) -> String {
    let (status, out) = app
        .create(
            key,
            &json!({"event_type": event_type, "category": "business", "data": data}),
        )
        .await;
    assert!(status == 201 || status == 202, "{status} {out}");
    out["event_id"].as_str().unwrap().to_string()
}

/// Waits until the wait `id` has `status`; returns it.
async fn ended(app: &TestApp, key: &str, id: &str, status: &str) -> Value {
    wait_for(&format!("wait {id} to be {status}"), WAIT, || async {
        let w = get_wait(app, key, id).await;
        if w["status"] == status {
            Ok(w)
        } else {
            Err(format!("status {}", w["status"]))
        }
    })
    .await
}

fn order_wait(workflow: &str, order: &str) -> Value {
    json!({
        "workflow_instance_id": workflow,
        "event_type": "order.*",
        "filter": "event.data.order_id == wait.context.order_id",
        "context": {"order_id": order},
        "timeout": 600,
    })
}

async fn a_wait_resolves_on_the_first_matching_event_only(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let key = &t.admin_key;
    let w = create_wait(&app, key, order_wait("wf-1", "o-1")).await;
    assert_eq!(w["status"], "open");
    assert_eq!(w["event"], Value::Null);
    assert!(w.get("webhook_secret").is_none(), "no callback, no secret");
    let id = w["wait_id"].as_str().unwrap();
    let other = create_wait(&app, key, order_wait("wf-2", "o-2")).await;
    // Neither the wrong type nor the wrong order resolves it.
    send(&app, key, "invoice.paid", json!({"order_id": "o-1"})).await;
    send(&app, key, "order.paid", json!({"order_id": "o-9"})).await;
    let first = send(&app, key, "order.paid", json!({"order_id": "o-1", "n": 1})).await;
    let resolved = ended(&app, key, id, "resolved").await;
    assert_eq!(resolved["event_id"], first);
    assert_eq!(
        resolved["event"]["data"],
        json!({"order_id": "o-1", "n": 1})
    );
    assert!(resolved["ended_at"].is_string());
    // A second match changes nothing: the end happened once.
    send(&app, key, "order.shipped", json!({"order_id": "o-1"})).await;
    send(&app, key, "order.paid", json!({"order_id": "o-2"})).await;
    ended(&app, key, other["wait_id"].as_str().unwrap(), "resolved").await;
    assert_eq!(get_wait(&app, key, id).await, resolved);
    // Listing by status, workflow and type.
    let (status, list) = json_of(
        app.get(
            &format!("{WAITS}?status=resolved&workflow_instance_id=wf-1"),
            key,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["count"], 1);
    assert_eq!(list["waits"][0]["wait_id"], id);
    let (_, by_type) = json_of(
        app.get(&format!("{WAITS}?event_type=order.*&limit=1"), key)
            .await,
    )
    .await;
    assert_eq!(by_type["count"], 1);
    assert_eq!(by_type["has_more"], true);
    let cursor = by_type["next_cursor"].as_str().unwrap();
    let (_, next) = json_of(
        app.get(
            &format!("{WAITS}?event_type=order.*&limit=1&cursor={cursor}"),
            key,
        )
        .await,
    )
    .await;
    assert_eq!(next["count"], 1);
    assert_eq!(next["has_more"], false);
    assert_ne!(next["waits"][0]["wait_id"], by_type["waits"][0]["wait_id"]);
}

async fn an_event_stored_just_before_a_wait_resolves_it_through_the_lookback(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let key = &t.admin_key;
    let early = send(&app, key, "payment.captured", json!({"order_id": "o-7"})).await;
    let body = |lookback: u64| {
        json!({
            "workflow_instance_id": "wf-7",
            "any_of": [
                {"event_type": "payment.failed"},
                {"event_type": "payment.captured", "filter": "event.data.order_id == wait.context.order_id"},
            ],
            "context": {"order_id": "o-7"},
            "timeout": 600,
            "lookback": lookback,
        })
    };
    let with = create_wait(&app, key, body(300)).await;
    assert_eq!(with["status"], "resolved", "already in the 201: {with}");
    assert_eq!(with["event_id"], early);
    let without = create_wait(&app, key, body(0)).await;
    assert_eq!(without["status"], "open");
    // Positive control: the same kind of event sent now resolves it.
    let later = send(&app, key, "payment.captured", json!({"order_id": "o-7"})).await;
    let w = ended(&app, key, without["wait_id"].as_str().unwrap(), "resolved").await;
    assert_eq!(w["event_id"], later);
}

async fn a_wait_times_out_when_nothing_matches(backend: Backend) {
    let app = spawn_on(backend, |c| c.wait_poll_ms = 50).await;
    let t = app.tenant("acme").await;
    let key = &t.admin_key;
    let mut body = order_wait("wf-1", "o-1");
    body["timeout"] = json!(1);
    let w = create_wait(&app, key, body).await;
    let id = w["wait_id"].as_str().unwrap();
    let timed_out = ended(&app, key, id, "timed_out").await;
    assert_eq!(timed_out["event"], Value::Null);
    // An event after the timeout leaves it timed out.
    send(&app, key, "order.paid", json!({"order_id": "o-1"})).await;
    let sentinel = create_wait(&app, key, order_wait("wf-2", "o-1")).await;
    send(&app, key, "order.paid", json!({"order_id": "o-1"})).await;
    ended(&app, key, sentinel["wait_id"].as_str().unwrap(), "resolved").await;
    assert_eq!(get_wait(&app, key, id).await, timed_out);
}

async fn waits_are_cancelled_one_by_one_or_by_workflow(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let key = &t.admin_key;
    let one = create_wait(&app, key, order_wait("wf-1", "o-1")).await;
    let id = one["wait_id"].as_str().unwrap();
    let (status, cancelled) = json_of(delete(&app, &format!("{WAITS}/{id}"), key).await).await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    let again = assert_problem(
        delete(&app, &format!("{WAITS}/{id}"), key).await,
        409,
        "Conflict",
        &[],
    )
    .await;
    assert_eq!(again["wait_status"], "cancelled");
    // A cancelled wait is not resolved by a match.
    for order in ["o-2", "o-3"] {
        create_wait(&app, key, order_wait("wf-2", order)).await;
    }
    let keep = create_wait(&app, key, order_wait("wf-3", "o-2")).await;
    let (status, out) =
        json_of(delete(&app, &format!("{WAITS}?workflow_instance_id=wf-2"), key).await).await;
    assert_eq!(
        (status, out),
        (200, json!({"workflow_instance_id": "wf-2", "cancelled": 2}))
    );
    let (_, out) =
        json_of(delete(&app, &format!("{WAITS}?workflow_instance_id=wf-2"), key).await).await;
    assert_eq!(out["cancelled"], 0);
    assert_problem(
        delete(&app, WAITS, key).await,
        400,
        "Invalid input",
        &["/workflow_instance_id"],
    )
    .await;
    send(&app, key, "order.paid", json!({"order_id": "o-2"})).await;
    ended(&app, key, keep["wait_id"].as_str().unwrap(), "resolved").await;
    let (_, list) = json_of(
        app.get(&format!("{WAITS}?workflow_instance_id=wf-2"), key)
            .await,
    )
    .await;
    assert!(
        list["waits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| w["status"] == "cancelled"),
        "{list}"
    );
    assert_eq!(get_wait(&app, key, id).await["status"], "cancelled");
}

async fn a_long_poll_answers_when_the_wait_ends(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let key = t.admin_key.clone();
    let w = create_wait(&app, &key, order_wait("wf-1", "o-1")).await;
    let id = w["wait_id"].as_str().unwrap().to_string();
    // A short poll of an open wait answers open once its time is up.
    let (status, open) = json_of(app.get(&format!("{WAITS}/{id}?wait=1"), &key).await).await;
    assert_eq!((status, &open["status"]), (200, &json!("open")));
    let (client, url) = (
        app.client.clone(),
        app.url(&format!("{WAITS}/{id}?wait=30")),
    );
    let poll_key = key.clone();
    let poll = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let res = client.get(url).bearer_auth(poll_key).send().await.unwrap();
        let body: Value = res.json().await.unwrap();
        (body, started.elapsed())
    });
    // The poll is held while the wait is open (it would have answered by now otherwise).
    herald_testkit::stays("the long poll held", Duration::from_millis(300), || async {
        if poll.is_finished() {
            Err("the poll answered".to_string())
        } else {
            Ok(())
        }
    })
    .await;
    let event = send(&app, &key, "order.paid", json!({"order_id": "o-1"})).await;
    let (body, took) = tokio::time::timeout(WAIT, poll)
        .await
        .expect("the poll answered")
        .unwrap();
    assert_eq!(body["status"], "resolved");
    assert_eq!(body["event_id"], event);
    assert!(
        took < Duration::from_secs(30),
        "answered on the end, not the deadline: {took:?}"
    );
    assert_problem(
        app.get(&format!("{WAITS}/{id}?wait=99999"), &key).await,
        400,
        "Invalid input",
        &["/wait"],
    )
    .await;
}

/// The callback's body after checking its signature with Herald's
/// verifier and the official Standard Webhooks library.
fn verified(r: &Received, secret: &WebhookSecret) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let header = |name: &str| {
        r.header(name)
            .unwrap_or_else(|| panic!("no {name} header: {r:?}"))
    };
    verify(
        header("webhook-id"),
        header("webhook-timestamp"),
        &r.body,
        header("webhook-signature"),
        std::slice::from_ref(secret),
        now,
        300,
    )
    .unwrap_or_else(|e| panic!("signature of {r:?}: {e}"));
    standardwebhooks::Webhook::new(&secret.expose())
        .expect("the official library takes Herald's secret")
        .verify(&r.body, &r.headers)
        .unwrap_or_else(|e| panic!("the official Standard Webhooks library refuses {r:?}: {e}"));
    r.json()
}

async fn the_callback_is_posted_once_signed_and_retried_after_a_failure(backend: Backend) {
    let mut receiver = WebhookReceiver::start().await;
    receiver.respond_in_turn(&[500, 204]);
    let app = spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
        c.wait_poll_ms = 50;
    })
    .await;
    let t = app.tenant("acme").await;
    let key = &t.admin_key;
    let mut body = order_wait("wf-1", "o-1");
    body["callback_url"] = json!(format!("{}/resume", receiver.url));
    let w = create_wait(&app, key, body).await;
    let id = w["wait_id"].as_str().unwrap();
    let secret =
        WebhookSecret::parse(w["webhook_secret"].as_str().expect("shown once on create")).unwrap();
    assert!(
        get_wait(&app, key, id)
            .await
            .get("webhook_secret")
            .is_none(),
        "never shown again"
    );
    let event = send(&app, key, "order.paid", json!({"order_id": "o-1"})).await;
    let first = receiver.next("the first callback", WAIT).await;
    assert_eq!(first.uri.path(), "/resume");
    assert_eq!(first.header("webhook-id"), Some(id));
    let sent = verified(&first, &secret);
    assert_eq!(sent["wait_id"], id);
    assert_eq!(sent["status"], "resolved");
    assert_eq!(sent["event"]["event_id"], event);
    // The 500 is retried on the delivery schedule (first retry ~5 s), same id and body.
    let second = receiver.next("the retried callback", WAIT).await;
    assert_eq!(second.header("webhook-id"), Some(id));
    assert_eq!(verified(&second, &secret), sent);
    let done = wait_for("the callback recorded as delivered", WAIT, || async {
        let w = get_wait(&app, key, id).await;
        if w["callback"]["state"] == "delivered" {
            Ok(w)
        } else {
            Err(format!("callback {}", w["callback"]))
        }
    })
    .await;
    assert_eq!(done["callback"]["attempts"], 2);
    assert_eq!(done["callback"]["last_status"], 204);
    // A cancelled wait's callback says so (and proves the worker still sends).
    let mut body = order_wait("wf-2", "o-2");
    body["callback_url"] = json!(format!("{}/resume", receiver.url));
    body["webhook_secret"] = json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let other = create_wait(&app, key, body).await;
    assert_eq!(
        other["webhook_secret"],
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    );
    let other_id = other["wait_id"].as_str().unwrap();
    delete(&app, &format!("{WAITS}/{other_id}"), key).await;
    let r = receiver.next("the cancel callback", WAIT).await;
    let given = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let body = verified(&r, &given);
    assert_eq!(
        (
            body["wait_id"].as_str(),
            body["status"].as_str(),
            &body["event"]
        ),
        (Some(other_id), Some("cancelled"), &Value::Null)
    );
    assert_eq!(
        receiver.counts().total,
        3,
        "the delivered callback was not sent again"
    );
    assert!(receiver.try_next().is_none());
}

async fn open_waits_resolve_and_time_out_after_a_restart(backend: Backend) {
    let app = spawn_on(backend, |c| c.wait_poll_ms = 50).await;
    let t = app.tenant("acme").await;
    let key = t.admin_key.clone();
    let to_resolve = create_wait(&app, &key, order_wait("wf-1", "o-1")).await;
    let mut body = order_wait("wf-2", "o-2");
    body["timeout"] = json!(3);
    let to_time_out = create_wait(&app, &key, body).await;
    let app = app.restart_with(|c| c.wait_poll_ms = 50).await;
    let event = send(&app, &key, "order.paid", json!({"order_id": "o-1"})).await;
    let w = ended(
        &app,
        &key,
        to_resolve["wait_id"].as_str().unwrap(),
        "resolved",
    )
    .await;
    assert_eq!(w["event_id"], event);
    ended(
        &app,
        &key,
        to_time_out["wait_id"].as_str().unwrap(),
        "timed_out",
    )
    .await;
}

async fn bad_bodies_name_every_bad_field(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let t = app.tenant("acme").await;
    let key = &t.admin_key;
    let check = |body: Value, fields: &'static [&'static str]| {
        let app = &app;
        async move {
            let res = app.post(WAITS, key, &body).await;
            assert_problem(res, 400, "Invalid input", fields).await
        }
    };
    let problem = check(
        json!({
            "event_type": "order.>.paid",
            "filter": "event.data.x ==",
            "timeout": -5,
            "lookback": "soon",
            "callback_url": "http://127.0.0.1:9/hook",
            "surprise": 1,
        }),
        &[
            "/workflow_instance_id",
            "/event_type",
            "/filter",
            "/timeout",
            "/lookback",
            "/callback_url",
            "/surprise",
        ],
    )
    .await;
    let text = problem.to_string();
    assert!(
        text.contains("line 1, column"),
        "the CEL error has its place: {text}"
    );
    check(
        json!({"workflow_instance_id": "wf", "event_type": "a.b"}),
        &["/timeout"],
    )
    .await;
    check(json!({"workflow_instance_id": "wf", "event_type": "a.b", "timeout": "2001-01-01T00:00:00Z"}), &["/timeout"]).await;
    check(
        json!({"workflow_instance_id": "wf", "event_type": "a.b", "timeout": 0}),
        &["/timeout"],
    )
    .await;
    check(
        json!({"workflow_instance_id": "wf", "timeout": 10, "filter": "order.id == 1", "any_of": [{"event_type": "a.*"}]}),
        &["/any_of"],
    )
    .await;
    check(
        json!({"workflow_instance_id": "wf", "timeout": 10, "any_of": [{"event_type": "a.>.b"}, {"event_type": "c", "filter": "ctx.x"}, 3]}),
        &["/any_of/0/event_type", "/any_of/1/filter", "/any_of/2"],
    )
    .await;
    check(
        json!({"workflow_instance_id": "wf", "timeout": 10, "event_type": "a.b", "webhook_secret": "whsec_x"}),
        &["/webhook_secret"],
    )
    .await;
    check(json!([1, 2]), &[""]).await;
}

async fn scopes_and_tenants_are_enforced(backend: Backend) {
    let app = spawn_on(backend, |_| {}).await;
    let (acme, globex) = (app.tenant("acme").await, app.tenant("globex").await);
    let read = app.key(&acme, &["read"]).await;
    let ingest = app.key(&acme, &["ingest"]).await;
    assert_eq!(
        app.post(WAITS, &read, &order_wait("wf", "o"))
            .await
            .status(),
        403
    );
    let w = create_wait(&app, &ingest, order_wait("wf", "o")).await;
    let id = w["wait_id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("{WAITS}/{id}"), &ingest).await.status(),
        403
    );
    assert_eq!(
        delete(&app, &format!("{WAITS}/{id}"), &read).await.status(),
        403
    );
    assert_eq!(get_wait(&app, &read, id).await["status"], "open");
    // Another tenant's wait is a 404, for reading and for cancelling.
    assert_eq!(
        app.get(&format!("{WAITS}/{id}"), &globex.admin_key)
            .await
            .status(),
        404
    );
    assert_eq!(
        delete(&app, &format!("{WAITS}/{id}"), &globex.admin_key)
            .await
            .status(),
        404
    );
    let (_, out) = json_of(
        delete(
            &app,
            &format!("{WAITS}?workflow_instance_id=wf"),
            &globex.admin_key,
        )
        .await,
    )
    .await;
    assert_eq!(out["cancelled"], 0);
    // Another tenant's event never resolves it.
    send(
        &app,
        &globex.admin_key,
        "order.paid",
        json!({"order_id": "o"}),
    )
    .await;
    let sentinel = create_wait(&app, &ingest, order_wait("wf-s", "s")).await;
    send(
        &app,
        &acme.admin_key,
        "order.paid",
        json!({"order_id": "s"}),
    )
    .await;
    ended(
        &app,
        &read,
        sentinel["wait_id"].as_str().unwrap(),
        "resolved",
    )
    .await;
    assert_eq!(get_wait(&app, &read, id).await["status"], "open");
}

/// Two instances on one PostgreSQL, each with its own matcher, timeouts
/// and callback worker: a wait stored on one is resolved by an event sent
/// to the other, once, and its callback is POSTed once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgres_resolve_a_wait_once() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let mut receiver = WebhookReceiver::start().await;
    let tweak = |c: &mut herald_server::Config| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
        c.wait_poll_ms = 20;
    };
    let a = spawn_on(backend, tweak).await;
    // The second instance on the first one's schema.
    let b = spawn_on(Backend::Sqlite, |c| {
        a.backend.apply(c);
        tweak(c);
    })
    .await;
    let t = a.tenant("acme").await;
    let key = &t.admin_key;
    let mut ids = Vec::new();
    for i in 0..10 {
        let mut body = order_wait(&format!("wf-{i}"), &format!("o-{i}"));
        body["callback_url"] = json!(format!("{}/resume", receiver.url));
        let on = if i % 2 == 0 { &a } else { &b };
        ids.push(
            create_wait(on, key, body).await["wait_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for i in 0..10 {
        let on = if i % 2 == 0 { &b } else { &a };
        send(on, key, "order.paid", json!({"order_id": format!("o-{i}")})).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    for n in 0..10 {
        let r = receiver.next(&format!("callback {n}"), WAIT).await;
        assert!(
            seen.insert(r.header("webhook-id").unwrap().to_string()),
            "posted twice: {r:?}"
        );
    }
    for id in &ids {
        assert_eq!(
            ended(&a, key, id, "resolved").await,
            ended(&b, key, id, "resolved").await
        );
        assert!(seen.contains(id));
    }
    // A sentinel after them: once its callback arrives, a repeat would have too.
    let mut body = order_wait("wf-s", "s");
    body["callback_url"] = json!(format!("{}/resume", receiver.url));
    let sentinel = create_wait(&b, key, body).await;
    send(&a, key, "order.paid", json!({"order_id": "s"})).await;
    let r = receiver.next("the sentinel's callback", WAIT).await;
    assert_eq!(r.header("webhook-id"), sentinel["wait_id"].as_str());
    assert!(
        receiver.try_next().is_none(),
        "no callback was posted twice"
    );
    assert_eq!(receiver.counts().total, 11);
}
