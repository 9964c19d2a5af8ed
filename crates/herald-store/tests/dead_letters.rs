//! Conformance of the dead-letter queue on each backend: dead deliveries
//! are listed with their event and attempts, filtered and paged within
//! their tenant; a redrive or recover re-queues the same delivery with its
//! schedule starting over and its attempt numbers going on; a discard
//! deletes one with its attempts.

use std::time::Duration;

use herald_core::{EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp};
use herald_store::*;
use herald_testkit::on_each_backend;
use serde_json::json;

use herald_testkit::{StoreUnderTest as Opened, open_store as open};

on_each_backend!(
    open = open;
    dead_letters_are_listed_with_their_event_and_attempts_within_the_tenant,
    dead_letters_filter_by_subscription_type_time_and_error_class_and_page,
    a_redrive_requeues_the_same_delivery_with_its_schedule_starting_over,
    a_redrive_by_filter_takes_every_match_and_only_dead_ones,
    a_discard_deletes_the_dead_letter_and_its_attempts_within_its_tenant,
    recover_requeues_a_subscriptions_dead_letters_of_the_window_only,
    deliveries_come_with_their_attempts,
);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

const LEASE: Duration = Duration::from_secs(30);

/// Stores one event of `event_type` for `tenant`; its commit seq and event.
async fn store_event(
    store: &Store,
    tenant: &TenantId,
    event_type: &str,
) -> (i64, herald_core::CanonicalEvent) {
    let hasher = EmailHasher::new(b"dead-letters");
    let ctx = ProcessingContext {
        tenant_id: tenant,
        email_hasher: &hasher,
        processing_timestamp: Timestamp::now(),
        ids: &herald_core::UuidV7Ids::new(),
        traceparent: None,
    };
    let processed = EventProcessor::default()
        .process_value(
            json!({"event_type": event_type, "category": "business", "data": {"n": 1}}),
            &ctx,
        )
        .expect("valid test event");
    let out = store
        .append(vec![NewEvent {
            event: processed.event,
            expected_version: processed.expected_version,
        }])
        .await
        .unwrap();
    let AppendOutcome::Stored(event) = out.into_iter().next().unwrap() else {
        panic!("not stored");
    };
    let seq = store
        .events_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_id == event.event_id)
        .unwrap()
        .seq;
    (seq, event)
}

/// What a test builds: deliveries of stored events, some of them dead.
struct Fixture {
    events: Vec<herald_core::CanonicalEvent>,
    cursor: i64,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            events: Vec::new(),
            cursor: 0,
        }
    }

    /// Stores an event and one delivery of it per subscription; returns the
    /// delivery ids (`dlv_{n}-{subscription}`: id order is creation order), due at 03:00.
    async fn deliver(
        &mut self,
        store: &Store,
        tenant: &TenantId,
        event_type: &str,
        subscriptions: &[&str],
    ) -> Vec<String> {
        let (seq, event) = store_event(store, tenant, event_type).await;
        let n = self.events.len();
        self.events.push(event.clone());
        let rows: Vec<NewDelivery> = subscriptions
            .iter()
            .map(|s| NewDelivery {
                delivery_id: format!("dlv_{n}-{s}"),
                tenant_id: tenant.clone(),
                subscription_id: s.to_string(),
                event_id: event.event_id,
                seq,
                stream_id: None,
                stream_version: None,
                webhook_id: format!("msg_{n}-{s}"),
                replay_id: None,
                next_attempt_at: at("2026-01-02T03:00:00Z"),
                created_at: at("2026-01-02T03:00:00Z"),
            })
            .collect();
        let ids = rows.iter().map(|r| r.delivery_id.clone()).collect();
        let to = self.cursor + 1;
        store
            .fan_out(
                CursorMove {
                    name: "fan".into(),
                    from: self.cursor,
                    to,
                },
                rows,
            )
            .await
            .unwrap();
        self.cursor = to;
        ids
    }
}

fn failed(n: i64, when: &str, class: &str) -> DeliveryAttempt {
    DeliveryAttempt {
        attempt: n,
        at: at(when),
        status: Some(500),
        duration_ms: 7,
        error_class: Some(class.into()),
        response_snippet: Some("down".into()),
        next_attempt_at: None,
    }
}

