//! `GET /metrics` and self events on the real server: the exposition
//! parses as Prometheus text; request counters move by exactly what was
//! sent, per route template; histograms are cumulative; no label carries a
//! tenant or event id; group commits, stored events and the backlog
//! gauges follow real work; the token; and each API call's outcome stored
//! as a `system` event of the operator tenant, dropped and counted when
//! the buffer is full, and absent when turned off.
//!
//! Each server has its own recorder, so the numbers are this server's;
//! the checks still compare before/after deltas on their own series.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_testkit::problem::assert_problem;
use herald_testkit::receiver::WebhookReceiver;
use herald_testkit::wait::{stays, wait_for, wait_until};
use herald_testkit::{Backend, ROOT_KEY, TestApp, spawn_on, spawn_with};
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    requests_are_counted_by_route_template_with_cumulative_histograms,
    group_commits_and_backlog_gauges_follow_real_work,
    each_api_call_becomes_a_system_event_of_the_operator_tenant,
    self_events_turned_off_store_nothing,
);

const WAIT: Duration = Duration::from_secs(20);

/// One sample: its labels and value.
#[derive(Debug, Clone)]
struct Sample {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// An exposition parsed strictly: every line a `# HELP`/`# TYPE` comment
/// or `name{label="value",…} value`; a line that is neither fails.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, Vec<Sample>>,
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_labels(text: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\" in {line:?}"));
        assert!(is_name(name), "bad label name {name:?} in {line:?}");
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => panic!("bad escape {other:?} in {line:?}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        };
        assert!(
            labels.insert(name.to_string(), value).is_none(),
            "label {name} twice in {line:?}"
        );
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
    labels
}

fn parse(text: &str) -> Exposition {
    let mut e = Exposition::default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(is_name(name), "{line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "{line:?}"
                    );
                    e.types.insert(name.into(), kind.into());
                }
                (Some("HELP"), Some(name), _) => assert!(is_name(name), "{line:?}"),
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (
                name,
                parse_labels(
                    labels
                        .strip_suffix('}')
                        .unwrap_or_else(|| panic!("{line:?}")),
                    line,
                ),
            ),
            None => (series, BTreeMap::new()),
        };
        assert!(is_name(name), "bad metric name in {line:?}");
        e.samples
            .entry(name.to_string())
            .or_default()
            .push(Sample { labels, value });
    }
    e
}

impl Exposition {
    /// The value of `name` with exactly these labels (and no others); 0
    /// when the series does not exist yet.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .get(name)
            .and_then(|s| s.iter().find(|s| s.labels == want))
            .map_or(0.0, |s| s.value)
    }

    /// The `_bucket` samples of a histogram series (labels without `le`),
    /// in `le` order.
    fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut out: Vec<(f64, f64)> = self
            .samples
            .get(&format!("{name}_bucket"))
            .into_iter()
            .flatten()
            .filter(|s| {
                s.labels.len() == labels.len() + 1
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
            })
            .map(|s| {
                let le = match s.labels["le"].as_str() {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap(),
                };
                (le, s.value)
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }

    fn label_values(&self) -> Vec<String> {
        self.samples
            .values()
            .flatten()
            .flat_map(|s| s.labels.values().cloned())
            .collect()
    }
}

async fn scrape(app: &TestApp) -> Exposition {
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4"),
    );
    parse(&res.text().await.unwrap())
}

