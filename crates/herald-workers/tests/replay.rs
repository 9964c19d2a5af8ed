//! The replay worker on each backend, driven by calling its step: a
//! replay's selection (event ids, a stream, a time range with filters) is
//! read in commit order a page at a time, each event matched against the
//! replay's targets with the fan-out's rule, and every match stored as a
//! new delivery (its own `webhook-id`, the replay's id) with the replay's
//! progress. A dry run counts the same and stores nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use herald_core::{Clock, EventId, ManualClock, SequentialIds};
use herald_store::{Delivery, NewReplay, ReplayProgress, ReplayState, ReplayStep, Store};
use herald_testkit::on_each_backend;
use herald_testkit::{StoreUnderTest as Opened, open_store as open};
use herald_workers::fanout::FanOut;
use herald_workers::follower::CommitLogFollower;
use herald_workers::replay::{self, ReplayStepped, ReplayWorker};
use serde_json::{Value, json};

mod support;
use support::{append, at, subscription, tenant};

on_each_backend!(
    open = open;
    a_replay_by_ids_delivers_them_again_with_new_webhook_ids_over_several_steps,
    a_replay_by_stream_or_time_range_and_filter_selects_only_those_events,
    a_dry_run_counts_what_the_replay_makes_and_stores_nothing,
    a_step_from_a_moved_cursor_stores_nothing,
    a_replay_whose_selection_no_longer_parses_fails_with_the_reason,
    a_replay_filters_by_correlation_keys_and_text_as_the_query_does,
);

/// Acme's subscriptions: `sub_orders` (order.*), `sub_all` (everything);
/// and globex's `sub_globex`.
async fn subscribe(store: &Store) {
    for s in [
        subscription(
            &tenant("acme"),
            "sub_orders",
            json!({"event_types": ["order.*"]}),
            true,
        ),
        subscription(&tenant("acme"), "sub_all", json!({}), true),
        subscription(&tenant("globex"), "sub_globex", json!({}), true),
    ] {
        store.insert_subscription(s).await.unwrap();
    }
}

/// Five acme events (three of stream `order:1`, at 10:00 … 10:04) and one of
/// globex's; acme's ids in commit order.
async fn five_events(store: &Store, ids: &SequentialIds) -> Vec<EventId> {
    let body = |t: &str, minute: u32, stream: Option<&str>| {
        let mut b = json!({"event_type": t, "category": "business", "event_source": "backend",
            "timestamp": format!("2030-01-02T10:0{minute}:00Z"), "data": {"n": minute}});
        if let Some(s) = stream {
            b["stream_id"] = json!(s);
        }
        b
    };
    let acme = append(
        store,
        &tenant("acme"),
        ids,
        &[
            body("order.created", 0, Some("order:1")),
            body("user.signup", 1, None),
            body("order.paid", 2, Some("order:1")),
            body("order.created", 3, Some("order:2")),
            body("order.shipped", 4, Some("order:1")),
        ],
    )
    .await;
    append(
        store,
        &tenant("globex"),
        ids,
        &[body("order.created", 0, Some("order:1"))],
    )
    .await;
    acme
}

fn new_replay(id: &str, selection: Value, targets: &[&str], dry_run: bool) -> NewReplay {
    NewReplay {
        replay_id: id.into(),
        tenant_id: tenant("acme"),
        selection,
        targets: targets.iter().map(|t| t.to_string()).collect(),
        until_seq: i64::MAX,
        dry_run,
        state: ReplayState::Pending,
        progress: ReplayProgress::default(),
        created_at: at("2030-01-03T00:00:00Z"),
    }
}

/// The replay's deliveries of `events`, by (event, subscription).
async fn replayed(store: &Store, events: &[EventId], replay_id: &str) -> Vec<Delivery> {
    let mut out = Vec::new();
    for e in events {
        for d in store
            .deliveries_of_event(&tenant("acme"), *e)
            .await
            .unwrap()
        {
            if d.replay_id.as_deref() == Some(replay_id) {
                out.push(d);
            }
        }
    }
    out
}

fn pairs(ds: &[Delivery]) -> BTreeSet<(EventId, String)> {
    ds.iter()
        .map(|d| (d.event_id, d.subscription_id.clone()))
        .collect()
}

/// Steps `worker` until it is idle; how many steps moved a replay.
async fn drain(worker: &mut ReplayWorker) -> usize {
    let mut moved = 0;
    loop {
        match worker.step().await.unwrap() {
            ReplayStepped::Idle => return moved,
            ReplayStepped::Advanced { .. } => moved += 1,
            lost => panic!("one worker alone never loses a replay: {lost:?}"),
        }
        assert!(moved < 100, "a replay finishes");
    }
}