/// Claims `id` and finishes its attempt as `outcome` at `when`; the attempt.
async fn attempt(
    store: &Store,
    id: &str,
    when: &str,
    class: &str,
    outcome: DeliveryOutcome,
) -> DeliveryAttempt {
    let claimed = store
        .claim_due_deliveries(at(when), LEASE, 1000)
        .await
        .unwrap();
    let d = claimed
        .iter()
        .find(|d| d.delivery_id == id)
        .unwrap_or_else(|| panic!("{id} not claimed at {when}: {claimed:?}"));
    let a = DeliveryAttempt {
        next_attempt_at: match outcome {
            DeliveryOutcome::RetryAt(t) => Some(t),
            _ => None,
        },
        ..failed(d.attempts, when, class)
    };
    // The others claimed alongside go back unattempted.
    for other in claimed.iter().filter(|d| d.delivery_id != id) {
        store
            .release_delivery(
                &other.delivery_id,
                other.attempts,
                other.next_attempt_at,
                at(when),
            )
            .await
            .unwrap();
    }
    assert!(store.finish_delivery(id, a.clone(), outcome).await.unwrap());
    a
}

async fn die(store: &Store, id: &str, when: &str, class: &str) -> DeliveryAttempt {
    attempt(store, id, when, class, DeliveryOutcome::Dead).await
}

fn all(limit: usize) -> DeadLetterQuery {
    DeadLetterQuery {
        filter: DeadLetterFilter::default(),
        limit,
        after: None,
    }
}

fn listed(page: &DeadLetterPage) -> Vec<&str> {
    page.dead_letters
        .iter()
        .map(|d| d.delivery.delivery_id.as_str())
        .collect()
}

async fn dead_letters_are_listed_with_their_event_and_attempts_within_the_tenant(o: Opened) {
    let (t, other) = (tenant("acme"), tenant("globex"));
    let mut f = Fixture::new();
    let a = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a"])
        .await;
    let b = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a"])
        .await;
    let g = f
        .deliver(&o.store, &other, "checkout_started", &["sub_g"])
        .await;
    let first = attempt(
        &o.store,
        &a[0],
        "2026-01-02T03:00:01Z",
        "timeout",
        DeliveryOutcome::RetryAt(at("2026-01-02T03:00:02Z")),
    )
    .await;
    let last = die(&o.store, &a[0], "2026-01-02T03:00:02Z", "server_error").await;
    die(&o.store, &g[0], "2026-01-02T03:00:03Z", "server_error").await;

    let page = o.store.dead_letters(&t, &all(10)).await.unwrap();
    assert_eq!(
        listed(&page),
        vec![a[0].as_str()],
        "{}: only acme's dead one, not {b:?}",
        o.name
    );
    assert_eq!(page.next_cursor, None);
    let d = &page.dead_letters[0];
    assert_eq!(d.delivery.state, DeliveryState::Dead);
    assert_eq!(d.delivery.webhook_id, "msg_0-sub_a");
    assert_eq!(d.delivery.last_error_class.as_deref(), Some("server_error"));
    assert_eq!(d.event_type.as_deref(), Some("checkout_started"));
    // Stored to the microsecond.
    assert_eq!(
        d.event_time.map(|t| t.unix_micros()),
        Some(f.events[0].timestamp.unix_micros())
    );
    assert_eq!(d.died_at, at("2026-01-02T03:00:02Z"));
    assert_eq!(d.attempts, vec![first, last]);

    let theirs = o.store.dead_letters(&other, &all(10)).await.unwrap();
    assert_eq!(listed(&theirs), vec![g[0].as_str()]);
}

