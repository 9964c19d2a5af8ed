//! The wait matcher, lookback and timeouts on each backend, driven by
//! calling their steps with a manual clock: a matching event resolves a
//! wait once (exact types, patterns, filters over `wait.context`,
//! alternatives, tenants); an event stored before a wait resolves it only
//! through its lookback; an event stored at or after the timeout never
//! does; and a matching event racing the timeout ends the wait exactly
//! one way, round after round.

use std::sync::Arc;

use herald_core::{
    Clock, EmailHasher, EventId, EventProcessor, ManualClock, ProcessingContext, SequentialIds,
    TenantId, Timestamp,
};
use herald_store::{NewEvent, NewWait, Store, WaitAlternative, WaitSpec, WaitStatus};
use herald_testkit::on_each_backend;
use herald_workers::follower::{CommitLogFollower, Follow};
use herald_workers::waits::{WAITS_CURSOR, WaitMatcher, WaitTimeouts, look_back};
use serde_json::{Value, json};

use herald_testkit::{StoreUnderTest as Opened, open_store as open};

mod support;
use support::{at, tenant};

on_each_backend!(
    open = open;
    a_matching_event_resolves_exactly_the_waits_it_matches_once,
    an_event_stored_before_a_wait_resolves_it_only_through_the_lookback,
    an_event_stored_at_or_after_the_timeout_never_resolves_the_wait,
    a_matching_event_racing_the_timeout_ends_the_wait_exactly_once,
);

const START: &str = "2030-01-02T03:00:00Z";

fn alt(event_type: &str, filter: Option<&str>) -> WaitAlternative {
    WaitAlternative {
        event_type: event_type.into(),
        filter: filter.map(str::to_string),
    }
}

fn wait(
    t: &TenantId,
    id: &str,
    any_of: Vec<WaitAlternative>,
    context: Value,
    created: Timestamp,
    timeout_secs: u64,
) -> NewWait {
    let timeout_us = created.unix_micros() + timeout_secs as i64 * 1_000_000;
    NewWait {
        wait_id: id.into(),
        tenant_id: t.clone(),
        workflow_instance_id: "wf-1".into(),
        spec: WaitSpec {
            any_of,
            context,
            lookback_secs: 0,
        },
        timeout_at: Timestamp::from_parts(timeout_us / 1_000_000, 0, 0).unwrap(),
        callback_url: None,
        webhook_secret: None,
        created_at: created,
    }
}

/// Stores one event per `(type, data)`, processed at `processed`.
async fn append(
    store: &Store,
    t: &TenantId,
    processed: Timestamp,
    events: &[(&str, Value)],
) -> Vec<EventId> {
    let hasher = EmailHasher::new(b"k");
    let ids = SequentialIds::default();
    let ctx = ProcessingContext {
        tenant_id: t,
        email_hasher: &hasher,
        processing_timestamp: processed,
        ids: &ids,
        traceparent: None,
    };
    let _ = ids;
    let events: Vec<NewEvent> = events
        .iter()
        .map(|(ty, data)| NewEvent {
            event: EventProcessor::default()
                .process_value(
                    json!({"event_type": ty, "category": "business", "data": data}),
                    &ctx,
                )
                .unwrap()
                .event,
            expected_version: Default::default(),
        })
        .collect();
    let out = events.iter().map(|e| e.event.event_id).collect();
    store.append(events).await.unwrap();
    out
}

async fn drain(matcher: &mut WaitMatcher, follower: &CommitLogFollower, store: &Store) {
    while let Follow::Handled { .. } = matcher.step(follower, store).await.unwrap() {}
}

async fn status(store: &Store, t: &TenantId, id: &str) -> (WaitStatus, Option<EventId>) {
    let w = store.get_wait(t, id).await.unwrap().unwrap();
    (w.status, w.event_id)
}