async fn a_replay_by_ids_delivers_them_again_with_new_webhook_ids_over_several_steps(o: Opened) {
    let store = &o.store;
    subscribe(store).await;
    let e = five_events(store, &SequentialIds::default()).await;
    let clock = Arc::new(ManualClock::new(at("2030-01-03T00:00:00Z")));
    // The fan-out's own deliveries first, to compare webhook ids with.
    FanOut::new(clock.clone())
        .step(
            &CommitLogFollower::new(store.clone(), "fan-out", 100),
            store,
        )
        .await
        .unwrap();
    let first: Vec<Delivery> = store
        .deliveries_of_event(&tenant("acme"), e[0])
        .await
        .unwrap();
    assert_eq!(
        first.len(),
        2,
        "positive control: the fan-out delivered e0 twice"
    );

    let ids = [e[0], e[1], e[2]];
    store
        .insert_replay(new_replay(
            "rpl_ids",
            json!({"event_ids": ids.iter().map(|i| i.to_string()).collect::<Vec<_>>()}),
            &["sub_orders"],
            false,
        ))
        .await
        .unwrap();
    let mut worker = ReplayWorker::new(store.clone(), clock.clone()).with_page(2);
    assert_eq!(drain(&mut worker).await, 2, "three events in pages of two");

    let ds = replayed(store, &e, "rpl_ids").await;
    assert_eq!(
        pairs(&ds),
        BTreeSet::from([(e[0], "sub_orders".into()), (e[2], "sub_orders".into())]),
        "only the named events, only where the target matches"
    );
    for d in &ds {
        assert!(d.webhook_id.starts_with("msg_"));
        assert!(
            first
                .iter()
                .all(|f| f.webhook_id != d.webhook_id && f.delivery_id != d.delivery_id),
            "a replayed delivery is a new message"
        );
        assert_eq!(d.next_attempt_at, at("2030-01-03T00:00:00Z"));
    }
    let r = store
        .get_replay(&tenant("acme"), "rpl_ids")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.state, ReplayState::Completed);
    assert_eq!(r.started_at, Some(at("2030-01-03T00:00:00Z")));
    assert!(r.completed_at.is_some());
    assert_eq!(
        (
            r.progress.events_scanned,
            r.progress.events_matched,
            r.progress.deliveries_created
        ),
        (3, 2, 2)
    );
    let seqs = store.events_after(0, 100).await.unwrap();
    let seq_of_e2 = seqs.iter().find(|s| s.event_id == e[2]).unwrap().seq;
    assert_eq!(
        r.progress.cursor, seq_of_e2,
        "the cursor is the last event read"
    );
    // Another tenant cannot see it.
    assert!(
        store
            .get_replay(&tenant("globex"), "rpl_ids")
            .await
            .unwrap()
            .is_none()
    );
    // The fan-out's rows are untouched.
    let after: Vec<Delivery> = store
        .deliveries_of_event(&tenant("acme"), e[0])
        .await
        .unwrap();
    assert!(first.iter().all(|f| after.contains(f)));
}

async fn a_replay_by_stream_or_time_range_and_filter_selects_only_those_events(o: Opened) {
    let store = &o.store;
    subscribe(store).await;
    let ids = SequentialIds::default();
    let e = five_events(store, &ids).await;
    let clock = Arc::new(ManualClock::new(at("2030-01-03T00:00:00Z")));
    store
        .insert_replay(new_replay(
            "rpl_a_stream",
            json!({"stream_id": "order:1"}),
            &["sub_all"],
            false,
        ))
        .await
        .unwrap();
    store
        .insert_replay(new_replay(
            "rpl_b_range",
            json!({"start_time": "2030-01-02T10:01:00Z", "end_time": "2030-01-02T10:03:00Z",
                   "event_type": ["order.created", "user.signup"]}),
            &["sub_orders", "sub_all"],
            false,
        ))
        .await
        .unwrap();
    // Made now: it reads no event committed after this.
    let mut now_only = new_replay(
        "rpl_c_until",
        json!({"stream_id": "order:1"}),
        &["sub_all"],
        false,
    );
    now_only.until_seq = store.latest_seq().await.unwrap();
    store.insert_replay(now_only).await.unwrap();
    let later = append(
        store,
        &tenant("acme"),
        &ids,
        &[
            json!({"event_type": "order.refunded", "category": "business", "stream_id": "order:1",
                 "idempotency_key": "later"}),
        ],
    )
    .await;
    let mut worker = ReplayWorker::new(store.clone(), clock.clone()).with_page(10);
    assert_eq!(drain(&mut worker).await, 3, "one step each");
    let until = replayed(store, &[&e[..], &later[..]].concat(), "rpl_c_until").await;
    assert_eq!(
        pairs(&until),
        [e[0], e[2], e[4]]
            .iter()
            .map(|x| (*x, "sub_all".to_string()))
            .collect(),
        "not the event committed after it was made"
    );
    assert_eq!(
        replayed(store, &later, "rpl_a_stream").await.len(),
        1,
        "positive control: a replay made later reads it"
    );

    let stream = replayed(store, &e, "rpl_a_stream").await;
    assert_eq!(
        pairs(&stream),
        [e[0], e[2], e[4]]
            .iter()
            .map(|x| (*x, "sub_all".to_string()))
            .collect(),
        "acme's stream order:1 only (globex's order:1 is another tenant's)"
    );
    let range = replayed(store, &e, "rpl_b_range").await;
    assert_eq!(
        pairs(&range),
        BTreeSet::from([
            (e[1], "sub_all".into()),
            (e[3], "sub_all".into()),
            (e[3], "sub_orders".into()),
        ])
    );
    let r = store
        .get_replay(&tenant("acme"), "rpl_b_range")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            r.progress.events_scanned,
            r.progress.events_matched,
            r.progress.deliveries_created
        ),
        (2, 2, 3)
    );
}