async fn dead_letters_filter_by_subscription_type_time_and_error_class_and_page(o: Opened) {
    let t = tenant("acme");
    let mut f = Fixture::new();
    let e0 = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a", "sub_b"])
        .await;
    let e1 = f
        .deliver(&o.store, &t, "payment_captured", &["sub_a"])
        .await;
    die(&o.store, &e0[0], "2026-01-02T03:00:01Z", "server_error").await;
    die(&o.store, &e0[1], "2026-01-02T03:00:02Z", "timeout").await;
    die(&o.store, &e1[0], "2026-01-02T03:00:03Z", "server_error").await;

    let with = |filter: DeadLetterFilter| DeadLetterQuery {
        filter,
        limit: 10,
        after: None,
    };
    let cases = [
        (
            DeadLetterFilter {
                subscription_id: Some("sub_a".into()),
                ..Default::default()
            },
            vec![e0[0].as_str(), e1[0].as_str()],
        ),
        (
            DeadLetterFilter {
                event_type: Some("payment_captured".into()),
                ..Default::default()
            },
            vec![e1[0].as_str()],
        ),
        (
            DeadLetterFilter {
                error_class: Some("timeout".into()),
                ..Default::default()
            },
            vec![e0[1].as_str()],
        ),
        (
            DeadLetterFilter {
                died_from: Some(at("2026-01-02T03:00:02Z")),
                died_before: Some(at("2026-01-02T03:00:03Z")),
                ..Default::default()
            },
            vec![e0[1].as_str()],
        ),
        (
            DeadLetterFilter {
                subscription_id: Some("sub_a".into()),
                error_class: Some("server_error".into()),
                event_type: Some("checkout_started".into()),
                ..Default::default()
            },
            vec![e0[0].as_str()],
        ),
        (
            DeadLetterFilter {
                subscription_id: Some("sub_none".into()),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, want) in cases {
        let page = o
            .store
            .dead_letters(&t, &with(filter.clone()))
            .await
            .unwrap();
        assert_eq!(listed(&page), want, "{}: {filter:?}", o.name);
    }

    // Pages of two, in id order, each from the previous one's cursor.
    let first = o.store.dead_letters(&t, &all(2)).await.unwrap();
    assert_eq!(listed(&first), vec![e0[0].as_str(), e0[1].as_str()]);
    let cursor = first.next_cursor.clone().expect("more to come");
    let second = o
        .store
        .dead_letters(
            &t,
            &DeadLetterQuery {
                after: Some(cursor),
                ..all(2)
            },
        )
        .await
        .unwrap();
    assert_eq!(listed(&second), vec![e1[0].as_str()]);
    assert_eq!(second.next_cursor, None);
}

async fn a_redrive_requeues_the_same_delivery_with_its_schedule_starting_over(o: Opened) {
    let (t, other) = (tenant("acme"), tenant("globex"));
    let mut f = Fixture::new();
    let a = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a"])
        .await;
    let g = f
        .deliver(&o.store, &other, "checkout_started", &["sub_g"])
        .await;
    let first = die(&o.store, &a[0], "2026-01-02T03:00:01Z", "server_error").await;
    die(&o.store, &g[0], "2026-01-02T03:00:01Z", "server_error").await;

    let now = at("2026-01-02T04:00:00Z");
    let picked = DeadLetterSelection::Ids(vec![a[0].clone(), g[0].clone(), "dlv_nope".into()]);
    assert_eq!(
        o.store
            .redrive_dead_letters(&t, &picked, now)
            .await
            .unwrap(),
        1,
        "{}: another tenant's and unknown ids are skipped",
        o.name
    );
    let d = o
        .store
        .deliveries_of_event(&t, f.events[0].event_id)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (
            d.state,
            d.next_attempt_at,
            d.attempts,
            d.attempt_base,
            d.webhook_id.as_str()
        ),
        (DeliveryState::Pending, now, 1, 1, "msg_0-sub_a")
    );
    assert!(
        o.store
            .dead_letters(&t, &all(10))
            .await
            .unwrap()
            .dead_letters
            .is_empty()
    );
    assert_eq!(
        listed(&o.store.dead_letters(&other, &all(10)).await.unwrap()),
        vec![g[0].as_str()],
        "the other tenant's dead letter stays dead"
    );
    // Not dead any more: a second redrive takes nothing.
    assert_eq!(
        o.store
            .redrive_dead_letters(&t, &picked, now)
            .await
            .unwrap(),
        0
    );

    // Claimed at once; the attempt numbers go on from the earlier ones.
    let claimed = o.store.claim_due_deliveries(now, LEASE, 10).await.unwrap();
    let mine: Vec<_> = claimed.iter().filter(|d| d.delivery_id == a[0]).collect();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].attempts, mine[0].attempt_base), (2, 1));
    let ok = DeliveryAttempt {
        status: Some(200),
        error_class: None,
        ..failed(2, "2026-01-02T04:00:00Z", "")
    };
    assert!(
        o.store
            .finish_delivery(&a[0], ok.clone(), DeliveryOutcome::Delivered)
            .await
            .unwrap()
    );
    assert_eq!(
        o.store.delivery_attempts(&a[0]).await.unwrap(),
        vec![first, ok]
    );
}

