//! Streams and projections over HTTP on both stores: a stream read in pages
//! both ways with its facts; every `expected_version` form, with a 409 that
//! carries the versions (also per batch item); racing appends with one
//! expectation have one winner (on PostgreSQL, through two instances);
//! projections folded by the registry's rules, time travel, a rule change
//! that rebuilds them; a current projection never stale while writes race
//! reads; bad requests name every bad parameter.

use std::future::Future;
use std::time::Duration;

use herald_testkit::problem::assert_problem;
use herald_testkit::{Backend, Tenant, TestApp, spawn_on};
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    a_stream_reads_in_pages_both_ways_with_its_facts,
    every_expected_version_form_and_its_conflict_answer,
    racing_creates_with_one_expectation_have_one_winner,
    projections_fold_by_the_registry_rules_and_travel_in_time,
    a_rule_change_rebuilds_the_projections_under_the_new_rule,
    the_current_projection_is_never_stale_while_writes_race_reads,
    bad_stream_and_projection_requests_name_every_bad_parameter,
);

async fn setup(backend: Backend) -> (TestApp, Tenant) {
    let app = spawn_on(backend, |c| c.projection_snapshot_every = 4).await;
    let t = app.tenant("acme").await;
    (app, t)
}

async fn create(app: &TestApp, t: &Tenant, body: Value) -> Value {
    let (status, out) = app.create(&t.admin_key, &body).await;
    assert_eq!(status, 201, "{out}");
    out
}

fn on(stream: &str, event_type: &str, data: Value) -> Value {
    json!({"event_type": event_type, "category": "business", "stream_id": stream, "data": data})
}