async fn a_dry_run_counts_what_the_replay_makes_and_stores_nothing(o: Opened) {
    let store = &o.store;
    subscribe(store).await;
    let e = five_events(store, &SequentialIds::default()).await;
    let clock = Arc::new(ManualClock::new(at("2030-01-03T00:00:00Z")));
    let selection =
        json!({"start_time": "2030-01-02T10:00:00Z", "end_time": "2030-01-02T11:00:00Z"});
    let targets = ["sub_orders", "sub_all"];
    let mut dry = new_replay("rpl_dry", selection.clone(), &targets, true);
    let replay = store_shape(&dry);
    let scan = replay::parse_stored_selection(&replay).unwrap();
    let mut subs = Vec::new();
    for t in targets {
        subs.push(
            store
                .get_subscription(&tenant("acme"), t)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let counted = replay::dry_run(
        store,
        &replay,
        &scan,
        &replay::targets_of(subs.clone()),
        2,
        100,
        clock.now(),
    )
    .await
    .unwrap();
    assert!(counted.complete);
    let bounded = replay::dry_run(
        store,
        &replay,
        &scan,
        &replay::targets_of(subs),
        2,
        3,
        clock.now(),
    )
    .await
    .unwrap();
    assert!(!bounded.complete, "five events, a bound of three");
    assert_eq!(bounded.progress.events_scanned, 3);

    dry.state = ReplayState::Completed;
    dry.progress = counted.progress;
    store.insert_replay(dry).await.unwrap();
    let mut worker = ReplayWorker::new(store.clone(), clock.clone()).with_page(2);
    assert_eq!(drain(&mut worker).await, 0, "a dry run is never worked");
    assert!(
        replayed(store, &e, "rpl_dry").await.is_empty(),
        "nothing stored"
    );

    store
        .insert_replay(new_replay("rpl_real", selection, &targets, false))
        .await
        .unwrap();
    assert!(drain(&mut worker).await > 0);
    let real = store
        .get_replay(&tenant("acme"), "rpl_real")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        real.progress, counted.progress,
        "the dry run's counts are the real run's"
    );
    assert_eq!(
        replayed(store, &e, "rpl_real").await.len() as i64,
        counted.progress.deliveries_created
    );
    assert_eq!(counted.progress.deliveries_created, 5 + 4);
}

/// The stored shape of a replay not stored yet (what a dry run reads).
fn store_shape(r: &NewReplay) -> herald_store::Replay {
    herald_store::Replay {
        replay_id: r.replay_id.clone(),
        tenant_id: r.tenant_id.clone(),
        selection: r.selection.clone(),
        targets: r.targets.clone(),
        until_seq: r.until_seq,
        dry_run: r.dry_run,
        state: r.state,
        progress: r.progress,
        error: None,
        created_at: r.created_at,
        started_at: None,
        completed_at: None,
    }
}

async fn a_step_from_a_moved_cursor_stores_nothing(o: Opened) {
    let store = &o.store;
    subscribe(store).await;
    let e = five_events(store, &SequentialIds::default()).await;
    let clock = Arc::new(ManualClock::new(at("2030-01-03T00:00:00Z")));
    store
        .insert_replay(new_replay(
            "rpl_cas",
            json!({"stream_id": "order:1"}),
            &["sub_all"],
            false,
        ))
        .await
        .unwrap();
    let mut worker = ReplayWorker::new(store.clone(), clock.clone()).with_page(1);
    worker.step().await.unwrap();
    let r = store
        .get_replay(&tenant("acme"), "rpl_cas")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.state, ReplayState::Running);
    assert_eq!(
        replayed(store, &e, "rpl_cas").await.len(),
        1,
        "positive control"
    );

    // A second worker that read the replay before that step moved it.
    let stale = ReplayStep {
        replay_id: "rpl_cas".into(),
        from_cursor: 0,
        progress: ReplayProgress {
            cursor: 99,
            events_scanned: 1,
            events_matched: 1,
            deliveries_created: 1,
        },
        state: ReplayState::Running,
        error: None,
        at: clock.now(),
    };
    let mut row = replayed(store, &e, "rpl_cas").await.remove(0);
    row.delivery_id = "dlv_stale".into();
    let rows = vec![herald_store::NewDelivery {
        delivery_id: row.delivery_id,
        tenant_id: row.tenant_id,
        subscription_id: row.subscription_id,
        event_id: row.event_id,
        seq: row.seq,
        stream_id: row.stream_id,
        stream_version: row.stream_version,
        webhook_id: "msg_stale".into(),
        replay_id: row.replay_id,
        next_attempt_at: row.next_attempt_at,
        created_at: row.created_at,
    }];
    assert!(!store.advance_replay(stale, rows).await.unwrap());
    assert_eq!(
        replayed(store, &e, "rpl_cas").await.len(),
        1,
        "the stale rows were not stored"
    );
    assert_eq!(
        store
            .get_replay(&tenant("acme"), "rpl_cas")
            .await
            .unwrap()
            .unwrap()
            .progress,
        r.progress
    );
    drain(&mut worker).await;
    assert_eq!(
        replayed(store, &e, "rpl_cas").await.len(),
        3,
        "each event once"
    );
}