async fn a_redrive_by_filter_takes_every_match_and_only_dead_ones(o: Opened) {
    let t = tenant("acme");
    let mut f = Fixture::new();
    let e0 = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a", "sub_b"])
        .await;
    let e1 = f
        .deliver(&o.store, &t, "payment_captured", &["sub_a"])
        .await;
    let pending = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a"])
        .await;
    die(&o.store, &e0[0], "2026-01-02T03:00:01Z", "server_error").await;
    die(&o.store, &e0[1], "2026-01-02T03:00:01Z", "server_error").await;
    die(&o.store, &e1[0], "2026-01-02T03:00:01Z", "server_error").await;

    let now = at("2026-01-02T04:00:00Z");
    let by = |filter| DeadLetterSelection::Matching(filter);
    let redriven = o
        .store
        .redrive_dead_letters(
            &t,
            &by(DeadLetterFilter {
                subscription_id: Some("sub_a".into()),
                event_type: Some("checkout_started".into()),
                ..Default::default()
            }),
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        redriven, 1,
        "{}: only e0's sub_a delivery, not {pending:?}",
        o.name
    );
    assert_eq!(
        listed(&o.store.dead_letters(&t, &all(10)).await.unwrap()),
        vec![e0[1].as_str(), e1[0].as_str()]
    );
    let rest = o
        .store
        .redrive_dead_letters(&t, &by(DeadLetterFilter::default()), now)
        .await
        .unwrap();
    assert_eq!(rest, 2);
    assert!(
        o.store
            .dead_letters(&t, &all(10))
            .await
            .unwrap()
            .dead_letters
            .is_empty()
    );
    assert_eq!(
        o.store
            .redrive_dead_letters(&t, &DeadLetterSelection::Ids(vec![]), now)
            .await
            .unwrap(),
        0
    );
}

async fn a_discard_deletes_the_dead_letter_and_its_attempts_within_its_tenant(o: Opened) {
    let (t, other) = (tenant("acme"), tenant("globex"));
    let mut f = Fixture::new();
    let a = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a", "sub_b"])
        .await;
    die(&o.store, &a[0], "2026-01-02T03:00:01Z", "server_error").await;

    assert!(
        !o.store.discard_dead_letter(&other, &a[0]).await.unwrap(),
        "{}: another tenant's id is not found",
        o.name
    );
    assert!(
        !o.store.discard_dead_letter(&t, &a[1]).await.unwrap(),
        "a pending delivery is no dead letter"
    );
    assert!(!o.store.discard_dead_letter(&t, "dlv_nope").await.unwrap());
    assert_eq!(o.store.delivery_attempts(&a[0]).await.unwrap().len(), 1);
    assert!(o.store.discard_dead_letter(&t, &a[0]).await.unwrap());
    assert!(o.store.delivery_attempts(&a[0]).await.unwrap().is_empty());
    assert!(
        o.store
            .dead_letters(&t, &all(10))
            .await
            .unwrap()
            .dead_letters
            .is_empty()
    );
    assert_eq!(
        o.store
            .deliveries_of_event(&t, f.events[0].event_id)
            .await
            .unwrap()
            .iter()
            .map(|d| d.delivery_id.as_str())
            .collect::<Vec<_>>(),
        vec![a[1].as_str()]
    );
    assert!(!o.store.discard_dead_letter(&t, &a[0]).await.unwrap());
}

async fn recover_requeues_a_subscriptions_dead_letters_of_the_window_only(o: Opened) {
    let t = tenant("acme");
    let mut f = Fixture::new();
    let e0 = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a", "sub_b"])
        .await;
    let e1 = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a"])
        .await;
    let e2 = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a"])
        .await;
    die(&o.store, &e0[0], "2026-01-02T03:00:01Z", "server_error").await;
    die(&o.store, &e0[1], "2026-01-02T03:00:02Z", "server_error").await;
    die(&o.store, &e1[0], "2026-01-02T03:00:02Z", "server_error").await;
    die(&o.store, &e2[0], "2026-01-02T03:00:03Z", "server_error").await;

    let recovered = o
        .store
        .recover_deliveries(
            &t,
            "sub_a",
            at("2026-01-02T03:00:01.5Z"),
            at("2026-01-02T03:00:03Z"),
            at("2026-01-02T04:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(recovered, 1, "{}", o.name);
    assert_eq!(
        listed(&o.store.dead_letters(&t, &all(10)).await.unwrap()),
        vec![e0[0].as_str(), e0[1].as_str(), e2[0].as_str()],
        "before the window, another subscription and the window's end stay dead"
    );
}

async fn deliveries_come_with_their_attempts(o: Opened) {
    let t = tenant("acme");
    let mut f = Fixture::new();
    let a = f
        .deliver(&o.store, &t, "checkout_started", &["sub_a", "sub_b"])
        .await;
    let dead = die(&o.store, &a[0], "2026-01-02T03:00:01Z", "server_error").await;
    let deliveries = o
        .store
        .deliveries_of_event(&t, f.events[0].event_id)
        .await
        .unwrap();
    let with = o.store.with_attempts(deliveries.clone()).await.unwrap();
    assert_eq!(
        with,
        vec![
            DeliveryWithAttempts {
                delivery: deliveries[0].clone(),
                attempts: vec![dead],
            },
            DeliveryWithAttempts {
                delivery: deliveries[1].clone(),
                attempts: vec![],
            },
        ],
        "{}",
        o.name
    );
    assert!(o.store.with_attempts(vec![]).await.unwrap().is_empty());
}