async fn get_json(app: &TestApp, t: &Tenant, path: &str) -> (u16, Value) {
    let res = app.get(path, &t.admin_key).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn versions(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stream_version"].as_u64().unwrap())
        .collect()
}

async fn a_stream_reads_in_pages_both_ways_with_its_facts(backend: Backend) {
    let (app, t) = setup(backend).await;
    let mut created = Vec::new();
    for n in 1..=5 {
        let mut body = on("order:1", "order.updated", json!({"n": n}));
        body["timestamp"] = json!(format!("2026-01-0{n}T10:00:00Z"));
        created.push(create(&app, &t, body).await);
    }
    create(&app, &t, on("order:2", "order.updated", json!({}))).await;

    let (status, page) = get_json(&app, &t, "/api/v1/events/stream/order:1").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(versions(&page), [1, 2, 3, 4, 5]);
    assert_eq!(page["stream_id"], "order:1");
    assert_eq!(
        (page["entity_type"].as_str(), page["entity_id"].as_str()),
        (Some("order"), Some("1"))
    );
    assert_eq!(page["current_version"], 5);
    assert_eq!(page["event_count"], 5);
    assert_eq!(page["first_event_at"], "2026-01-01T10:00:00Z");
    assert_eq!(page["last_event_at"], "2026-01-05T10:00:00Z");
    assert_eq!(page["has_more"], false);
    assert_eq!(page["next_version"], Value::Null);
    // Each event is the one GET /events/{id} answers.
    assert_eq!(page["events"][2]["event_id"], created[2]["event_id"]);
    assert_eq!(page["events"][2]["data"], json!({"n": 3}));

    let (_, first) = get_json(&app, &t, "/api/v1/events/stream/order:1?limit=2").await;
    assert_eq!(
        (versions(&first), &first["has_more"], &first["next_version"]),
        (vec![1, 2], &json!(true), &json!(3))
    );
    let (_, next) = get_json(
        &app,
        &t,
        "/api/v1/events/stream/order:1?limit=2&from_version=3",
    )
    .await;
    assert_eq!(
        (versions(&next), &next["next_version"]),
        (vec![3, 4], &json!(5))
    );
    let (_, last) = get_json(
        &app,
        &t,
        "/api/v1/events/stream/order:1?limit=2&from_version=5",
    )
    .await;
    assert_eq!(
        (versions(&last), &last["has_more"]),
        (vec![5], &json!(false))
    );

    let (_, back) = get_json(
        &app,
        &t,
        "/api/v1/events/stream/order:1?direction=backward&limit=2",
    )
    .await;
    assert_eq!(
        (versions(&back), &back["next_version"]),
        (vec![5, 4], &json!(3))
    );
    let (_, back) = get_json(
        &app,
        &t,
        "/api/v1/events/stream/order:1?direction=backward&from_version=3",
    )
    .await;
    assert_eq!(
        (versions(&back), &back["has_more"]),
        (vec![3, 2, 1], &json!(false))
    );

    // Another tenant's stream of the same id does not exist for this one.
    let other = app.tenant("globex").await;
    let res = app
        .get("/api/v1/events/stream/order:1", &other.admin_key)
        .await;
    assert_problem(res, 404, "Not found", &[]).await;
}

async fn every_expected_version_form_and_its_conflict_answer(backend: Backend) {
    let (app, t) = setup(backend).await;
    let with = |v: Value| {
        let mut b = on("order:9", "order.updated", json!({}));
        b["expected_version"] = v;
        b
    };
    let post = |v: Value| {
        let body = with(v);
        let app = &app;
        let key = t.admin_key.clone();
        async move { app.post("/api/v1/events/create", &key, &body).await }
    };
    assert_eq!(post(json!("stream_exists")).await.status(), 409);
    assert_eq!(post(json!("no_stream")).await.status(), 201);
    let conflict = assert_problem(post(json!("no_stream")).await, 409, "Conflict", &[]).await;
    assert_eq!(
        (
            &conflict["stream_id"],
            &conflict["expected_version"],
            &conflict["current_version"]
        ),
        (&json!("order:9"), &json!("no_stream"), &json!(1)),
        "{conflict}"
    );
    assert!(
        conflict["detail"]
            .as_str()
            .unwrap()
            .contains("is at version 1"),
        "{conflict}"
    );
    assert_eq!(post(json!("stream_exists")).await.status(), 201);
    assert_eq!(post(json!(2)).await.status(), 201);
    assert_eq!(post(json!("any")).await.status(), 201);
    let conflict = assert_problem(post(json!(2)).await, 409, "Conflict", &[]).await;
    assert_eq!(
        (&conflict["expected_version"], &conflict["current_version"]),
        (&json!(2), &json!(4))
    );
    // A bad form is a 400 naming it; without a stream it has nothing to apply to.
    assert_problem(
        post(json!("latest")).await,
        400,
        "Invalid input",
        &["/expected_version"],
    )
    .await;
    let mut no_stream = with(json!("no_stream"));
    no_stream.as_object_mut().unwrap().remove("stream_id");
    let res = app
        .post("/api/v1/events/create", &t.admin_key, &no_stream)
        .await;
    assert_problem(res, 400, "Invalid input", &["/expected_version"]).await;

    // In a batch, each item is decided in order and a conflict is that item's result.
    let res = app
        .post(
            "/api/v1/events/batch",
            &t.admin_key,
            &json!({"events": [
                with(json!(4)),
                with(json!(4)),
                {"event_type": "order.updated", "category": "business", "stream_id": "order:10", "expected_version": "no_stream"},
            ]}),
        )
        .await;
    assert_eq!(res.status(), 207);
    let out: Value = res.json().await.unwrap();
    let results = out["results"].as_array().unwrap();
    assert_eq!(results[0]["status"], 201, "{out}");
    assert_eq!(results[1]["status"], 409, "{out}");
    let e = &results[1]["error"];
    assert_eq!(
        (
            &e["stream_id"],
            &e["expected_version"],
            &e["current_version"]
        ),
        (&json!("order:9"), &json!(4), &json!(5)),
        "{out}"
    );
    assert_eq!(results[2]["status"], 201, "{out}");
}

async fn racing_creates_with_one_expectation_have_one_winner(backend: Backend) {
    let (app, t) = setup(backend).await;
    // On PostgreSQL, a second instance shares the store: half the racers
    // go through it.
    let second = match &app.backend {
        Backend::Postgres(_) => Some(spawn_on(Backend::Sqlite, |c| app.backend.apply(c)).await),
        Backend::Sqlite => None,
    };
    let bases: Vec<&TestApp> = std::iter::once(&app).chain(second.as_ref()).collect();
    for round in 0..5u64 {
        let expected = if round == 0 {
            json!("no_stream")
        } else {
            json!(round)
        };
        let racers = (0..6).map(|i| {
            let target = bases[i % bases.len()];
            let (url, client) = (target.url("/api/v1/events/create"), target.client.clone());
            let mut body = on("order:race", "order.updated", json!({"by": i}));
            body["expected_version"] = expected.clone();
            let key = t.admin_key.clone();
            async move {
                let res = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                res.status().as_u16()
            }
        });
        let statuses = futures_join_all(racers).await;
        let won = statuses.iter().filter(|s| **s == 201).count();
        let lost = statuses.iter().filter(|s| **s == 409).count();
        assert_eq!((won, lost), (1, 5), "round {round}: {statuses:?}");
    }
    let (_, page) = get_json(&app, &t, "/api/v1/events/stream/order:race").await;
    assert_eq!(page["current_version"], 5);
}

/// Runs the futures at once, in input order.
async fn futures_join_all<F: Future<Output = u16> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<u16> {
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in futures.enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out = set.join_all().await;
    out.sort();
    out.into_iter().map(|(_, s)| s).collect()
}

async fn define_rules(app: &TestApp, t: &Tenant) {
    for (ty, rule) in [
        ("order.replaced", json!({"fold": "replace"})),
        ("order.deleted", json!({"fold": "delete"})),
        ("order.viewed", json!({"fold": "ignore"})),
        (
            "order.shipped",
            json!({"fold": "merge", "path": "/shipping"}),
        ),
    ] {
        app.define(
            &t.admin_key,
            &json!({"event_type": ty, "category": "business", "projection": rule}),
        )
        .await;
    }
}

async fn projection(app: &TestApp, t: &Tenant, query: &str) -> Value {
    let (status, p) = get_json(
        app,
        t,
        &format!("/api/v1/events/projections/order/7{query}"),
    )
    .await;
    assert_eq!(status, 200, "{p}");
    p
}

async fn projections_fold_by_the_registry_rules_and_travel_in_time(backend: Backend) {
    let (app, t) = setup(backend).await;
    define_rules(&app, &t).await;
    let s = "order:7";
    let steps = [
        (
            "order.created",
            json!({"status": "new", "total": 30, "note": "gift"}),
        ),
        ("order.updated", json!({"status": "paid", "note": null})),
        ("order.viewed", json!({"status": "ignored"})),
        ("order.shipped", json!({"carrier": "dhl", "city": "Oslo"})),
        ("order.shipped", json!({"city": "Bergen"})),
        ("order.deleted", json!({})),
        ("order.replaced", json!({"status": "reopened"})),
    ];
    let mut ids = Vec::new();
    let mut stored_at = Vec::new();
    for (ty, data) in steps {
        let out = create(&app, &t, on(s, ty, data)).await;
        ids.push(out["event_id"].clone());
        stored_at.push(out["processing_timestamp"].as_str().unwrap().to_string());
    }
    let p = projection(&app, &t, "").await;
    assert_eq!(p["state"], json!({"status": "reopened"}), "{p}");
    assert_eq!((&p["version"], &p["last_event_id"]), (&json!(7), &ids[6]));
    // Processing times are kept to the microsecond.
    assert_eq!(
        micros(p["updated_at"].as_str().unwrap()),
        micros(&stored_at[6])
    );

    let p = projection(&app, &t, "?at_version=5").await;
    assert_eq!(
        p["state"],
        json!({"status": "paid", "total": 30, "shipping": {"carrier": "dhl", "city": "Bergen"}}),
        "{p}"
    );
    assert_eq!((&p["version"], &p["last_event_id"]), (&json!(5), &ids[4]));
    let p = projection(&app, &t, "?at_version=6").await;
    assert_eq!(p["state"], Value::Null, "deleted: {p}");
    let p = projection(&app, &t, "?at_version=3").await;
    assert_eq!(p["state"], json!({"status": "paid", "total": 30}), "{p}");

    // `at`: the events stored by then; later events never change the answer.
    let at = urlencode(&stored_at[3]);
    let before = projection(&app, &t, &format!("?at={at}")).await;
    assert_eq!(before["version"], 4, "{before}");
    assert_eq!(
        before["state"]["shipping"],
        json!({"carrier": "dhl", "city": "Oslo"})
    );
    create(&app, &t, on(s, "order.updated", json!({"late": true}))).await;
    assert_eq!(projection(&app, &t, &format!("?at={at}")).await, before);
    let res = app
        .get(
            "/api/v1/events/projections/order/7?at=2000-01-01T00:00:00Z",
            &t.admin_key,
        )
        .await;
    assert_problem(res, 404, "Not found", &[]).await;
    let res = app
        .get(
            "/api/v1/events/projections/order/7?at_version=99",
            &t.admin_key,
        )
        .await;
    let body = assert_problem(res, 404, "Not found", &[]).await;
    assert_eq!(body["current_version"], 8, "{body}");
    let res = app
        .get("/api/v1/events/projections/order/404", &t.admin_key)
        .await;
    assert_problem(res, 404, "Not found", &[]).await;
}

/// An RFC 3339 UTC time cut to whole microseconds: (up to the second, µs).
fn micros(t: &str) -> (String, u64) {
    let t = t.trim_end_matches('Z');
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    (whole.to_string(), digits.parse().unwrap())
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

async fn a_rule_change_rebuilds_the_projections_under_the_new_rule(backend: Backend) {
    let (app, t) = setup(backend).await;
    let defined = app
        .define(&t.admin_key, &json!({"event_type": "order.viewed", "category": "business", "projection": {"fold": "ignore"}}))
        .await;
    // Ten events: snapshots at 4 and 8 under the first rule.
    for n in 1..=10 {
        let ty = if n % 2 == 0 {
            "order.viewed"
        } else {
            "order.updated"
        };
        create(&app, &t, on("order:7", ty, json!({ format!("k{n}"): n }))).await;
    }
    let ignored = projection(&app, &t, "").await;
    assert_eq!(
        ignored["state"],
        json!({"k1": 1, "k3": 3, "k5": 5, "k7": 7, "k9": 9}),
        "{ignored}"
    );
    let mid = projection(&app, &t, "?at_version=9").await;
    assert!(mid["state"].get("k8").is_none(), "{mid}");

    // A new version of the definition merges `viewed` events: every
    // projection is folded again under it, snapshots included.
    let id = defined["id"].as_str().unwrap();
    let res = app
        .put(
            &format!("/api/v1/event-definitions/{id}"),
            &t.admin_key,
            &json!({"event_type": "order.viewed", "category": "business", "projection": {"fold": "merge"}}),
        )
        .await;
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["version"], 2, "{updated}");
    assert_eq!(updated["projection"], json!({"fold": "merge"}));
    let change = updated["compatibility"]["changes"].to_string();
    assert!(change.contains("rebuilt"), "{updated}");
    let all: Value = (1..=10)
        .map(|n| (format!("k{n}"), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    app.eventually("the projection folded under the new rule", || async {
        projection(&app, &t, "").await["state"] == all
    })
    .await;
    let now = projection(&app, &t, "").await;
    assert_ne!(now["rules"], ignored["rules"], "{now}");
    let mid = projection(&app, &t, "?at_version=9").await;
    assert_eq!(
        mid["state"]["k8"], 8,
        "a snapshot of the old rule was used: {mid}"
    );
}

async fn the_current_projection_is_never_stale_while_writes_race_reads(backend: Backend) {
    let (app, t) = setup(backend).await;
    const WRITES: u64 = 40;
    let writer = {
        let (base, client, key) = (app.base.clone(), app.client.clone(), t.admin_key.clone());
        tokio::spawn(async move {
            for n in 1..=WRITES {
                let res = client
                    .post(format!("{base}/api/v1/events/create"))
                    .bearer_auth(&key)
                    .json(&on("order:7", "order.updated", json!({"n": n})))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (base, client, key) = (app.base.clone(), app.client.clone(), t.admin_key.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                loop {
                    let res = client
                        .get(format!("{base}/api/v1/events/projections/order/7"))
                        .bearer_auth(&key)
                        .send()
                        .await
                        .unwrap();
                    if res.status() == 404 {
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "no event became visible"
                        );
                        tokio::task::yield_now().await;
                        continue;
                    }
                    let p: Value = res.json().await.unwrap();
                    let v = p["version"].as_u64().unwrap();
                    // The state is the one of its version, and versions never go back.
                    assert_eq!(p["state"]["n"], v, "{p}");
                    assert!(
                        seen.last().is_none_or(|l| *l <= v),
                        "went back to {v} after {seen:?}"
                    );
                    seen.push(v);
                    if v == WRITES || tokio::time::Instant::now() > deadline {
                        return seen;
                    }
                }
            })
        })
        .collect();
    writer.await.unwrap();
    for r in readers {
        let seen = r.await.unwrap();
        assert_eq!(seen.last(), Some(&WRITES), "{seen:?}");
    }
    // Read after the last write: the last version, from the cache or not.
    let p = projection(&app, &t, "").await;
    assert_eq!(
        (&p["version"], &p["state"]["n"]),
        (&json!(WRITES), &json!(WRITES))
    );
}

async fn bad_stream_and_projection_requests_name_every_bad_parameter(backend: Backend) {
    let (app, t) = setup(backend).await;
    let get = |path: &'static str| app.get(path, &t.admin_key);
    let body = assert_problem(
        get("/api/v1/events/stream/order-1").await,
        400,
        "Invalid input",
        &["/stream_id"],
    )
    .await;
    assert!(
        body.to_string().contains("{entity_type}:{entity_id}"),
        "{body}"
    );
    assert_problem(
        get("/api/v1/events/stream/order-1?limit=0&direction=sideways&from_version=x&follow_me=1")
            .await,
        400,
        "Invalid input",
        &[
            "/direction",
            "/follow_me",
            "/from_version",
            "/limit",
            "/stream_id",
        ],
    )
    .await;
    assert_problem(
        get("/api/v1/events/stream/order:none").await,
        404,
        "Not found",
        &[],
    )
    .await;
    assert_problem(
        get("/api/v1/events/projections/order/7?at_version=0&at=yesterday").await,
        400,
        "Invalid input",
        &["/at", "/at", "/at_version"],
    )
    .await;
    let res = app.get("/api/v1/events/stream/order:1", "not-a-key").await;
    assert_eq!(res.status(), 401);
}
