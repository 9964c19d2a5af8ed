//! The delivery fan-out on each backend, driven by calling its step: stored
//! events become exactly one pending delivery per matching (event,
//! enabled subscription of the event's tenant) pair, once, committed with
//! the cursor; later events are picked up from the cursor.

use std::collections::BTreeSet;
use std::sync::Arc;

use herald_core::{Clock, EventId, ManualClock, SequentialIds, TenantId};
use herald_store::{DeliveryState, Store};
use herald_testkit::on_each_backend;
use herald_workers::fanout::{FAN_OUT_CURSOR, FanOut, FanOutCounts};
use herald_workers::follower::{CommitLogFollower, Follow};
use serde_json::json;

use herald_testkit::{StoreUnderTest as Opened, open_store as open};

mod support;
use support::{append, at, event, subscription, tenant};

on_each_backend!(
    open = open;
    stored_events_fan_out_to_exactly_the_matching_subscriptions_once,
    a_fan_out_repeated_from_the_start_adds_no_row,
);

/// Every stored (event, subscription) delivery pair of the events `ids`.
async fn pairs(store: &Store, tenant: &TenantId, ids: &[EventId]) -> BTreeSet<(EventId, String)> {
    let mut out = BTreeSet::new();
    for id in ids {
        for d in store.deliveries_of_event(tenant, *id).await.unwrap() {
            assert!(
                out.insert((d.event_id, d.subscription_id.clone())),
                "one delivery per pair: {d:?}"
            );
        }
    }
    out
}

async fn stored_events_fan_out_to_exactly_the_matching_subscriptions_once(o: Opened) {
    let store = &o.store;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    for s in [
        subscription(
            &acme,
            "sub_orders",
            json!({"event_types": ["order.*"]}),
            true,
        ),
        subscription(
            &acme,
            "sub_frontend",
            json!({"event_sources": ["frontend"]}),
            true,
        ),
        subscription(
            &acme,
            "sub_big",
            json!({"filter": "event.data.amount > 100"}),
            true,
        ),
        subscription(&acme, "sub_off", json!({}), false),
        subscription(&globex, "sub_globex", json!({}), true),
    ] {
        store.insert_subscription(s).await.unwrap();
    }
    let ids = SequentialIds::default();
    let a = append(
        store,
        &acme,
        &ids,
        &[
            event("order.created", "backend", json!({"amount": 50})),
            event("order.paid", "frontend", json!({"amount": 500})),
            event("user.signup", "backend", json!({"amount": 150})),
            // No amount: `sub_big`'s filter fails to evaluate, no match.
            event("user.login", "frontend", json!({})),
        ],
    )
    .await;
    let g = append(
        store,
        &globex,
        &ids,
        &[event("order.created", "backend", json!({"amount": 900}))],
    )
    .await;

    let clock = Arc::new(ManualClock::new(at("2030-01-02T03:05:00Z")));
    let follower = CommitLogFollower::new(store.clone(), FAN_OUT_CURSOR, 100);
    let mut fan_out = FanOut::new(clock.clone());
    let step = fan_out.step(&follower, store).await.unwrap();
    assert!(
        matches!(step, Follow::Handled { events: 5, .. }),
        "{step:?}"
    );

    let pair = |e: EventId, s: &str| (e, s.to_string());
    let expected_acme = BTreeSet::from([
        pair(a[0], "sub_orders"),
        pair(a[1], "sub_orders"),
        pair(a[1], "sub_frontend"),
        pair(a[1], "sub_big"),
        pair(a[2], "sub_big"),
        pair(a[3], "sub_frontend"),
    ]);
    assert_eq!(pairs(store, &acme, &a).await, expected_acme);
    assert_eq!(
        pairs(store, &globex, &g).await,
        BTreeSet::from([pair(g[0], "sub_globex")])
    );
    assert_eq!(
        fan_out.counts(),
        FanOutCounts {
            deliveries: 7,
            filter_errors: 1,
            unreadable_subscriptions: 0
        }
    );
    let committed = store.events_after(0, 100).await.unwrap();
    let seq_of_a1 = committed.iter().find(|e| e.event_id == a[1]).unwrap().seq;
    let all = store.deliveries_of_event(&acme, a[1]).await.unwrap();
    for d in &all {
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.next_attempt_at, clock.now(), "due at the clock's now");
        assert_eq!(d.seq, seq_of_a1, "the event's commit seq");
        assert!(d.delivery_id.starts_with("dlv_") && d.webhook_id.starts_with("msg_"));
    }
    let due = store.due_deliveries(clock.now(), 100).await.unwrap();
    assert_eq!(due.len(), 7, "every delivery is due now");

    // Caught up: a second step hands nothing over and adds nothing.
    assert_eq!(
        fan_out.step(&follower, store).await.unwrap(),
        Follow::Caught
    );
    assert_eq!(fan_out.counts().deliveries, 7);

    // An event stored later is picked up from the cursor, alone.
    let later = append(
        store,
        &acme,
        &ids,
        &[event("order.shipped", "frontend", json!({}))],
    )
    .await;
    let step = fan_out.step(&follower, store).await.unwrap();
    assert!(
        matches!(step, Follow::Handled { events: 1, .. }),
        "{step:?}"
    );
    assert_eq!(
        pairs(store, &acme, &later).await,
        BTreeSet::from([pair(later[0], "sub_orders"), pair(later[0], "sub_frontend")])
    );
    assert_eq!(
        pairs(store, &acme, &a).await,
        expected_acme,
        "earlier rows unchanged"
    );
    assert_eq!(fan_out.counts().deliveries, 9);
}

async fn a_fan_out_repeated_from_the_start_adds_no_row(o: Opened) {
    let store = &o.store;
    let acme = tenant("acme");
    store
        .insert_subscription(subscription(&acme, "sub_all", json!({}), true))
        .await
        .unwrap();
    let ids = SequentialIds::default();
    let a = append(
        store,
        &acme,
        &ids,
        &[
            event("a.b", "backend", json!({})),
            event("a.c", "backend", json!({})),
        ],
    )
    .await;
    let clock = Arc::new(ManualClock::new(at("2030-01-02T03:05:00Z")));
    let mut first = FanOut::new(clock.clone());
    first
        .step(
            &CommitLogFollower::new(store.clone(), FAN_OUT_CURSOR, 10),
            store,
        )
        .await
        .unwrap();
    assert_eq!(first.counts().deliveries, 2, "positive control");
    let before = store.deliveries_of_event(&acme, a[0]).await.unwrap();

    // The same batch again from a cursor at 0, as after a crash that lost
    // the cursor move: the rows derive from the same pairs, so none is new.
    clock.advance(time::Duration::minutes(5));
    let mut again = FanOut::new(clock.clone());
    let step = again
        .step(
            &CommitLogFollower::new(store.clone(), "fan-out-again", 10),
            store,
        )
        .await
        .unwrap();
    assert!(
        matches!(step, Follow::Handled { events: 2, .. }),
        "{step:?}"
    );
    assert_eq!(again.counts().deliveries, 0);
    assert_eq!(
        store.deliveries_of_event(&acme, a[0]).await.unwrap(),
        before
    );
    assert_eq!(
        pairs(store, &acme, &a).await,
        BTreeSet::from([(a[0], "sub_all".to_string()), (a[1], "sub_all".to_string())])
    );
}
