//! The live tail matches events in memory (`EventFilter::matches`, through
//! `TailSelection`); the store selects them with SQL. On each backend,
//! random events are stored and random filters (every field the tail
//! takes, with values that hit and values that miss) must select exactly
//! the same events both ways.

use herald_core::filter::EventFilter;
use herald_core::{CanonicalEvent, SequentialIds};
use herald_store::ReplayScan;
use herald_testkit::on_each_backend;
use herald_testkit::{StoreUnderTest as Opened, open_store as open};
use herald_workers::tail::TailSelection;
use proptest::prelude::Rng;
use proptest::test_runner::{RngAlgorithm, TestRng};
use serde_json::{Map, Value, json};

mod support;
use support::{append, tenant};

on_each_backend!(
    open = open;
    the_in_memory_match_selects_what_the_store_selects,
);

/// One value of a small pool, by proptest's seeded generator.
fn pick<'a, T>(rng: &mut TestRng, pool: &'a [T]) -> &'a T {
    &pool[rng.next_u32() as usize % pool.len()]
}

const TYPES: &[&str] = &["shop.order", "shop.refund", "auth.login"];
const SOURCES: &[&str] = &["backend", "frontend", "scheduled"];
const CATEGORIES: &[&str] = &["business", "security", "system"];
const TIMES: &[&str] = &[
    "2030-01-02T10:00:00Z",
    "2030-01-02T10:00:00.000001Z",
    "2030-01-02T11:30:00+02:00",
    "2030-01-03T00:00:00Z",
];
const USERS: &[&str] = &["u1", "u2"];
const ROLES: &[&str] = &["admin", "viewer"];
const ORDERS: &[&str] = &["o1", "o2"];
const ENVS: &[&str] = &["prod", "dev"];
const SERVICES: &[&str] = &["api", "web"];
const OUTCOMES: &[&str] = &["success", "failure"];
const REASONS: &[&str] = &["timeout", "declined"];
const STREAMS: &[&str] = &["order:1", "order:2"];
const TRACES: &[&str] = &[
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "0af7651916cd43dd8448eb211c80319c",
];

/// Sets `key` to a value of `pool` half the time.
fn maybe(rng: &mut TestRng, m: &mut Map<String, Value>, key: &str, pool: &[&str]) {
    if rng.next_u32().is_multiple_of(2) {
        m.insert(key.into(), json!(pick(rng, pool)));
    }
}

fn random_event(rng: &mut TestRng) -> Value {
    let mut actor = Map::new();
    maybe(rng, &mut actor, "user_id", USERS);
    maybe(rng, &mut actor, "role", ROLES);
    let mut object = Map::new();
    maybe(rng, &mut object, "order_id", ORDERS);
    let mut context = Map::new();
    context.insert("environment".into(), json!(pick(rng, ENVS)));
    maybe(rng, &mut context, "service", SERVICES);
    let mut outcome = Map::new();
    outcome.insert("status".into(), json!(pick(rng, OUTCOMES)));
    maybe(rng, &mut outcome, "reason", REASONS);
    let mut correlation = Map::new();
    maybe(rng, &mut correlation, "trace_id", TRACES);
    let mut body = json!({
        "event_type": pick(rng, TYPES),
        "category": pick(rng, CATEGORIES),
        "event_source": pick(rng, SOURCES),
        "timestamp": pick(rng, TIMES),
        "actor": actor, "object": object, "context": context,
        "outcome": outcome, "correlation": correlation,
    });
    let m = body.as_object_mut().unwrap();
    maybe(rng, m, "stream_id", STREAMS);
    body
}

/// A filter body with some of the fields the tail takes; every pool has a
/// value no event has.
fn random_filter(rng: &mut TestRng) -> Value {
    let mut f = Map::new();
    let with_miss = |pool: &[&'static str]| {
        let mut p = pool.to_vec();
        p.push("nobody");
        p
    };
    if rng.next_u32().is_multiple_of(3) {
        let n = 1 + rng.next_u32() as usize % 2;
        let list: Vec<&str> = (0..n).map(|_| *pick(rng, TYPES)).collect();
        f.insert("event_types".into(), json!(list));
    }
    for (key, pool) in [
        ("event_source", SOURCES),
        ("category", CATEGORIES),
        ("user_id", &with_miss(USERS)[..]),
        ("order_id", &with_miss(ORDERS)[..]),
        ("trace_id", TRACES),
        ("environment", &with_miss(ENVS)[..]),
        ("service", SERVICES),
        ("outcome_status", OUTCOMES),
        ("stream_id", &with_miss(STREAMS)[..]),
    ] {
        if rng.next_u32().is_multiple_of(4) {
            f.insert(key.into(), json!(pick(rng, pool)));
        }
    }
    if rng.next_u32().is_multiple_of(4) {
        f.insert("start_time".into(), json!(pick(rng, TIMES)));
    }
    if rng.next_u32().is_multiple_of(4) {
        f.insert("end_time".into(), json!(pick(rng, TIMES)));
    }
    if rng.next_u32().is_multiple_of(4) {
        f.insert(
            "actor".into(),
            json!({"role": pick(rng, &with_miss(ROLES))}),
        );
    }
    if rng.next_u32().is_multiple_of(4) {
        f.insert(
            "outcome".into(),
            json!({"reason": pick(rng, &with_miss(REASONS))}),
        );
    }
    Value::Object(f)
}

async fn the_in_memory_match_selects_what_the_store_selects(t: Opened) {
    let store = &t.store;
    let mut rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let ids = SequentialIds::default();
    let bodies: Vec<Value> = (0..240).map(|_| random_event(&mut rng)).collect();
    append(store, &tenant("acme"), &ids, &bodies).await;
    // Another tenant's events, which neither way may select.
    append(store, &tenant("globex"), &ids, &bodies[..20]).await;
    let stored: Vec<(i64, CanonicalEvent)> = store
        .events_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.seq, serde_json::from_str(&s.body).unwrap()))
        .collect();
    assert_eq!(stored.len(), 260);
    let (mut checked, mut nonempty) = (0, 0);
    while checked < 300 {
        let body = random_filter(&mut rng);
        let filter = match EventFilter::from_json(&body) {
            Ok(f) => f,
            // `start_time` after `end_time`.
            Err(_) => continue,
        };
        assert!(filter.in_memory_gaps().is_empty());
        let scan = ReplayScan {
            filter: filter.clone(),
            ..ReplayScan::default()
        };
        let by_sql: Vec<i64> = store
            .replay_events(&tenant("acme"), &scan, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.seq)
            .collect();
        let selection = TailSelection {
            filter,
            from_version: None,
        };
        let in_memory: Vec<i64> = stored
            .iter()
            .filter(|(_, e)| e.tenant_id.as_str() == "acme" && selection.matches(e))
            .map(|(seq, _)| *seq)
            .collect();
        assert_eq!(in_memory, by_sql, "{}: filter {body}", t.name);
        checked += 1;
        if !by_sql.is_empty() {
            nonempty += 1;
        }
    }
    // The filters were not all trivially empty (or all-matching).
    assert!(nonempty > 30, "{nonempty} filters matched something");
}
