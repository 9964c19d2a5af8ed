//! Streams and projections on both stores: appends racing with one
//! expectation have exactly one winner (also across two stores sharing one
//! PostgreSQL), a projection folds each type by its rule, keeps a snapshot
//! every N versions and folds at most N events past it, time travel by
//! version and by processing time, snapshots folded under other rules are
//! never used, and (a property) folding from any snapshot equals folding
//! from the start.

use std::sync::Arc;

use herald_core::{
    EmailHasher, EventProcessor, Fold, FoldRule, ProcessingContext, TenantId, Timestamp,
};
use herald_store::*;
use herald_testkit::store::pg_options;
use herald_testkit::{Backend, PgSchema, StoreUnderTest, on_each_backend, open_store, pg_url};
use proptest::prelude::*;
use serde_json::{Value, json};

on_each_backend!(
    open = open_store;
    racing_appends_with_one_expectation_have_exactly_one_winner,
    a_projection_folds_by_rule_and_reads_at_most_n_events_past_a_snapshot,
    time_travel_by_processing_time_leaves_out_what_was_stored_later,
    snapshots_folded_under_other_rules_are_never_used,
);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// An event of `stream` processed at `at`.
fn event_at(t: &TenantId, body: Value, at: Timestamp) -> NewEvent {
    let hasher = EmailHasher::new(b"streams");
    let ctx = ProcessingContext {
        tenant_id: t,
        email_hasher: &hasher,
        processing_timestamp: at,
        ids: &herald_core::UuidV7Ids::new(),
        traceparent: None,
    };
    let processed = EventProcessor::default()
        .process_value(body, &ctx)
        .expect("valid test event");
    NewEvent {
        event: processed.event,
        expected_version: processed.expected_version,
    }
}

fn event(t: &TenantId, stream: &str, event_type: &str, data: Value) -> NewEvent {
    event_at(
        t,
        json!({"event_type": event_type, "category": "business", "stream_id": stream, "data": data}),
        Timestamp::now(),
    )
}

/// The test's rules: `*.replaced` replace, `*.deleted` delete, `*.viewed`
/// ignore, `*.shipped` merge under `/shipping`, anything else merge.
fn rule_of(event_type: &str) -> Fold {
    let (rule, path) = match event_type.rsplit('.').next().unwrap_or("") {
        "replaced" => (FoldRule::Replace, ""),
        "deleted" => (FoldRule::Delete, ""),
        "viewed" => (FoldRule::Ignore, ""),
        "shipped" => (FoldRule::Merge, "/shipping"),
        _ => (FoldRule::Merge, ""),
    };
    Fold {
        rule,
        path: Fold::parse_path(path).unwrap(),
    }
}

fn rules(fingerprint: &str, every: u64) -> FoldRules<'_> {
    FoldRules {
        fingerprint,
        fold_for: &rule_of,
        snapshot_every: every,
    }
}

/// The oracle: a plain left fold of `(type, data)` from `null`.
fn fold_all<'a>(events: impl IntoIterator<Item = &'a (String, Value)>) -> Value {
    let mut state = Value::Null;
    for (t, data) in events {
        rule_of(t).apply(&mut state, data);
    }
    state
}

async fn append_all(store: &Store, events: Vec<NewEvent>) {
    for out in store.append(events).await.unwrap() {
        assert!(matches!(out, AppendOutcome::Stored(_)), "{out:?}");
    }
}

async fn racing_appends_with_one_expectation_have_exactly_one_winner(b: StoreUnderTest) {
    race(&b.store, &b.store, b.name).await;
}

