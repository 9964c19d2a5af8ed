//! Statistics and timeseries end to end, on both stores: every answer is
//! compared with a full scan of the same events (read back through the
//! query API) after random ingest with timestamps on and around minute,
//! hour and day edges, while events are still being processed, after
//! their status changed, with the rollups behind (the tail read from the
//! events), after a restart, and after the rollups were wiped and rebuilt.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use herald_testkit::problem::read_problem;
use herald_testkit::receiver::WebhookReceiver;
use herald_testkit::{Backend, TestApp, spawn_on};
use serde_json::{Value, json};

herald_testkit::on_each_backend!(
    statistics_agree_with_a_full_scan_through_processing_restarts_and_lag,
    timeseries_lists_every_bucket_and_splits_the_partial_ones,
    the_seed_figures_and_periods_in_a_time_zone,
);

const WAIT: Duration = Duration::from_secs(30);
const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn rfc3339(us: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).unwrap();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn now_us() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

/// Event times on and around bucket edges of the last few days.
fn timestamp(rng: &mut Rng, base: i64) -> i64 {
    let edge = match rng.below(4) {
        0 => DAY,
        1 => HOUR,
        2 => MINUTE,
        _ => 1,
    };
    let at = base + (rng.below(3 * DAY as u64) as i64 / edge) * edge;
    at + [-1, 0, 1, 17][rng.below(4) as usize]
}

const TYPES: &[(&str, &str, &str)] = &[
    ("order.created", "business", "backend"),
    ("order.shipped", "business", "backend"),
    ("payment.captured", "business", "external_api"),
    ("page.viewed", "business", "frontend"),
    ("deploy.finished", "delivery", "external_api"),
    ("db.error", "system", "backend"),
    ("login.failed", "security", "frontend"),
];

fn random_events(rng: &mut Rng, n: usize, base: i64) -> Vec<Value> {
    (0..n)
        .map(|_| {
            let (event_type, category, source) = TYPES[rng.below(TYPES.len() as u64) as usize];
            let mut e = json!({
                "event_type": event_type, "category": category, "event_source": source,
                "timestamp": rfc3339(timestamp(rng, base)),
                "data": {"n": rng.below(1000)},
            });
            // Skewed users: a few busy ones among many.
            if rng.below(5) > 0 {
                let user = if rng.below(2) == 0 {
                    rng.below(4)
                } else {
                    rng.below(40)
                };
                e["user_id"] = json!(format!("u{user}"));
            }
            e
        })
        .collect()
}

async fn ingest(app: &TestApp, key: &str, events: &[Value]) {
    for chunk in events.chunks(50) {
        let res = app
            .post("/api/v1/events/batch", key, &json!({"events": chunk}))
            .await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
}

/// Every stored event of the tenant, read through the query API.
async fn all_events(app: &TestApp, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = json!({"limit": 1000, "order": "asc"});
        if let Some(c) = &cursor {
            q["cursor"] = json!(c);
        }
        let page = app.query(key, &q).await;
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) if page["has_more"] == true => cursor = Some(c.to_string()),
            _ => return out,
        }
    }
}

