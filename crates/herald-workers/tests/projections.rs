//! The projection snapshot follower and the projection cache, driven by
//! `step()` and direct calls on both stores: the follower leaves a
//! snapshot at every multiple of N as events commit (so a read folds at
//! most N events), takes each tenant's rules from its source, and repeats
//! harmlessly; the cache serves a state only at the stream's current
//! version and rules, and stays within its capacity.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use herald_core::{Fold, FoldRule, SequentialIds, TenantId};
use herald_store::StoreError;
use herald_testkit::{StoreUnderTest, on_each_backend, open_store};
use herald_workers::follower::{CommitLogFollower, Follow};
use herald_workers::projections::{
    FoldRulesSource, ProjectionCache, SNAPSHOT_CURSOR, SnapshotFollower, TenantFolds,
};
use serde_json::{Value, json};
use support::{append, tenant};

on_each_backend!(
    open = open_store;
    the_follower_keeps_a_snapshot_at_every_multiple_of_n,
    the_cache_serves_only_the_current_version_under_the_current_rules,
);

/// Every type merged; counts the rule lookups per tenant.
#[derive(Clone, Default)]
struct Rules {
    asked: Arc<AtomicUsize>,
    fingerprint: &'static str,
}

impl FoldRulesSource for Rules {
    async fn folds(&self, _tenant: &TenantId) -> Result<TenantFolds, StoreError> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        Ok(folds(self.fingerprint))
    }
}

fn folds(fingerprint: &str) -> TenantFolds {
    TenantFolds {
        fingerprint: fingerprint.to_string(),
        fold_for: Arc::new(|t: &str| Fold {
            rule: if t.ends_with(".viewed") {
                FoldRule::Ignore
            } else {
                FoldRule::Merge
            },
            path: Vec::new(),
        }),
    }
}

fn on(stream: &str, n: u64) -> Value {
    json!({"event_type": "order.updated", "category": "business", "stream_id": stream, "data": {"n": n, format!("k{n}"): true}})
}

async fn the_follower_keeps_a_snapshot_at_every_multiple_of_n(b: StoreUnderTest) {
    let t = tenant("acme");
    let ids = SequentialIds::default();
    let rules = Rules {
        fingerprint: "r1",
        ..Rules::default()
    };
    let follower = CommitLogFollower::new(b.store.clone(), SNAPSHOT_CURSOR, 100);
    let mut snapshots = SnapshotFollower::new(b.store.clone(), rules.clone(), 10);
    // 25 events on one stream, 7 on another, 3 without a stream.
    let mut bodies: Vec<Value> = (1..=25).map(|n| on("order:a", n)).collect();
    bodies.extend((1..=7).map(|n| on("order:b", n)));
    bodies.extend((0..3).map(|_| json!({"event_type": "x", "category": "system"})));
    append(&b.store, &t, &ids, &bodies).await;

    assert_eq!(
        snapshots.step(&follower).await.unwrap(),
        Follow::Handled {
            events: 35,
            through: follower.position().await.unwrap()
        }
    );
    assert_eq!(
        snapshots.taken, 2,
        "{}: versions 10 and 20 of order:a",
        b.name
    );
    assert_eq!(rules.asked.load(Ordering::Relaxed), 2);
    let nearest = |stream: &'static str| {
        let store = b.store.clone();
        let t = t.clone();
        async move {
            store
                .nearest_snapshot(&t, stream, "r1", u64::MAX >> 1, i64::MAX)
                .await
                .unwrap()
                .map(|s| s.version)
        }
    };
    assert_eq!(nearest("order:a").await, Some(20), "{}", b.name);
    assert_eq!(nearest("order:b").await, None, "{}", b.name);
    let head = b
        .store
        .fold_events(&t, "order:a", 20, u64::MAX >> 1, i64::MAX, 1000)
        .await
        .unwrap();
    assert_eq!(
        head.len(),
        5,
        "{}: a read folds the 5 after the snapshot",
        b.name
    );
    assert_eq!(snapshots.step(&follower).await.unwrap(), Follow::Caught);

    // More events: the next multiple is kept; the state is the full fold.
    append(
        &b.store,
        &t,
        &ids,
        &(26..=31).map(|n| on("order:a", n)).collect::<Vec<_>>(),
    )
    .await;
    snapshots.step(&follower).await.unwrap();
    assert_eq!(nearest("order:a").await, Some(30), "{}", b.name);
    let snap = b
        .store
        .nearest_snapshot(&t, "order:a", "r1", 30, i64::MAX)
        .await
        .unwrap()
        .unwrap();
    let mut want = serde_json::Map::new();
    for n in 1..=30 {
        want.insert(format!("k{n}"), json!(true));
    }
    want.insert("n".into(), json!(30));
    assert_eq!(snap.state, Value::Object(want), "{}", b.name);
}

async fn the_cache_serves_only_the_current_version_under_the_current_rules(b: StoreUnderTest) {
    let t = tenant("acme");
    let ids = SequentialIds::default();
    let cache = ProjectionCache::new(4);
    let r1 = folds("r1");
    let rules = r1.with_snapshots(10);
    assert_eq!(
        cache
            .current(&b.store, &t, "order:a", &rules)
            .await
            .unwrap(),
        None
    );

    append(
        &b.store,
        &t,
        &ids,
        &(1..=3).map(|n| on("order:a", n)).collect::<Vec<_>>(),
    )
    .await;
    let first = cache
        .current(&b.store, &t, "order:a", &rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.version, &first.state["n"]), (3, &json!(3)));
    let again = cache
        .current(&b.store, &t, "order:a", &rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        cache.hits_and_misses(),
        (1, 1),
        "{}: the second read is a hit",
        b.name
    );

    // A new event: the cached state is at an older version, so it is not served.
    append(&b.store, &t, &ids, &[on("order:a", 4)]).await;
    let now = cache
        .current(&b.store, &t, "order:a", &rules)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((now.version, &now.state["n"]), (4, &json!(4)), "{}", b.name);
    assert_eq!(cache.hits_and_misses(), (1, 2));
    // Other rules: not served either.
    let r2 = folds("r2");
    cache
        .current(&b.store, &t, "order:a", &r2.with_snapshots(10))
        .await
        .unwrap();
    assert_eq!(cache.hits_and_misses(), (1, 3));

    // At most its capacity: the least recently read go first.
    for s in ["order:b", "order:c", "order:d", "order:e", "order:f"] {
        append(&b.store, &t, &ids, &[on(s, 1)]).await;
        cache.current(&b.store, &t, s, &rules).await.unwrap();
        assert!(cache.len() <= 4, "{}: {} kept", b.name, cache.len());
    }
    let (hits, misses) = cache.hits_and_misses();
    cache
        .current(&b.store, &t, "order:f", &rules)
        .await
        .unwrap();
    assert_eq!(
        cache.hits_and_misses(),
        (hits + 1, misses),
        "the newest is kept"
    );
    cache
        .current(&b.store, &t, "order:a", &rules)
        .await
        .unwrap();
    assert_eq!(
        cache.hits_and_misses(),
        (hits + 1, misses + 1),
        "the oldest was dropped"
    );
}