async fn a_replay_whose_selection_no_longer_parses_fails_with_the_reason(o: Opened) {
    let store = &o.store;
    subscribe(store).await;
    let clock = Arc::new(ManualClock::new(at("2030-01-03T00:00:00Z")));
    store
        .insert_replay(new_replay(
            "rpl_bad",
            json!({"colour": "red"}),
            &["sub_all"],
            false,
        ))
        .await
        .unwrap();
    let mut worker = ReplayWorker::new(store.clone(), clock);
    assert_eq!(drain(&mut worker).await, 1);
    let r = store
        .get_replay(&tenant("acme"), "rpl_bad")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.state, ReplayState::Failed);
    assert!(
        r.error.as_deref().unwrap_or("").contains("/colour"),
        "{r:?}"
    );
}

async fn a_replay_filters_by_correlation_keys_and_text_as_the_query_does(o: Opened) {
    let store = &o.store;
    subscribe(store).await;
    let ids = SequentialIds::default();
    let body = |user: &str, text: &str| {
        json!({"event_type": "user.note", "category": "business", "user_id": user,
               "timestamp": "2030-01-02T10:00:00Z", "data": {"note": text}})
    };
    let e = append(
        store,
        &tenant("acme"),
        &ids,
        &[
            body("u-1", "kiwi"),
            body("u-2", "kiwi"),
            body("u-1", "mango"),
        ],
    )
    .await;
    let range = json!({"start_time": "2030-01-02T00:00:00Z", "end_time": "2030-01-03T00:00:00Z"});
    let with = |extra: Value| {
        let mut s = range.clone();
        s.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s
    };
    for (id, selection) in [
        ("rpl_user", with(json!({"user_id": "u-1"}))),
        ("rpl_text", with(json!({"q": "kiwi"}))),
        ("rpl_both", with(json!({"user_id": "u-1", "q": "kiwi"}))),
    ] {
        store
            .insert_replay(new_replay(id, selection, &["sub_all"], false))
            .await
            .unwrap();
    }
    let clock = Arc::new(ManualClock::new(at("2030-01-03T00:00:00Z")));
    let mut worker = ReplayWorker::new(store.clone(), clock).with_page(10);
    assert_eq!(drain(&mut worker).await, 3);
    let events = |ds: Vec<Delivery>| ds.iter().map(|d| d.event_id).collect::<BTreeSet<_>>();
    assert_eq!(
        events(replayed(store, &e, "rpl_user").await),
        BTreeSet::from([e[0], e[2]])
    );
    assert_eq!(
        events(replayed(store, &e, "rpl_text").await),
        BTreeSet::from([e[0], e[1]])
    );
    assert_eq!(
        events(replayed(store, &e, "rpl_both").await),
        BTreeSet::from([e[0]])
    );
}
