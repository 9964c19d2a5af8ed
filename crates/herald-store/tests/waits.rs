//! Conformance of workflow waits on each backend: storing (with the commit
//! position), reading, listing with filters and paging, tenant isolation;
//! exactly one end however resolution, timeout and cancel race; a
//! resolution committed with its cursor move or not at all; the callback
//! outbox's claims, leases and stale finishes; the lookback's events.

use std::time::Duration;

use herald_core::{EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp};
use herald_store::*;
use herald_testkit::on_each_backend;
use serde_json::{Value, json};

use herald_testkit::{StoreUnderTest as Opened, open_store as open};

on_each_backend!(
    open = open;
    a_wait_is_stored_open_at_the_commit_position_and_read_back,
    listing_filters_by_status_workflow_and_type_and_pages_in_id_order,
    another_tenants_wait_is_invisible_and_uncancellable,
    a_wait_ends_once_whichever_end_comes_first,
    racing_ends_leave_exactly_one_on_every_round,
    a_resolution_commits_with_its_cursor_move_or_not_at_all,
    timeouts_end_only_open_waits_that_are_due,
    cancelling_a_workflow_ends_its_open_waits_only,
    open_waits_are_read_by_their_commit_position,
    a_callback_is_claimed_once_and_reclaimed_after_its_lease,
    a_stale_callback_claim_finishes_nothing,
    the_lookback_reads_the_tenants_events_stored_within_the_window,
);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

const CREATED: &str = "2026-01-02T03:04:05.123456Z";
const TIMEOUT: &str = "2026-01-02T04:04:05Z";

fn new_wait(t: &TenantId, id: &str, workflow: &str, event_type: &str) -> NewWait {
    NewWait {
        wait_id: id.into(),
        tenant_id: t.clone(),
        workflow_instance_id: workflow.into(),
        spec: WaitSpec {
            any_of: vec![WaitAlternative {
                event_type: event_type.into(),
                filter: Some("event.data.order_id == wait.context.order_id".into()),
            }],
            context: json!({"order_id": "o-1"}),
            lookback_secs: 0,
        },
        timeout_at: at(TIMEOUT),
        callback_url: None,
        webhook_secret: None,
        created_at: at(CREATED),
    }
}

fn with_callback(mut w: NewWait) -> NewWait {
    w.callback_url = Some("https://hooks.example.com/waits".into());
    w.webhook_secret = Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
    w
}

fn event_at(t: &TenantId, event_type: &str, data: Value, processed: Timestamp) -> NewEvent {
    let hasher = EmailHasher::new(b"waits");
    let ctx = ProcessingContext {
        tenant_id: t,
        email_hasher: &hasher,
        processing_timestamp: processed,
        ids: &herald_core::UuidV7Ids::new(),
        traceparent: None,
    };
    let p = EventProcessor::default()
        .process_value(
            json!({"event_type": event_type, "category": "business", "data": data}),
            &ctx,
        )
        .expect("valid test event");
    NewEvent {
        event: p.event,
        expected_version: p.expected_version,
    }
}

async fn append(o: &Opened, events: Vec<NewEvent>) -> Vec<SequencedEvent> {
    let before = o.store.latest_seq().await.unwrap();
    o.store.append(events).await.unwrap();
    o.store.events_after(before, 1000).await.unwrap()
}

fn resolution(wait_id: &str, e: &SequencedEvent) -> WaitResolution {
    WaitResolution {
        wait_id: wait_id.into(),
        event_id: e.event_id,
        event: e.body.clone(),
        at: at("2026-01-02T03:30:00Z"),
    }
}

fn ids(waits: &[Wait]) -> Vec<&str> {
    waits.iter().map(|w| w.wait_id.as_str()).collect()
}

async fn a_wait_is_stored_open_at_the_commit_position_and_read_back(o: Opened) {
    let t = tenant("acme");
    assert_eq!(
        o.store
            .insert_wait(new_wait(&t, "wait_01", "wf-1", "order.paid"))
            .await
            .unwrap()
            .created_seq,
        0,
        "{}: nothing committed yet",
        o.name
    );
    let events = append(
        &o,
        vec![event_at(&t, "order.paid", json!({}), Timestamp::now())],
    )
    .await;
    let stored = o
        .store
        .insert_wait(with_callback(new_wait(&t, "wait_02", "wf-1", "order.*")))
        .await
        .unwrap();
    assert_eq!(stored.created_seq, events[0].seq);
    assert_eq!(stored.status, WaitStatus::Open);
    assert_eq!(stored.timeout_at, at(TIMEOUT));
    assert_eq!(stored.created_at, at(CREATED));
    assert_eq!(stored.spec.context, json!({"order_id": "o-1"}));
    assert_eq!(stored.callback, None, "no callback is due while open");
    assert_eq!(
        stored.webhook_secret.as_deref(),
        Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    );
    assert_eq!(o.store.get_wait(&t, "wait_02").await.unwrap(), Some(stored));
    assert!(
        o.store
            .insert_wait(new_wait(&t, "wait_02", "wf-1", "order.*"))
            .await
            .is_err(),
        "an id is stored once"
    );
}