/// A tenant with the id chosen, so its id can be looked for in labels.
async fn tenant_with_id(app: &TestApp, tenant_id: &str) -> String {
    let res = app
        .post(
            "/api/v1/admin/tenants",
            ROOT_KEY,
            &json!({"name": "Metrics", "tenant_id": tenant_id}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["api_key"].as_str().unwrap().to_string()
}

async fn requests_are_counted_by_route_template_with_cumulative_histograms(backend: Backend) {
    let app = spawn_on(backend, |c| c.self_events = true).await;
    let tenant = "tenant-zq81x-metrics";
    let key = tenant_with_id(&app, tenant).await;
    let route = [("route", "/api/v1/events/create"), ("method", "POST")];
    let (created, refused) = (3, 2);
    let before = scrape(&app).await;

    let mut ids = Vec::new();
    for i in 0..created {
        let (status, out) = app
            .create(
                &key,
                &json!({"event_type": "metrics.probe", "category": "business", "data": {"i": i}}),
            )
            .await;
        assert_eq!(status, 201, "{out}");
        ids.push(out["event_id"].as_str().unwrap().to_string());
    }
    for _ in 0..refused {
        let (status, _) = app.create(&key, &json!({"category": "business"})).await;
        assert_eq!(status, 400);
    }
    // A templated route and an unknown one.
    let res = app.get(&format!("/api/v1/events/{}", ids[0]), &key).await;
    assert_eq!(res.status(), 200);
    let res = app.get(&format!("/nowhere/{}", ids[1]), &key).await;
    assert_eq!(res.status(), 404);

    let after = scrape(&app).await;
    let count = |e: &Exposition, status: &str| {
        e.value(
            "herald_http_requests_total",
            &[route[0], route[1], ("status", status)],
        )
    };
    assert_eq!(count(&after, "201") - count(&before, "201"), created as f64);
    assert_eq!(count(&after, "400") - count(&before, "400"), refused as f64);
    assert_eq!(
        after.types["herald_http_requests_total"], "counter",
        "{:?}",
        after.types
    );
    assert_eq!(
        after.value(
            "herald_http_requests_total",
            &[
                ("route", "/api/v1/events/{event_id}"),
                ("method", "GET"),
                ("status", "200")
            ]
        ),
        1.0
    );
    assert_eq!(
        after.value(
            "herald_http_requests_total",
            &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
        ),
        1.0
    );
    assert!(
        after.value("herald_http_errors_total", &[("type", "validation")])
            - before.value("herald_http_errors_total", &[("type", "validation")])
            >= refused as f64
    );

    // The latency histogram: real buckets, cumulative, +Inf = _count.
    assert_eq!(
        after.types["herald_http_request_duration_seconds"],
        "histogram"
    );
    let buckets = after.buckets("herald_http_request_duration_seconds", &route);
    assert!(buckets.len() > 5, "{buckets:?}");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "not cumulative: {buckets:?}"
    );
    let (le, total) = *buckets.last().unwrap();
    assert!(le.is_infinite());
    let histogram_count =
        |e: &Exposition| e.value("herald_http_request_duration_seconds_count", &route);
    assert_eq!(total, histogram_count(&after));
    assert_eq!(
        histogram_count(&after) - histogram_count(&before),
        (created + refused) as f64
    );
    assert!(after.value("herald_http_request_duration_seconds_sum", &route) > 0.0);

    // No label value is a tenant id, an event id or a raw path.
    for v in after.label_values() {
        assert!(!v.contains(tenant), "a tenant id in a label: {v}");
        assert!(
            !v.contains("_herald"),
            "the operator tenant in a label: {v}"
        );
        for id in &ids {
            assert!(!v.contains(id.as_str()), "an event id in a label: {v}");
        }
        assert!(!v.contains("nowhere"), "a raw path in a label: {v}");
    }
}

async fn group_commits_and_backlog_gauges_follow_real_work(backend: Backend) {
    let failing = WebhookReceiver::start().await;
    failing.respond_with(500);
    let hanging = WebhookReceiver::start().await;
    hanging.hang();
    let app = spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
    })
    .await;
    let t = app.tenant("gauges").await;
    for (name, receiver) in [("fails", &failing), ("hangs", &hanging)] {
        let res = app
            .post(
                "/api/v1/events/subscriptions",
                &t.admin_key,
                &json!({
                    "subscriber_name": name,
                    "callback_url": format!("{}/{name}", receiver.url),
                    "event_types": ["gauge.probe"],
                    "retry_policy": {"schedule": []},
                }),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    let before = scrape(&app).await;
    assert_eq!(before.value("herald_delivery_backlog", &[]), 0.0);
    assert_eq!(
        before.value("herald_dead_letters", &[("kind", "deliveries")]),
        0.0
    );

    let (status, _) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "gauge.probe", "category": "business"}),
        )
        .await;
    assert_eq!(status, 201);
    let stored = |e: &Exposition| e.value("herald_events_stored_total", &[]);
    let commits =
        |e: &Exposition| e.value("herald_group_commits_total", &[("outcome", "committed")]);
    let after = scrape(&app).await;
    assert!(stored(&after) - stored(&before) >= 1.0);
    assert!(commits(&after) > commits(&before));
    let sizes = after.buckets("herald_group_commit_events", &[]);
    assert!(sizes.windows(2).all(|w| w[0].1 <= w[1].1), "{sizes:?}");
    assert_eq!(
        sizes.last().unwrap().1,
        after.value("herald_group_commit_events_count", &[])
    );
    assert!(
        !after
            .buckets("herald_group_commit_duration_seconds", &[])
            .is_empty()
    );

    // One delivery dies at its first failure, the other hangs in flight.
    wait_for("a dead letter and a delivery in flight", WAIT, || async {
        let e = scrape(&app).await;
        let (dead, backlog) = (
            e.value("herald_dead_letters", &[("kind", "deliveries")]),
            e.value("herald_delivery_backlog", &[]),
        );
        if dead == 1.0 && backlog == 1.0 {
            Ok(())
        } else {
            Err(format!("dead {dead}, backlog {backlog}"))
        }
    })
    .await;
    hanging.release();
    wait_until("the hanging delivery to finish", WAIT, || async {
        scrape(&app).await.value("herald_delivery_backlog", &[]) == 0.0
    })
    .await;
    let e = scrape(&app).await;
    assert_eq!(
        e.value("herald_processing_backlog", &[("kind", "jobs")]),
        0.0
    );
    assert!(e.samples.contains_key("herald_processing_backlog"));
    assert!(e.samples.contains_key("herald_ingest_events_in_flight"));
    // No NATS configured: no lag series.
    assert!(!e.samples.contains_key("herald_nats_publish_lag_events"));
}