async fn a_matching_event_resolves_exactly_the_waits_it_matches_once(o: Opened) {
    let store = &o.store;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let clock = Arc::new(ManualClock::new(at(START)));
    let mut matcher = WaitMatcher::new(clock.clone());
    let follower = CommitLogFollower::new(store.clone(), WAITS_CURSOR, 100);
    let by_order = Some("event.data.order_id == wait.context.order_id");
    let created = at(START);
    for w in [
        wait(
            &acme,
            "wait_exact",
            vec![alt("order.paid", by_order)],
            json!({"order_id": "o-1"}),
            created,
            600,
        ),
        wait(
            &acme,
            "wait_other_order",
            vec![alt("order.paid", by_order)],
            json!({"order_id": "o-2"}),
            created,
            600,
        ),
        wait(
            &acme,
            "wait_pattern",
            vec![alt("order.>", None)],
            json!({}),
            created,
            600,
        ),
        wait(
            &acme,
            "wait_any_of",
            vec![
                alt("refund.*", None),
                alt("order.paid", Some("event.data.amount > 10")),
            ],
            json!({}),
            created,
            600,
        ),
        wait(
            &acme,
            "wait_no_context",
            vec![alt(
                "order.paid",
                Some("event.data.order_id == wait.context.missing"),
            )],
            json!({}),
            created,
            600,
        ),
        wait(
            &globex,
            "wait_globex",
            vec![alt("order.paid", None)],
            json!({}),
            created,
            600,
        ),
    ] {
        store.insert_wait(w).await.unwrap();
    }
    let e = append(
        store,
        &acme,
        at("2030-01-02T03:01:00Z"),
        &[("order.paid", json!({"order_id": "o-1", "amount": 20}))],
    )
    .await;
    drain(&mut matcher, &follower, store).await;
    for id in ["wait_exact", "wait_pattern", "wait_any_of"] {
        assert_eq!(
            status(store, &acme, id).await,
            (WaitStatus::Resolved, Some(e[0])),
            "{}: {id}",
            o.name
        );
    }
    for id in ["wait_other_order", "wait_no_context"] {
        assert_eq!(
            status(store, &acme, id).await.0,
            WaitStatus::Open,
            "{}: {id}",
            o.name
        );
    }
    assert_eq!(
        status(store, &globex, "wait_globex").await.0,
        WaitStatus::Open
    );
    assert_eq!(matcher.counts().resolved, 3);
    assert_eq!(
        matcher.counts().filter_errors,
        1,
        "the missing context field is an error, no match"
    );
    // A second matching event leaves the first resolution as it was.
    let again = append(
        store,
        &acme,
        at("2030-01-02T03:02:00Z"),
        &[("order.paid", json!({"order_id": "o-2", "amount": 20}))],
    )
    .await;
    drain(&mut matcher, &follower, store).await;
    assert_eq!(
        status(store, &acme, "wait_exact").await,
        (WaitStatus::Resolved, Some(e[0]))
    );
    assert_eq!(
        status(store, &acme, "wait_other_order").await,
        (WaitStatus::Resolved, Some(again[0]))
    );
    // A wait stored while the matcher runs is picked up for later events.
    store
        .insert_wait(wait(
            &acme,
            "wait_late",
            vec![alt("order.shipped", None)],
            json!({}),
            at("2030-01-02T03:03:00Z"),
            600,
        ))
        .await
        .unwrap();
    let shipped = append(
        store,
        &acme,
        at("2030-01-02T03:04:00Z"),
        &[("order.shipped", json!({}))],
    )
    .await;
    drain(&mut matcher, &follower, store).await;
    assert_eq!(
        status(store, &acme, "wait_late").await,
        (WaitStatus::Resolved, Some(shipped[0]))
    );
    assert_eq!(matcher.counts().resolved, 5);
}

async fn an_event_stored_before_a_wait_resolves_it_only_through_the_lookback(o: Opened) {
    let store = &o.store;
    let t = tenant("acme");
    let clock = Arc::new(ManualClock::new(at(START)));
    let mut matcher = WaitMatcher::new(clock.clone());
    let follower = CommitLogFollower::new(store.clone(), WAITS_CURSOR, 100);
    // The event arrives just before the waits are registered.
    let early = append(
        store,
        &t,
        at("2030-01-02T03:00:30Z"),
        &[("order.paid", json!({"order_id": "o-1"}))],
    )
    .await;
    let created = at("2030-01-02T03:01:00Z");
    let filter = Some("event.data.order_id == wait.context.order_id");
    let plain = store
        .insert_wait(wait(
            &t,
            "wait_plain",
            vec![alt("order.paid", filter)],
            json!({"order_id": "o-1"}),
            created,
            600,
        ))
        .await
        .unwrap();
    let mut with = wait(
        &t,
        "wait_lookback",
        vec![alt("order.paid", filter)],
        json!({"order_id": "o-1"}),
        created,
        600,
    );
    with.spec.lookback_secs = 60;
    let with = store.insert_wait(with).await.unwrap();
    let mut short = wait(
        &t,
        "wait_short",
        vec![alt("order.paid", filter)],
        json!({"order_id": "o-1"}),
        created,
        600,
    );
    short.spec.lookback_secs = 10;
    let short = store.insert_wait(short).await.unwrap();
    // The matcher takes only events after a wait was stored.
    drain(&mut matcher, &follower, store).await;
    assert_eq!(
        status(store, &t, "wait_plain").await.0,
        WaitStatus::Open,
        "{}",
        o.name
    );
    assert_eq!(status(store, &t, "wait_lookback").await.0, WaitStatus::Open);
    assert_eq!(
        look_back(store, &plain, created).await.unwrap(),
        None,
        "no lookback asked"
    );
    assert_eq!(
        look_back(store, &short, created).await.unwrap(),
        None,
        "stored 30 s before: outside 10 s"
    );
    let found = look_back(store, &with, created)
        .await
        .unwrap()
        .expect("within 60 s");
    assert_eq!(found.event_id, early[0]);
    assert_eq!(
        store.resolve_waits(None, vec![found]).await.unwrap(),
        ["wait_lookback"]
    );
    assert_eq!(
        status(store, &t, "wait_lookback").await,
        (WaitStatus::Resolved, Some(early[0]))
    );
    // Positive control: a later event does reach the plain wait.
    let later = append(
        store,
        &t,
        at("2030-01-02T03:02:00Z"),
        &[("order.paid", json!({"order_id": "o-1"}))],
    )
    .await;
    drain(&mut matcher, &follower, store).await;
    assert_eq!(
        status(store, &t, "wait_plain").await,
        (WaitStatus::Resolved, Some(later[0]))
    );
}