/// Rounds of eight appends to one stream, all expecting the version the
/// stream is at (the first round `no_stream`), half through `one`, half
/// through `other`: exactly one wins each round.
async fn race(one: &Store, other: &Store, name: &str) {
    let t = tenant("racers");
    for round in 0..10u64 {
        let expected = if round == 0 {
            json!("no_stream")
        } else {
            json!(round)
        };
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = if i % 2 == 0 { one.clone() } else { other.clone() };
                let e = event_at(
                    &t,
                    json!({"event_type": "order.updated", "category": "business",
                           "stream_id": "order:race", "expected_version": expected, "data": {"by": i}}),
                    Timestamp::now(),
                );
                tokio::spawn(async move { store.append(vec![e]).await.unwrap().pop().unwrap() })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            match task.await.unwrap() {
                AppendOutcome::Stored(e) => {
                    won += 1;
                    assert_eq!(e.stream_version, Some(round + 1), "{name}");
                }
                AppendOutcome::VersionConflict { actual, .. } => {
                    assert_eq!(
                        actual,
                        round + 1,
                        "{name}: a loser sees the winner's version"
                    )
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(won, 1, "{name}: round {round} had {won} winners");
    }
    assert_eq!(one.stream_version(&t, "order:race").await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_racing_through_two_stores_on_one_postgres_have_one_winner() {
    let Some(url) = pg_url() else { return };
    let schema = PgSchema::named(&url, "streams_race");
    let open = || async {
        Store::open_postgres(pg_options(&schema), time::OffsetDateTime::now_utc())
            .await
            .expect("PostgreSQL")
    };
    let (one, other) = (open().await, open().await);
    race(&one, &other, "two postgres stores").await;
}

async fn a_projection_folds_by_rule_and_reads_at_most_n_events_past_a_snapshot(b: StoreUnderTest) {
    let t = tenant("acme");
    let s = "order:long";
    let mut log = Vec::new();
    let mut batch = Vec::new();
    for v in 1..=250u64 {
        let (ty, data) = match v % 7 {
            0 => ("order.shipped", json!({"city": format!("c{v}")})),
            3 => ("order.viewed", json!({"n": -1})),
            5 if v == 145 => ("order.deleted", json!({})),
            6 if v == 146 => ("order.replaced", json!({"fresh": true})),
            _ => ("order.updated", json!({"n": v, "note": null})),
        };
        log.push((ty.to_string(), data.clone()));
        batch.push(event(&t, s, ty, data));
    }
    append_all(&b.store, batch).await;
    let r = rules("r1", 100);

    let now = b
        .store
        .project(&t, s, ProjectionAt::Latest, &r)
        .await
        .unwrap()
        .expect(b.name);
    assert_eq!(now.version, 250, "{}", b.name);
    assert_eq!(now.state, fold_all(&log), "{}", b.name);
    // Snapshots at 100 and 200: the next read folds 50 events, not 250.
    let nearest = b
        .store
        .nearest_snapshot(&t, s, "r1", u64::MAX >> 1, i64::MAX)
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(nearest.version, 200, "{}", b.name);
    assert_eq!(nearest.state, fold_all(&log[..200]), "{}", b.name);
    let past = b
        .store
        .fold_events(&t, s, nearest.version, u64::MAX >> 1, i64::MAX, 10_000)
        .await
        .unwrap();
    assert_eq!(past.len(), 50, "{}", b.name);

    // Every version, folded from the nearest snapshot, is the fold of its prefix.
    for n in [1, 99, 100, 101, 144, 145, 146, 199, 200, 201, 250] {
        let at = b
            .store
            .project(&t, s, ProjectionAt::Version(n), &r)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(at.version, n, "{}", b.name);
        assert_eq!(at.state, fold_all(&log[..n as usize]), "{} at {n}", b.name);
    }
    // The delete at 145 leaves no entity; the replace at 146 starts it again.
    let deleted = b
        .store
        .project(&t, s, ProjectionAt::Version(145), &r)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deleted.state, Value::Null, "{}", b.name);
    let again = b
        .store
        .project(&t, s, ProjectionAt::Version(146), &r)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.state, json!({"fresh": true}), "{}", b.name);
    // Another tenant's stream of the same id is another entity.
    assert_eq!(
        b.store
            .project(&tenant("globex"), s, ProjectionAt::Latest, &r)
            .await
            .unwrap(),
        None
    );
}

async fn time_travel_by_processing_time_leaves_out_what_was_stored_later(b: StoreUnderTest) {
    let t = tenant("acme");
    let s = "order:tt";
    let at = |secs: i64| Timestamp::from_parts(1_800_000_000 + secs, 0, 0).unwrap();
    let body = |n: i64| json!({"event_type": "order.updated", "category": "business", "stream_id": s, "data": {"n": n}});
    // Versions 1..=4 processed at 10, 20, 30 s; version 4 was received at
    // 15 s but committed last (a slow request): it is in the past of 20 s.
    append_all(
        &b.store,
        vec![
            event_at(&t, body(1), at(10)),
            event_at(&t, body(2), at(20)),
            event_at(&t, body(3), at(30)),
            event_at(&t, body(4), at(15)),
        ],
    )
    .await;
    // Snapshots every 2: the one at 2 holds version 2 (processed at 20 s).
    let r = rules("r1", 2);
    b.store
        .project(&t, s, ProjectionAt::Latest, &r)
        .await
        .unwrap();
    let (store, t, r) = (&b.store, &t, &r);
    let when = |secs| async move {
        store
            .project(t, s, ProjectionAt::Time(at(secs)), r)
            .await
            .unwrap()
    };
    assert_eq!(when(5).await, None, "{}: nothing stored by then", b.name);
    let p = when(12).await.unwrap();
    assert_eq!((p.version, p.state), (1, json!({"n": 1})), "{}", b.name);
    // At 16 s: versions 1 and 4; version 2 (processed at 20 s) is not in
    // it, so the snapshot at 2 must not be used either.
    let p = when(16).await.unwrap();
    assert_eq!(
        (p.version, p.state.clone()),
        (4, json!({"n": 4})),
        "{}",
        b.name
    );
    assert_eq!(p.updated_at, at(15), "{}", b.name);
    let p = when(25).await.unwrap();
    assert_eq!(p.version, 4, "{}", b.name);
    let p = when(40).await.unwrap();
    assert_eq!((p.version, p.state), (4, json!({"n": 4})), "{}", b.name);
}

async fn snapshots_folded_under_other_rules_are_never_used(b: StoreUnderTest) {
    let t = tenant("acme");
    let s = "order:rules";
    let log: Vec<(String, Value)> = (1..=30)
        .map(|v| {
            let ty = if v % 3 == 0 {
                "order.viewed"
            } else {
                "order.updated"
            };
            (ty.to_string(), json!({ format!("k{v}"): v }))
        })
        .collect();
    append_all(
        &b.store,
        log.iter()
            .map(|(ty, d)| event(&t, s, ty, d.clone()))
            .collect(),
    )
    .await;
    let old = |_: &str| Fold::default(); // every type merged: `viewed` counts
    let old_rules = FoldRules {
        fingerprint: "old",
        fold_for: &old,
        snapshot_every: 10,
    };
    let folded_old = b
        .store
        .project(&t, s, ProjectionAt::Latest, &old_rules)
        .await
        .unwrap()
        .unwrap();
    assert!(folded_old.state.get("k3").is_some(), "{}", b.name);
    // Under the new rules (`viewed` ignored) the old snapshots are skipped,
    // the state is the new fold, and the snapshots are rebuilt.
    let new_rules = rules("new", 10);
    assert_eq!(
        b.store
            .nearest_snapshot(&t, s, "new", u64::MAX >> 1, i64::MAX)
            .await
            .unwrap(),
        None
    );
    let folded_new = b
        .store
        .project(&t, s, ProjectionAt::Latest, &new_rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(folded_new.state, fold_all(&log), "{}", b.name);
    assert!(folded_new.state.get("k3").is_none(), "{}", b.name);
    let rebuilt = b
        .store
        .nearest_snapshot(&t, s, "new", u64::MAX >> 1, i64::MAX)
        .await
        .unwrap()
        .expect("rebuilt under the new rules");
    assert_eq!(rebuilt.version, 30, "{}", b.name);
    assert_eq!(rebuilt.state, fold_all(&log), "{}", b.name);
}

/// One generated stream: `(type, data)` per version.
fn stream_strategy() -> impl Strategy<Value = Vec<(String, Value)>> {
    let ty = prop_oneof![
        4 => Just("order.updated"),
        1 => Just("order.replaced"),
        1 => Just("order.deleted"),
        1 => Just("order.viewed"),
        2 => Just("order.shipped"),
    ];
    let key = prop_oneof![Just("a"), Just("b"), Just("c")];
    let value = prop_oneof![
        3 => any::<i32>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => "[a-z]{0,3}".prop_map(Value::from),
        1 => (key.clone(), any::<bool>()).prop_map(|(k, v)| json!({ k: v })),
    ];
    let data = prop::collection::btree_map(key, value, 0..3)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()));
    prop::collection::vec((ty.prop_map(str::to_string), data), 1..40)
}

/// Projection snapshots: for random streams and every snapshot interval
/// k, the state folded from the nearest snapshot equals the fold of all
/// events, and `at_version = n` equals the fold of the first n events.
#[test]
fn projection_snapshots_fold_to_the_same_state_as_the_whole_stream() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut stores = vec![rt.block_on(open_store(Backend::Sqlite))];
    if let Some(pg) = Backend::postgres() {
        stores.push(rt.block_on(open_store(pg)));
    }
    let stores = Arc::new(stores);
    let case = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    };
    proptest!(config, |(log in stream_strategy(), every in 1u64..8)| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for b in stores.iter() {
            let t = tenant(&format!("case{n}"));
            let s = "order:p";
            rt.block_on(append_all(
                &b.store,
                log.iter().map(|(ty, d)| event(&t, s, ty, d.clone())).collect(),
            ));
            let r = rules("p", every);
            // The first read folds everything and leaves snapshots; the
            // rest fold from them.
            for _ in 0..2 {
                let p = rt.block_on(b.store.project(&t, s, ProjectionAt::Latest, &r)).unwrap().unwrap();
                prop_assert_eq!(&p.state, &fold_all(&log), "{}", b.name);
                prop_assert_eq!(p.version, log.len() as u64);
                for k in 1..=log.len() {
                    let at = rt.block_on(b.store.project(&t, s, ProjectionAt::Version(k as u64), &r)).unwrap().unwrap();
                    prop_assert_eq!(&at.state, &fold_all(&log[..k]), "{} at {}", b.name, k);
                }
            }
            let snap = rt.block_on(b.store.nearest_snapshot(&t, s, "p", u64::MAX >> 1, i64::MAX)).unwrap();
            let want = log.len() as u64 / every * every;
            prop_assert_eq!(snap.map(|s| s.version), (want > 0).then_some(want));
        }
    });
}