async fn listing_filters_by_status_workflow_and_type_and_pages_in_id_order(o: Opened) {
    let t = tenant("acme");
    for (id, wf, ty) in [
        ("wait_01", "wf-1", "order.paid"),
        ("wait_02", "wf-1", "order.*"),
        ("wait_03", "wf-2", "order_x.paid"),
        ("wait_04", "wf-2", "order.paid"),
    ] {
        o.store.insert_wait(new_wait(&t, id, wf, ty)).await.unwrap();
    }
    o.store
        .cancel_wait(&t, "wait_04", at("2026-01-02T03:10:00Z"))
        .await
        .unwrap();
    let list = |q: WaitQuery| {
        let store = o.store.clone();
        let t = t.clone();
        async move { store.list_waits(&t, &q).await.unwrap() }
    };
    let all = list(WaitQuery {
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        ids(&all.waits),
        ["wait_01", "wait_02", "wait_03", "wait_04"]
    );
    assert_eq!(all.next_cursor, None);
    let open = list(WaitQuery {
        status: Some(WaitStatus::Open),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&open.waits), ["wait_01", "wait_02", "wait_03"]);
    let wf2 = list(WaitQuery {
        workflow_instance_id: Some("wf-2".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&wf2.waits), ["wait_03", "wait_04"]);
    // The type is matched exactly: `_` is no wildcard, a pattern is its text.
    let paid = list(WaitQuery {
        event_type: Some("order.paid".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&paid.waits), ["wait_01", "wait_04"], "{}", o.name);
    let pattern = list(WaitQuery {
        event_type: Some("order.*".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&pattern.waits), ["wait_02"]);
    let first = list(WaitQuery {
        limit: 3,
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&first.waits), ["wait_01", "wait_02", "wait_03"]);
    assert_eq!(first.next_cursor.as_deref(), Some("wait_03"));
    let second = list(WaitQuery {
        limit: 3,
        after: first.next_cursor,
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&second.waits), ["wait_04"]);
    assert_eq!(second.next_cursor, None);
}

async fn another_tenants_wait_is_invisible_and_uncancellable(o: Opened) {
    let (acme, other) = (tenant("acme"), tenant("other"));
    o.store
        .insert_wait(new_wait(&acme, "wait_01", "wf-1", "order.paid"))
        .await
        .unwrap();
    assert_eq!(o.store.get_wait(&other, "wait_01").await.unwrap(), None);
    assert_eq!(
        o.store
            .cancel_wait(&other, "wait_01", at("2026-01-02T03:10:00Z"))
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
    assert_eq!(
        o.store
            .cancel_workflow_waits(&other, "wf-1", at("2026-01-02T03:10:00Z"))
            .await
            .unwrap(),
        0
    );
    let page = o
        .store
        .list_waits(
            &other,
            &WaitQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(page.waits.is_empty());
    assert_eq!(
        o.store
            .get_wait(&acme, "wait_01")
            .await
            .unwrap()
            .unwrap()
            .status,
        WaitStatus::Open
    );
}

async fn a_wait_ends_once_whichever_end_comes_first(o: Opened) {
    let t = tenant("acme");
    let events = append(
        &o,
        vec![event_at(
            &t,
            "order.paid",
            json!({"order_id": "o-1"}),
            Timestamp::now(),
        )],
    )
    .await;
    o.store
        .insert_wait(with_callback(new_wait(&t, "wait_01", "wf-1", "order.paid")))
        .await
        .unwrap();
    let resolved = o
        .store
        .resolve_waits(None, vec![resolution("wait_01", &events[0])])
        .await
        .unwrap();
    assert_eq!(resolved, ["wait_01"]);
    let w = o.store.get_wait(&t, "wait_01").await.unwrap().unwrap();
    assert_eq!(w.status, WaitStatus::Resolved);
    assert_eq!(w.event_id, Some(events[0].event_id));
    assert_eq!(
        serde_json::from_str::<Value>(w.event.as_deref().unwrap()).unwrap()["data"],
        json!({"order_id": "o-1"})
    );
    assert_eq!(w.ended_at, Some(at("2026-01-02T03:30:00Z")));
    let callback = w.callback.clone().expect("an end makes the callback due");
    assert_eq!(callback.state, "pending");
    assert_eq!(callback.next_at, Some(at("2026-01-02T03:30:00Z")));
    // Every other end is refused and changes nothing.
    assert_eq!(
        o.store
            .resolve_waits(None, vec![resolution("wait_01", &events[0])])
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        o.store
            .cancel_wait(&t, "wait_01", at("2026-01-02T03:40:00Z"))
            .await
            .unwrap(),
        CancelOutcome::Ended(w.clone())
    );
    assert!(
        o.store
            .time_out_waits(at("2026-01-03T00:00:00Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(o.store.get_wait(&t, "wait_01").await.unwrap(), Some(w));
}

async fn racing_ends_leave_exactly_one_on_every_round(o: Opened) {
    let t = tenant("acme");
    let events = append(
        &o,
        vec![event_at(&t, "order.paid", json!({}), Timestamp::now())],
    )
    .await;
    let late = at("2026-01-03T00:00:00Z");
    for round in 0..25 {
        let id = format!("wait_{round:03}");
        o.store
            .insert_wait(new_wait(&t, &id, "wf-race", "order.paid"))
            .await
            .unwrap();
        let (s1, s2, s3) = (o.store.clone(), o.store.clone(), o.store.clone());
        let (id1, id3) = (id.clone(), id.clone());
        let (t3, e) = (t.clone(), events[0].clone());
        let resolve = tokio::spawn(async move {
            s1.resolve_waits(None, vec![resolution(&id1, &e)])
                .await
                .unwrap()
                .len()
        });
        let time_out =
            tokio::spawn(async move { s2.time_out_waits(late, 10).await.unwrap().len() });
        let cancel = tokio::spawn(async move {
            matches!(
                s3.cancel_wait(&t3, &id3, late).await.unwrap(),
                CancelOutcome::Cancelled(_)
            ) as usize
        });
        let ends = resolve.await.unwrap() + time_out.await.unwrap() + cancel.await.unwrap();
        assert_eq!(ends, 1, "{}: round {round} ended {ends} times", o.name);
        let w = o.store.get_wait(&t, &id).await.unwrap().unwrap();
        assert_ne!(w.status, WaitStatus::Open);
        assert_eq!(w.event_id.is_some(), w.status == WaitStatus::Resolved);
    }
}

async fn a_resolution_commits_with_its_cursor_move_or_not_at_all(o: Opened) {
    let t = tenant("acme");
    let events = append(
        &o,
        vec![event_at(&t, "order.paid", json!({}), Timestamp::now())],
    )
    .await;
    let seq = events[0].seq;
    o.store
        .insert_wait(new_wait(&t, "wait_01", "wf-1", "order.paid"))
        .await
        .unwrap();
    o.store.advance_cursor("waits", 0, seq).await.unwrap();
    // A follower that read the batch from 0 lost the cursor: nothing is resolved.
    let lost = o
        .store
        .resolve_waits(
            Some(CursorMove {
                name: "waits".into(),
                from: 0,
                to: seq,
            }),
            vec![resolution("wait_01", &events[0])],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            lost,
            StoreError::Conflict(ConflictReason::CursorMoved { .. })
        ),
        "{lost:?}"
    );
    assert_eq!(
        o.store
            .get_wait(&t, "wait_01")
            .await
            .unwrap()
            .unwrap()
            .status,
        WaitStatus::Open
    );
    // Positive control: from the cursor's place the resolution lands with the move.
    let resolved = o
        .store
        .resolve_waits(
            Some(CursorMove {
                name: "waits".into(),
                from: seq,
                to: seq + 1,
            }),
            vec![resolution("wait_01", &events[0])],
        )
        .await
        .unwrap();
    assert_eq!(resolved, ["wait_01"]);
    assert_eq!(o.store.cursor("waits").await.unwrap(), seq + 1);
}

async fn timeouts_end_only_open_waits_that_are_due(o: Opened) {
    let t = tenant("acme");
    let mut soon = new_wait(&t, "wait_01", "wf-1", "order.paid");
    soon.timeout_at = at("2026-01-02T03:05:00Z");
    o.store.insert_wait(with_callback(soon)).await.unwrap();
    o.store
        .insert_wait(new_wait(&t, "wait_02", "wf-1", "order.paid"))
        .await
        .unwrap();
    assert!(
        o.store
            .time_out_waits(at("2026-01-02T03:04:59Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        o.store
            .time_out_waits(at("2026-01-02T03:05:00Z"), 10)
            .await
            .unwrap(),
        ["wait_01"]
    );
    let w = o.store.get_wait(&t, "wait_01").await.unwrap().unwrap();
    assert_eq!(w.status, WaitStatus::TimedOut);
    assert_eq!(w.ended_at, Some(at("2026-01-02T03:05:00Z")));
    assert_eq!(w.callback.map(|c| c.state).as_deref(), Some("pending"));
    assert_eq!(
        o.store
            .get_wait(&t, "wait_02")
            .await
            .unwrap()
            .unwrap()
            .status,
        WaitStatus::Open
    );
}

async fn cancelling_a_workflow_ends_its_open_waits_only(o: Opened) {
    let t = tenant("acme");
    for (id, wf) in [
        ("wait_01", "wf-1"),
        ("wait_02", "wf-1"),
        ("wait_03", "wf-2"),
    ] {
        o.store
            .insert_wait(new_wait(&t, id, wf, "order.paid"))
            .await
            .unwrap();
    }
    o.store
        .cancel_wait(&t, "wait_02", at("2026-01-02T03:06:00Z"))
        .await
        .unwrap();
    assert_eq!(
        o.store
            .cancel_workflow_waits(&t, "wf-1", at("2026-01-02T03:07:00Z"))
            .await
            .unwrap(),
        1
    );
    let w1 = o.store.get_wait(&t, "wait_01").await.unwrap().unwrap();
    assert_eq!(w1.status, WaitStatus::Cancelled);
    assert_eq!(w1.ended_at, Some(at("2026-01-02T03:07:00Z")));
    assert_eq!(
        o.store
            .get_wait(&t, "wait_02")
            .await
            .unwrap()
            .unwrap()
            .ended_at,
        Some(at("2026-01-02T03:06:00Z")),
        "an earlier end is kept"
    );
    assert_eq!(
        o.store
            .get_wait(&t, "wait_03")
            .await
            .unwrap()
            .unwrap()
            .status,
        WaitStatus::Open
    );
}

async fn open_waits_are_read_by_their_commit_position(o: Opened) {
    let t = tenant("acme");
    o.store
        .insert_wait(new_wait(&t, "wait_01", "wf", "a.b"))
        .await
        .unwrap();
    let e1 = append(&o, vec![event_at(&t, "x.y", json!({}), Timestamp::now())]).await;
    o.store
        .insert_wait(new_wait(&t, "wait_02", "wf", "a.b"))
        .await
        .unwrap();
    o.store
        .insert_wait(new_wait(&t, "wait_03", "wf", "a.b"))
        .await
        .unwrap();
    o.store
        .cancel_wait(&t, "wait_03", at("2026-01-02T03:06:00Z"))
        .await
        .unwrap();
    let s = e1[0].seq;
    assert_eq!(ids(&o.store.open_waits(0, s).await.unwrap()), ["wait_01"]);
    assert_eq!(
        ids(&o.store.open_waits(s, s + 1).await.unwrap()),
        ["wait_02"]
    );
    assert_eq!(o.store.open_waits(0, 0).await.unwrap(), vec![]);
    let mut open_ids = o.store.open_wait_ids(s + 1).await.unwrap();
    open_ids.sort();
    assert_eq!(
        open_ids,
        ["wait_01", "wait_02"],
        "the cancelled one is not open"
    );
    assert_eq!(o.store.open_wait_ids(s).await.unwrap(), ["wait_01"]);
}

async fn a_callback_is_claimed_once_and_reclaimed_after_its_lease(o: Opened) {
    let t = tenant("acme");
    o.store
        .insert_wait(with_callback(new_wait(&t, "wait_01", "wf", "a.b")))
        .await
        .unwrap();
    let now = at("2026-01-02T03:30:00Z");
    let lease = Duration::from_secs(60);
    assert!(
        o.store
            .claim_wait_callbacks(now, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "an open wait has no callback due"
    );
    o.store.cancel_wait(&t, "wait_01", now).await.unwrap();
    let claimed = o.store.claim_wait_callbacks(now, lease, 10).await.unwrap();
    assert_eq!(ids(&claimed), ["wait_01"]);
    let c = claimed[0].callback.clone().unwrap();
    assert_eq!((c.state.as_str(), c.attempts), ("in_flight", 1));
    assert!(
        o.store
            .claim_wait_callbacks(now, lease, 10)
            .await
            .unwrap()
            .is_empty(),
        "a leased callback is not claimed again"
    );
    let after_lease = at("2026-01-02T03:31:00Z");
    let again = o
        .store
        .claim_wait_callbacks(after_lease, lease, 10)
        .await
        .unwrap();
    assert_eq!(again[0].callback.as_ref().unwrap().attempts, 2);
    // A retry makes it due later, then delivered is final.
    let retry_at = at("2026-01-02T03:35:00Z");
    assert!(
        o.store
            .finish_wait_callback(
                "wait_01",
                WaitCallbackAttempt {
                    token: 2,
                    status: Some(500),
                    error: Some("http_5xx".into()),
                    outcome: WaitCallbackOutcome::RetryAt(retry_at),
                },
            )
            .await
            .unwrap()
    );
    assert!(
        o.store
            .claim_wait_callbacks(at("2026-01-02T03:34:59Z"), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let third = o
        .store
        .claim_wait_callbacks(retry_at, lease, 10)
        .await
        .unwrap();
    assert_eq!(third[0].callback.as_ref().unwrap().last_status, Some(500));
    assert!(
        o.store
            .finish_wait_callback(
                "wait_01",
                WaitCallbackAttempt {
                    token: 3,
                    status: Some(204),
                    error: None,
                    outcome: WaitCallbackOutcome::Delivered,
                },
            )
            .await
            .unwrap()
    );
    let done = o.store.get_wait(&t, "wait_01").await.unwrap().unwrap();
    assert_eq!(done.callback.as_ref().unwrap().state, "delivered");
    assert!(
        o.store
            .claim_wait_callbacks(at("2026-01-09T00:00:00Z"), lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_stale_callback_claim_finishes_nothing(o: Opened) {
    let t = tenant("acme");
    o.store
        .insert_wait(with_callback(new_wait(&t, "wait_01", "wf", "a.b")))
        .await
        .unwrap();
    let now = at("2026-01-02T03:30:00Z");
    o.store.cancel_wait(&t, "wait_01", now).await.unwrap();
    let lease = Duration::from_secs(60);
    o.store.claim_wait_callbacks(now, lease, 10).await.unwrap();
    o.store
        .claim_wait_callbacks(at("2026-01-02T03:32:00Z"), lease, 10)
        .await
        .unwrap();
    let stale = WaitCallbackAttempt {
        token: 1,
        status: Some(204),
        error: None,
        outcome: WaitCallbackOutcome::Delivered,
    };
    assert!(
        !o.store
            .finish_wait_callback("wait_01", stale)
            .await
            .unwrap()
    );
    let w = o.store.get_wait(&t, "wait_01").await.unwrap().unwrap();
    assert_eq!(w.callback.unwrap().state, "in_flight");
}

async fn the_lookback_reads_the_tenants_events_stored_within_the_window(o: Opened) {
    let (t, other) = (tenant("acme"), tenant("other"));
    let old = at("2026-01-02T02:00:00Z");
    let recent = at("2026-01-02T03:00:00Z");
    let events = append(
        &o,
        vec![
            event_at(&t, "order.paid", json!({"n": 1}), old),
            event_at(&t, "order.paid", json!({"n": 2}), recent),
            event_at(&other, "order.paid", json!({"n": 3}), recent),
            event_at(&t, "order.paid", json!({"n": 4}), recent),
        ],
    )
    .await;
    let through = events[3].seq;
    let found = o
        .store
        .lookback_events(&t, through, at("2026-01-02T02:30:00Z"))
        .await
        .unwrap();
    let seqs: Vec<i64> = found.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [events[1].seq, events[3].seq], "{}", o.name);
    // Not past `through_seq`.
    let found = o
        .store
        .lookback_events(&t, events[1].seq, at("2026-01-02T02:30:00Z"))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    // Positive control for the window: a wider one takes the old event too.
    let found = o
        .store
        .lookback_events(&t, through, at("2026-01-02T01:00:00Z"))
        .await
        .unwrap();
    assert_eq!(found.len(), 3);
}