async fn an_event_stored_at_or_after_the_timeout_never_resolves_the_wait(o: Opened) {
    let store = &o.store;
    let t = tenant("acme");
    let clock = Arc::new(ManualClock::new(at(START)));
    let mut matcher = WaitMatcher::new(clock.clone());
    let timeouts = WaitTimeouts::new(clock.clone());
    let follower = CommitLogFollower::new(store.clone(), WAITS_CURSOR, 100);
    store
        .insert_wait(wait(
            &t,
            "wait_1",
            vec![alt("order.paid", None)],
            json!({}),
            at(START),
            60,
        ))
        .await
        .unwrap();
    append(
        store,
        &t,
        at("2030-01-02T03:01:00Z"),
        &[("order.paid", json!({}))],
    )
    .await;
    drain(&mut matcher, &follower, store).await;
    assert_eq!(
        status(store, &t, "wait_1").await.0,
        WaitStatus::Open,
        "{}",
        o.name
    );
    assert_eq!(
        timeouts.step(store).await.unwrap(),
        0,
        "not due before its time"
    );
    clock.set(at("2030-01-02T03:01:00Z"));
    assert_eq!(timeouts.step(store).await.unwrap(), 1);
    assert_eq!(
        status(store, &t, "wait_1").await,
        (WaitStatus::TimedOut, None)
    );
}

async fn a_matching_event_racing_the_timeout_ends_the_wait_exactly_once(o: Opened) {
    let store = &o.store;
    let t = tenant("acme");
    let clock = Arc::new(ManualClock::new(at(START)));
    let timeouts = WaitTimeouts::new(clock.clone());
    let follower = CommitLogFollower::new(store.clone(), WAITS_CURSOR, 100);
    let mut matcher = WaitMatcher::new(clock.clone());
    let (mut resolved, mut timed_out) = (0, 0);
    for round in 0..50 {
        let now = clock.now();
        let id = format!("wait_{round:03}");
        store
            .insert_wait(wait(
                &t,
                &id,
                vec![alt(
                    "order.paid",
                    Some("event.data.round == wait.context.round"),
                )],
                json!({"round": round}),
                now,
                10,
            ))
            .await
            .unwrap();
        // The event is stored in time; the timeout comes due as the matcher runs.
        let half = Timestamp::from_parts(now.unix_seconds() + 5, 0, 0).unwrap();
        append(store, &t, half, &[("order.paid", json!({"round": round}))]).await;
        clock.advance(time::Duration::seconds(10));
        let (s1, s2) = (store.clone(), store.clone());
        let (f, tm) = (follower.clone(), timeouts.clone());
        let matched = tokio::spawn(async move {
            let mut m = matcher;
            let r = m.step(&f, &s1).await;
            (m, r)
        });
        let timing = tokio::spawn(async move { tm.step(&s2).await.unwrap() });
        let (m, step) = matched.await.unwrap();
        matcher = m;
        step.unwrap();
        timing.await.unwrap();
        let w = store.get_wait(&t, &id).await.unwrap().unwrap();
        match w.status {
            WaitStatus::Resolved => {
                assert!(w.event_id.is_some());
                resolved += 1;
            }
            WaitStatus::TimedOut => {
                assert_eq!(w.event_id, None);
                timed_out += 1;
            }
            other => panic!("{}: round {round} ended {other:?}", o.name),
        }
        // Whichever won, nothing ends it again.
        assert!(timeouts.step(store).await.unwrap() == 0);
        drain(&mut matcher, &follower, store).await;
        assert_eq!(
            store.get_wait(&t, &id).await.unwrap().unwrap(),
            w,
            "{}: round {round}",
            o.name
        );
        clock.advance(time::Duration::seconds(1));
    }
    assert_eq!(resolved + timed_out, 50);
    eprintln!(
        "{}: 50 races: {resolved} resolved, {timed_out} timed out",
        o.name
    );
}