#[tokio::test]
async fn the_metrics_token_guards_the_endpoint() {
    let token = "scrape-token-0123456789";
    let app = spawn_with(|c| {
        c.metrics_token = Some(herald_server::config::Secret(token.into()));
    })
    .await;
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_problem(res, 401, "Missing or invalid API key", &[]).await;
    let res = app.get("/metrics", "wrong-token-0123456789").await;
    assert_problem(res, 401, "Missing or invalid API key", &[]).await;
    // An API key is not the metrics token.
    let res = app.get("/metrics", ROOT_KEY).await;
    assert_eq!(res.status(), 401);
    let res = app.get("/metrics", token).await;
    assert_eq!(res.status(), 200);
    let e = parse(&res.text().await.unwrap());
    assert!(
        e.value(
            "herald_http_requests_total",
            &[("route", "/metrics"), ("method", "GET"), ("status", "401")]
        ) >= 3.0
    );
}

/// The operator tenant's `herald.api.request` events, read with the root key.
async fn self_events(app: &TestApp) -> Vec<Value> {
    app.query(
        ROOT_KEY,
        &json!({"event_type": "herald.api.request", "limit": 1000}),
    )
    .await["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The self event of a `POST /api/v1/events/create` that answered `status`.
fn create_answered(events: &[Value], status: u16) -> Option<Value> {
    events
        .iter()
        .find(|e| {
            e["data"]["operation"] == "POST /api/v1/events/create" && e["data"]["status"] == status
        })
        .cloned()
}

async fn each_api_call_becomes_a_system_event_of_the_operator_tenant(backend: Backend) {
    let app = spawn_on(backend, |c| c.self_events = true).await;
    let t = app.tenant("observed").await;
    let (status, _) = app
        .create(
            &t.admin_key,
            &json!({"event_type": "x.y", "category": "business"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .create(&t.admin_key, &json!({"category": "business"}))
        .await;
    assert_eq!(status, 400);

    let (ok, bad) = wait_for("the two create calls as self events", WAIT, || async {
        let events = self_events(&app).await;
        match (create_answered(&events, 201), create_answered(&events, 400)) {
            (Some(ok), Some(bad)) => Ok((ok, bad)),
            _ => Err(format!("{} self events", events.len())),
        }
    })
    .await;
    for e in [&ok, &bad] {
        assert_eq!(e["tenant_id"], "_herald");
        assert_eq!(e["category"], "system");
        assert_eq!(e["event_source"], "system");
        assert_eq!(e["data"]["route"], "/api/v1/events/create");
        assert_eq!(e["data"]["method"], "POST");
        assert_eq!(e["data"]["tenant_id"], t.tenant_id.as_str());
        let key_id = e["data"]["key_id"].as_str().unwrap();
        assert!(!key_id.is_empty() && !t.admin_key.contains(key_id), "{e}");
        assert!(e["data"]["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(e["object"]["request_id"].is_string(), "{e}");
        assert!(e["metadata"].get("unknown_fields").is_none(), "{e}");
    }
    assert_eq!(ok["outcome"]["status"], "success");
    assert!(ok["data"].get("error_class").is_none(), "{ok}");
    assert_eq!(bad["outcome"]["status"], "failure");
    assert_eq!(bad["data"]["error_class"], "validation");
    assert_eq!(bad["data"]["problem_type"], "urn:herald:problem:validation");
    // Nothing of it shows in the tenant's own events.
    let own = app.query(&t.admin_key, &json!({})).await;
    assert_eq!(own["events"].as_array().unwrap().len(), 1, "{own}");
    // The metrics count what was stored.
    let e = scrape(&app).await;
    assert!(e.value("herald_self_events_total", &[("outcome", "stored")]) >= 2.0);
}

async fn self_events_turned_off_store_nothing(backend: Backend) {
    // The positive control: on, a call shows within the window.
    let window = Duration::from_secs(3);
    let app = spawn_on(backend, |c| c.self_events = true).await;
    let t = app.tenant("control").await;
    let body = json!({"event_type": "x", "category": "business"});
    assert_eq!(app.create(&t.admin_key, &body).await.0, 201);
    wait_until("a self event with the setting on", window, || async {
        create_answered(&self_events(&app).await, 201).is_some()
    })
    .await;

    // Off, on the same store: the same call adds none in the same window.
    let app = app.restart_with(|c| c.self_events = false).await;
    let before = self_events(&app).await.len();
    assert_eq!(app.create(&t.admin_key, &body).await.0, 201);
    stays("no self event with the setting off", window, || async {
        let now = self_events(&app).await.len();
        if now == before {
            Ok(())
        } else {
            Err(format!("{now} self events, {before} before"))
        }
    })
    .await;
    let e = scrape(&app).await;
    assert_eq!(
        e.value("herald_self_events_total", &[("outcome", "stored")]),
        0.0
    );
}

#[tokio::test]
async fn a_full_self_event_buffer_drops_and_counts_what_it_could_not_keep() {
    // A buffer of one: a burst of concurrent calls finds it full at times.
    let app = spawn_with(|c| {
        c.self_events = true;
        c.self_events_buffer = 1;
    })
    .await;
    let t = app.tenant("burst").await;
    let calls = 64;
    let bodies: Vec<Value> = (0..calls)
        .map(|i| json!({"event_type": "burst", "category": "business", "data": {"i": i}}))
        .collect();
    let answered =
        futures_util::future::join_all(bodies.iter().map(|b| app.create(&t.admin_key, b))).await;
    assert!(answered.iter().all(|(s, _)| *s == 201));
    // Every outcome so far (the tenant's creation and the burst; probes
    // and scrapes make none) is stored or dropped and counted, exactly.
    let emitted = calls as f64 + 1.0;
    let stored = wait_for(
        "every outcome stored or counted as dropped",
        WAIT,
        || async {
            let e = scrape(&app).await;
            let stored = e.value("herald_self_events_total", &[("outcome", "stored")]);
            let dropped = e.value(
                "herald_self_events_total",
                &[("outcome", "dropped_buffer_full")],
            );
            if stored + dropped == emitted {
                Ok(stored)
            } else {
                Err(format!("stored {stored}, dropped {dropped}"))
            }
        },
    )
    .await;
    // What was counted as stored is what the operator tenant holds.
    let events = self_events(&app).await;
    assert_eq!(events.len() as f64, stored, "{events:?}");
}