fn ts_of(e: &Value) -> i64 {
    let t = time::OffsetDateTime::parse(
        e["timestamp"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// A filter as query parameters, and the same as a predicate on events.
struct Probe {
    params: String,
    keep: Box<dyn Fn(&Value) -> bool>,
}

fn probes(base: i64) -> Vec<Probe> {
    // Unaligned on purpose: edges inside a minute, inside an hour.
    let (from, to) = (
        base + DAY / 2 + 7 * MINUTE + 13,
        base + 2 * DAY + 5 * HOUR + 59 * MINUTE,
    );
    let within = move |e: &Value| (from..=to).contains(&ts_of(e));
    vec![
        Probe {
            params: String::new(),
            keep: Box::new(|_| true),
        },
        Probe {
            params: "event_type=order.created,db.error".into(),
            keep: Box::new(|e| e["event_type"] == "order.created" || e["event_type"] == "db.error"),
        },
        Probe {
            params: format!("start_time={}&end_time={}", rfc3339(from), rfc3339(to)),
            keep: Box::new(within),
        },
        Probe {
            params: format!("event_type=payment.captured&start_time={}", rfc3339(from)),
            keep: Box::new(move |e| e["event_type"] == "payment.captured" && ts_of(e) >= from),
        },
        Probe {
            params: format!("category=business&end_time={}", rfc3339(to)),
            keep: Box::new(move |e| e["category"] == "business" && ts_of(e) <= to),
        },
        Probe {
            params: "event_source=frontend".into(),
            keep: Box::new(|e| e["event_source"] == "frontend"),
        },
        // Filters the rollups do not keep: counted from the events.
        Probe {
            params: "status=failed,processing".into(),
            keep: Box::new(|e| e["status"] == "failed" || e["status"] == "processing"),
        },
        Probe {
            params: "user_id=u1".into(),
            keep: Box::new(|e| e["user_id"] == "u1"),
        },
    ]
}

/// What the statistics of `events` must be (the fields a full scan gives).
fn expected(events: &[&Value]) -> Value {
    let by = |field: &str| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for e in events {
            let k = e[field].as_str().unwrap_or("none").to_string();
            *m.entry(k).or_default() += 1;
        }
        json!(m)
    };
    let count = |s: &str| events.iter().filter(|e| e["status"] == s).count() as i64;
    let mut users: HashMap<String, i64> = HashMap::new();
    for e in events {
        if let Some(u) = e["user_id"].as_str() {
            *users.entry(u.to_string()).or_default() += 1;
        }
    }
    let mut users: Vec<(String, i64)> = users.into_iter().collect();
    users.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    users.truncate(10);
    json!({
        "total_events": events.len(),
        "pending_events": count("pending") + count("processing"),
        "processed_events": count("processed"),
        "failed_events": count("failed"),
        "events_by_type": by("event_type"),
        "events_by_source": by("event_source"),
        "events_by_category": by("category"),
        "top_users": users.into_iter().map(|(u, n)| json!({"user_id": u, "events": n, "max_error": 0})).collect::<Vec<_>>(),
        "top_users_exact": true,
    })
}

async fn stats(app: &TestApp, key: &str, params: &str) -> Value {
    let res = app
        .get(&format!("/api/v1/events/statistics?{params}"), key)
        .await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{params}: {body}");
    body
}

/// Every probe's answer matches the full scan; `from_rollups` says which
/// path the rollup-servable probes must have taken.
async fn compare(app: &TestApp, key: &str, base: i64, moment: &str) {
    let events = all_events(app, key).await;
    for p in probes(base) {
        let kept: Vec<&Value> = events.iter().filter(|e| (p.keep)(e)).collect();
        let want = expected(&kept);
        let got = stats(app, key, &p.params).await;
        for (field, value) in want.as_object().unwrap() {
            assert_eq!(
                &got[field], value,
                "{moment}: `{field}` for ?{} (answer {got})",
                p.params
            );
        }
        let processed: Vec<f64> = kept
            .iter()
            .filter(|e| e["status"] == "processed")
            .map(|e| e["processing_ms"].as_f64().unwrap_or(0.0))
            .collect();
        if processed.is_empty() {
            assert_eq!(got["average_processing_time"], Value::Null, "{moment}");
        } else {
            let avg = processed.iter().sum::<f64>() / processed.len() as f64;
            let diff = (got["average_processing_time"].as_f64().unwrap() - avg).abs();
            assert!(diff < 0.01, "{moment}: average {got} vs {avg}");
        }
    }
}

/// Every event is processed or failed: answers stop changing.
async fn settled(app: &TestApp, key: &str) {
    herald_testkit::wait::wait_for("every event to be processed or failed", WAIT, || async {
        let s = stats(app, key, "").await;
        if s["pending_events"] == 0 {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await
}

/// The rollups have folded every stored event.
async fn folded(app: &TestApp, key: &str) {
    herald_testkit::wait::wait_for("the rollups to fold every event", WAIT, || async {
        let s = stats(app, key, "").await;
        if s["rollup_lag_events"] == 0 {
            Ok(())
        } else {
            Err(s["rollup_lag_events"].to_string())
        }
    })
    .await
}

async fn statistics_agree_with_a_full_scan_through_processing_restarts_and_lag(backend: Backend) {
    let sqlite = matches!(backend, Backend::Sqlite);
    let receiver = WebhookReceiver::start().await;
    let app = spawn_on(backend, |c| {
        c.delivery_allowed_networks = "127.0.0.0/8".into();
        c.rollup_interval_ms = 10;
    })
    .await;
    let t = app.tenant("acme").await;
    let key = t.admin_key.clone();
    // Payments wait on a webhook processor held by the receiver: they stay
    // `processing` while the rollups fold them, and change status after.
    let res = app
        .post(
            "/api/v1/events/processors",
            &key,
            &json!({"processor_name": "hook", "processor_type": "webhook",
                    "filters": {"event_types": ["payment.*"]},
                    // A failed payment is retried only after the test: its
                    // status holds still while answers are compared.
                    "retry_policy": {"schedule": [3600]},
                    "config": {"url": format!("{}/p", receiver.url)}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    receiver.hang();
    let now = now_us();
    let base = now - now.rem_euclid(DAY) - 3 * DAY;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let events = random_events(&mut rng, 400, base);
    let payments = events
        .iter()
        .filter(|e| e["event_type"] == "payment.captured")
        .count();
    assert!(payments > 10);
    ingest(&app, &key, &events).await;
    // Another tenant's events never show.
    let other = app.tenant("other").await;
    ingest(&app, &other.admin_key, &random_events(&mut rng, 30, base)).await;

    herald_testkit::wait::wait_until("every payment to be in flight", WAIT, || async {
        receiver.counts().in_flight >= 1
    })
    .await;
    // Everything but the payments is processed; the payments wait.
    herald_testkit::wait::wait_for("only the payments to be pending", WAIT, || async {
        let s = stats(&app, &key, "").await;
        if s["pending_events"] == payments {
            Ok(())
        } else {
            Err(s.to_string())
        }
    })
    .await;
    folded(&app, &key).await;
    let s = stats(&app, &key, "").await;
    assert_eq!(s["computed_from"], "rollups");
    compare(&app, &key, base, "folded while payments are processing").await;

    // Half the payments fail, the rest succeed: their status changes after
    // the rollups counted them.
    receiver.respond_in_turn(&vec![500; payments / 2]);
    receiver.release();
    settled(&app, &key).await;
    folded(&app, &key).await;
    let s = stats(&app, &key, "").await;
    assert!(s["failed_events"].as_i64().unwrap() > 0, "{s}");
    compare(&app, &key, base, "after status changes").await;

    // The follower stops folding (an hour between steps): new events are
    // read from the events themselves.
    let app = app
        .restart_with(|c| {
            c.delivery_allowed_networks = "127.0.0.0/8".into();
            c.rollup_interval_ms = 3_600_000;
        })
        .await;
    let more = random_events(&mut rng, 120, base);
    let more: Vec<Value> = more
        .into_iter()
        .filter(|e| e["event_type"] != "payment.captured")
        .collect();
    ingest(&app, &key, &more).await;
    settled(&app, &key).await;
    let s = stats(&app, &key, "").await;
    assert_eq!(s["rollup_lag_events"], more.len(), "{s}");
    compare(&app, &key, base, "with the rollups behind").await;

    // A restart folds them and the answers stay the same.
    let app = app
        .restart_with(|c| {
            c.delivery_allowed_networks = "127.0.0.0/8".into();
            c.rollup_interval_ms = 10;
        })
        .await;
    folded(&app, &key).await;
    compare(&app, &key, base, "after a restart").await;

    if sqlite {
        // Rollups wiped (as after the upgrade that adds them): rebuilt
        // from the events.
        let app = app
            .restart_after(
                |dir| {
                    let db = rusqlite::Connection::open(dir.join("herald.db")).unwrap();
                    db.execute_batch(
                        "DELETE FROM stats_rollups; DELETE FROM stats_top_users; \
                         UPDATE publish_cursors SET seq = 0 WHERE name = 'rollups';",
                    )
                    .unwrap();
                },
                |c| c.rollup_interval_ms = 10,
            )
            .await;
        folded(&app, &key).await;
        compare(&app, &key, base, "after a rebuild").await;
    }
    drop(receiver);
}

async fn timeseries_lists_every_bucket_and_splits_the_partial_ones(backend: Backend) {
    let app = spawn_on(backend, |c| c.rollup_interval_ms = 10).await;
    let t = app.tenant("acme").await;
    let key = t.admin_key.clone();
    let now = now_us();
    let base = now - now.rem_euclid(DAY) - 2 * DAY;
    let mut rng = Rng(42);
    let events = random_events(&mut rng, 300, base);
    ingest(&app, &key, &events).await;
    app.eventually("events to be processed", || async {
        stats(&app, &key, "").await["pending_events"] == 0
    })
    .await;
    let stored = all_events(&app, &key).await;
    // Unaligned on both ends: the first and last buckets are partial.
    let (from, to) = (
        base + 3 * HOUR + 17 * MINUTE + 5,
        base + 2 * DAY + 4 * HOUR + 11,
    );
    for (moment, lag) in [("tail", false), ("folded", true)] {
        if lag {
            folded(&app, &key).await;
        }
        for (interval, w) in [("1h", HOUR), ("1d", DAY), ("1m", MINUTE)] {
            let (from, to) = if w == MINUTE {
                (from, from + 3 * HOUR + 7)
            } else {
                (from, to)
            };
            let res = app
                .get(
                    &format!(
                        "/api/v1/events/statistics/timeseries?interval={interval}&group_by=event_type&start_time={}&end_time={}",
                        rfc3339(from),
                        rfc3339(to)
                    ),
                    &key,
                )
                .await;
            assert_eq!(res.status(), 200);
            let body: Value = res.json().await.unwrap();
            let mut want: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
            let mut b = from - from.rem_euclid(w);
            while b < to {
                want.insert(b, BTreeMap::new());
                b += w;
            }
            for e in &stored {
                let ts = ts_of(e);
                if (from..to).contains(&ts) {
                    *want
                        .get_mut(&(ts - ts.rem_euclid(w)))
                        .unwrap()
                        .entry(e["event_type"].as_str().unwrap().to_string())
                        .or_default() += 1;
                }
            }
            let buckets = body["buckets"].as_array().unwrap();
            assert_eq!(buckets.len(), want.len(), "{moment} {interval}: {body}");
            for (got, (start, groups)) in buckets.iter().zip(&want) {
                assert_eq!(got["start"], rfc3339(*start), "{moment} {interval}");
                assert_eq!(
                    got["groups"],
                    json!(groups),
                    "{moment} {interval} bucket {}",
                    got["start"]
                );
                assert_eq!(
                    got["total"],
                    groups.values().sum::<i64>(),
                    "{moment} {interval}"
                );
            }
        }
    }
    // By status: every event is processed now.
    let res = app
        .get(
            &format!(
                "/api/v1/events/statistics/timeseries?interval=1d&group_by=status&start_time={}&end_time={}",
                rfc3339(base - DAY),
                rfc3339(base + 4 * DAY)
            ),
            &key,
        )
        .await;
    let body: Value = res.json().await.unwrap();
    let total: i64 = body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["groups"]["processed"].as_i64().unwrap())
        .sum();
    assert_eq!(total, stored.len() as i64, "{body}");
    assert_eq!(body["computed_from"], "rollups");

    // Bad parameters are all named at once.
    let res = app
        .get(
            "/api/v1/events/statistics/timeseries?interval=5m&group_by=color&start_time=yesterday&bogus=1",
            &key,
        )
        .await;
    let p = read_problem(res).await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert_eq!(
        p.fields,
        ["/bogus", "/group_by", "/interval", "/start_time"],
        "{}",
        p.body
    );
    let res = app
        .get(
            &format!(
                "/api/v1/events/statistics/timeseries?interval=1m&start_time={}&end_time={}",
                rfc3339(base),
                rfc3339(base + 30 * DAY)
            ),
            &key,
        )
        .await;
    let p = read_problem(res).await;
    assert_eq!(p.fields, ["/start_time"], "{}", p.body);
    assert!(p.body.to_string().contains("at most 10000"), "{}", p.body);
}

async fn the_seed_figures_and_periods_in_a_time_zone(backend: Backend) {
    let app = spawn_on(backend, |c| c.rollup_interval_ms = 10).await;
    let t = app.tenant("acme").await;
    let key = t.admin_key.clone();
    let now = now_us();
    let events = vec![
        json!({"event_type": "order.created", "category": "business", "user_id": "ann", "timestamp": rfc3339(now - 1_000_000)}),
        json!({"event_type": "order.created", "category": "business", "user_id": "ann", "timestamp": rfc3339(now - 2_000_000)}),
        json!({"event_type": "db.error", "category": "system", "user_id": "bob", "timestamp": rfc3339(now - 3_000_000)}),
        // Two months ago: in none of today, this week, this month.
        json!({"event_type": "db.error", "category": "system", "timestamp": rfc3339(now - 62 * DAY)}),
    ];
    ingest(&app, &key, &events).await;
    app.eventually("events to be processed", || async {
        stats(&app, &key, "").await["processed_events"] == 4
    })
    .await;
    let s = stats(&app, &key, "top=1&tz=UTC").await;
    assert_eq!(s["total_events"], 4);
    assert_eq!(s["processing_rate"], 100.0);
    assert_eq!(s["error_rate"], 0.0);
    assert_eq!(
        s["top_users"],
        json!([{"user_id": "ann", "events": 2, "max_error": 0}])
    );
    assert_eq!(
        s["top_event_types"],
        json!([{"event_type": "db.error", "events": 2}])
    );
    assert_eq!(s["events_by_category"], json!({"business": 2, "system": 2}));
    assert!(s["average_processing_time"].is_number(), "{s}");
    assert_eq!(s["time_zone"], "UTC");
    // Three events seconds old are today, this week and this month in
    // any zone (unless a local midnight passed in those seconds); the one
    // two months old in none.
    for tz in ["UTC", "Europe/Berlin", "-09:30", "Pacific/Kiritimati"] {
        let s = stats(&app, &key, &format!("tz={tz}")).await;
        assert_eq!(
            (
                &s["events_today"],
                &s["events_this_week"],
                &s["events_this_month"]
            ),
            (&json!(3), &json!(3), &json!(3)),
            "{tz}: {s}"
        );
    }
    // A range the periods do not meet counts nothing in them.
    let s = stats(&app, &key, &format!("end_time={}", rfc3339(now - 30 * DAY))).await;
    assert_eq!(s["total_events"], 1, "{s}");
    assert_eq!(s["events_this_week"], 0, "{s}");
    // Bad parameters, all named.
    let res = app
        .get(
            "/api/v1/events/statistics?tz=Mars/Olympus&top=0&status=nope",
            &key,
        )
        .await;
    let p = read_problem(res).await;
    assert_eq!(p.status, 400, "{}", p.body);
    assert_eq!(p.fields, ["/status", "/top", "/tz"], "{}", p.body);
    // Scopes: a write-only key may not read statistics.
    let writer = app.key(&t, &["ingest"]).await;
    let res = app.get("/api/v1/events/statistics", &writer).await;
    assert_eq!(res.status(), 403);
}

/// The same events on both stores give the same answers, field for field
/// (but the moment each was generated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_stores_answer_the_same_statistics() {
    let Some(pg) = Backend::postgres() else {
        return;
    };
    let now = now_us();
    let base = now - now.rem_euclid(DAY) - 2 * DAY;
    let events = random_events(&mut Rng(7), 300, base);
    let mut answers = Vec::new();
    for backend in [Backend::Sqlite, pg] {
        let app = spawn_on(backend, |c| c.rollup_interval_ms = 10).await;
        let t = app.tenant("acme").await;
        ingest(&app, &t.admin_key, &events).await;
        settled(&app, &t.admin_key).await;
        folded(&app, &t.admin_key).await;
        let mut got = Vec::new();
        for p in probes(base) {
            let mut s = stats(&app, &t.admin_key, &format!("{}&top=20", p.params)).await;
            s.as_object_mut().unwrap().remove("generated_at");
            got.push(s);
        }
        for q in [
            "interval=1h&group_by=event_type",
            "interval=1d&group_by=status",
            "interval=1m&group_by=category",
        ] {
            let res = app
                .get(
                    &format!(
                        "/api/v1/events/statistics/timeseries?{q}&start_time={}&end_time={}",
                        rfc3339(base + 7 * HOUR + 13),
                        rfc3339(base + 9 * HOUR)
                    ),
                    &t.admin_key,
                )
                .await;
            assert_eq!(res.status(), 200);
            got.push(res.json::<Value>().await.unwrap());
        }
        answers.push(got);
    }
    for (sqlite, postgres) in answers[0].iter().zip(&answers[1]) {
        assert_eq!(sqlite, postgres);
    }
}
