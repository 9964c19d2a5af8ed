//! Conformance of the delivery outbox on each backend: a fan-out stores
//! its rows and moves its cursor in one transaction, a repeat adds
//! nothing, due rows are found by time, listings page and stay within a
//! tenant, the fan-out reads every tenant's enabled subscriptions, a
//! stream-ordering subscription's claims go one stream version at a time,
//! and dead letters and disables leave lifecycle notices.

use std::collections::{BTreeMap, BTreeSet};

use herald_core::{EventId, IdSource, SequentialIds, TenantId, Timestamp};
use herald_store::*;
use herald_testkit::on_each_backend;
use serde_json::json;

use herald_testkit::{StoreUnderTest as Opened, open_store as open};

on_each_backend!(
    open = open;
    a_fan_out_stores_its_rows_and_moves_its_cursor_together,
    a_repeated_fan_out_with_the_old_position_conflicts_and_stores_nothing,
    a_pair_already_stored_is_not_stored_again_but_a_replay_of_it_is,
    due_deliveries_are_the_pending_ones_whose_time_has_come,
    a_claim_takes_due_rows_until_its_lease_runs_out,
    concurrent_claims_never_take_the_same_row,
    listings_stay_within_the_tenant_and_page_by_id,
    the_fan_out_reads_every_tenants_enabled_subscriptions_only,
    a_finished_attempt_is_recorded_and_moves_the_delivery_on,
    a_stale_claim_finishes_nothing,
    a_gone_receiver_disables_the_subscription_with_the_delivery,
    a_released_claim_is_due_again_without_counting_an_attempt,
    a_stream_ordering_subscription_claims_one_delivery_of_a_stream_at_a_time,
    dead_letters_and_disables_are_noted_in_the_audit_trail_and_the_outbox,
);

fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

fn at(text: &str) -> Timestamp {
    Timestamp::parse(text).unwrap()
}

fn event_ids(n: usize) -> Vec<EventId> {
    let ids = SequentialIds::default();
    (0..n)
        .map(|_| ids.event_id(at("2026-01-02T03:04:05Z")))
        .collect()
}

fn moved(name: &str, from: i64, to: i64) -> CursorMove {
    CursorMove {
        name: name.into(),
        from,
        to,
    }
}

fn new_delivery(
    tenant: &TenantId,
    subscription_id: &str,
    event_id: EventId,
    seq: i64,
    due: &str,
) -> NewDelivery {
    let id = format!("{subscription_id}-{seq:04}");
    NewDelivery {
        delivery_id: format!("dlv_{id}"),
        tenant_id: tenant.clone(),
        subscription_id: subscription_id.into(),
        event_id,
        seq,
        stream_id: Some("order-7".into()),
        stream_version: Some(seq),
        webhook_id: format!("msg_{id}"),
        replay_id: None,
        next_attempt_at: at(due),
        created_at: at("2026-01-02T03:04:06.123456Z"),
    }
}

/// What the store holds for a new delivery: pending, no attempt yet.
fn stored(d: &NewDelivery) -> Delivery {
    Delivery {
        delivery_id: d.delivery_id.clone(),
        tenant_id: d.tenant_id.clone(),
        subscription_id: d.subscription_id.clone(),
        event_id: d.event_id,
        seq: d.seq,
        stream_id: d.stream_id.clone(),
        stream_version: d.stream_version,
        webhook_id: d.webhook_id.clone(),
        replay_id: d.replay_id.clone(),
        state: DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: d.next_attempt_at,
        lease_until: None,
        last_status: None,
        last_error_class: None,
        created_at: d.created_at,
        updated_at: d.created_at,
        attempt_base: 0,
    }
}

fn ids(deliveries: &[Delivery]) -> Vec<&str> {
    deliveries.iter().map(|d| d.delivery_id.as_str()).collect()
}

const DUE: &str = "2026-01-02T03:04:06.5Z";

async fn a_fan_out_stores_its_rows_and_moves_its_cursor_together(o: Opened) {
    let t = tenant("acme");
    let e = event_ids(2);
    let rows = vec![
        new_delivery(&t, "sub_a", e[0], 1, DUE),
        new_delivery(&t, "sub_b", e[0], 1, DUE),
        new_delivery(&t, "sub_a", e[1], 2, DUE),
    ];
    assert_eq!(
        o.store
            .fan_out(moved("fan", 0, 2), rows.clone())
            .await
            .unwrap(),
        3
    );
    assert_eq!(o.store.cursor("fan").await.unwrap(), 2);
    assert_eq!(
        o.store.deliveries_of_event(&t, e[0]).await.unwrap(),
        vec![stored(&rows[0]), stored(&rows[1])]
    );
    assert_eq!(
        o.store.deliveries_of_event(&t, e[1]).await.unwrap(),
        vec![stored(&rows[2])]
    );
    // An empty batch still moves the cursor.
    assert_eq!(
        o.store.fan_out(moved("fan", 2, 9), vec![]).await.unwrap(),
        0
    );
    assert_eq!(o.store.cursor("fan").await.unwrap(), 9);
}

async fn a_repeated_fan_out_with_the_old_position_conflicts_and_stores_nothing(o: Opened) {
    let t = tenant("acme");
    let e = event_ids(2);
    let first = vec![new_delivery(&t, "sub_a", e[0], 1, DUE)];
    assert_eq!(o.store.fan_out(moved("fan", 0, 1), first).await.unwrap(), 1);

    // A second instance that read the cursor at 0 too.
    let late = vec![new_delivery(&t, "sub_a", e[1], 2, DUE)];
    let err = o.store.fan_out(moved("fan", 0, 2), late).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Conflict(ConflictReason::CursorMoved {
                expected: 0,
                actual: 1,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(o.store.cursor("fan").await.unwrap(), 1);
    assert_eq!(o.store.deliveries_of_event(&t, e[1]).await.unwrap(), vec![]);

    // From a cursor position that moved on, also a conflict.
    let err = o
        .store
        .fan_out(
            moved("fan", 5, 6),
            vec![new_delivery(&t, "sub_a", e[1], 2, DUE)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(o.store.deliveries_of_event(&t, e[1]).await.unwrap(), vec![]);

    let back = o
        .store
        .fan_out(moved("fan", 1, 0), vec![])
        .await
        .unwrap_err();
    assert!(matches!(back, StoreError::Invalid { .. }), "{back:?}");
}

async fn a_pair_already_stored_is_not_stored_again_but_a_replay_of_it_is(o: Opened) {
    let t = tenant("acme");
    let e = event_ids(2);
    let original = new_delivery(&t, "sub_a", e[0], 1, DUE);
    assert_eq!(
        o.store
            .fan_out(moved("fan", 0, 1), vec![original.clone()])
            .await
            .unwrap(),
        1
    );

    // The same (subscription, event) under another id, as a crash between
    // two fan-outs of one batch would make it, next to a new pair.
    let mut again = original.clone();
    again.delivery_id = "dlv_other".into();
    again.webhook_id = "msg_other".into();
    let fresh = new_delivery(&t, "sub_a", e[1], 2, DUE);
    // And the new pair twice in one batch: stored once.
    let mut twin = fresh.clone();
    twin.delivery_id = "dlv_twin".into();
    let mut replay = original.clone();
    replay.delivery_id = "dlv_replay".into();
    replay.replay_id = Some("rpl_1".into());
    assert_eq!(
        o.store
            .fan_out(
                moved("fan", 1, 2),
                vec![again, fresh.clone(), twin, replay.clone()]
            )
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        o.store.deliveries_of_event(&t, e[0]).await.unwrap(),
        vec![stored(&replay), stored(&original)],
        "in id order"
    );
    let page = o
        .store
        .deliveries_of_subscription(&t, "sub_a", 10, None)
        .await
        .unwrap();
    assert_eq!(
        ids(&page.deliveries),
        vec!["dlv_replay", "dlv_sub_a-0001", "dlv_sub_a-0002"]
    );
}

async fn due_deliveries_are_the_pending_ones_whose_time_has_come(o: Opened) {
    let t = tenant("acme");
    let e = event_ids(3);
    let rows = vec![
        new_delivery(&t, "sub_a", e[0], 1, "2026-01-02T03:04:07Z"),
        new_delivery(&t, "sub_a", e[1], 2, "2026-01-02T03:04:05Z"),
        new_delivery(&t, "sub_a", e[2], 3, "2026-01-02T03:04:09Z"),
    ];
    o.store.fan_out(moved("fan", 0, 3), rows).await.unwrap();
    let due = |now: &str, limit: usize| {
        let (store, now) = (o.store.clone(), at(now));
        async move { store.due_deliveries(now, limit).await.unwrap() }
    };
    assert_eq!(
        ids(&due("2026-01-02T03:04:04Z", 10).await),
        Vec::<&str>::new()
    );
    assert_eq!(
        ids(&due("2026-01-02T03:04:05Z", 10).await),
        vec!["dlv_sub_a-0002"]
    );
    assert_eq!(
        ids(&due("2026-01-02T03:04:08Z", 10).await),
        vec!["dlv_sub_a-0002", "dlv_sub_a-0001"]
    );
    assert_eq!(
        ids(&due("2026-01-02T03:05:00Z", 10).await),
        vec!["dlv_sub_a-0002", "dlv_sub_a-0001", "dlv_sub_a-0003"]
    );
    assert_eq!(
        ids(&due("2026-01-02T03:05:00Z", 2).await),
        vec!["dlv_sub_a-0002", "dlv_sub_a-0001"]
    );
}

async fn a_claim_takes_due_rows_until_its_lease_runs_out(o: Opened) {
    let t = tenant("acme");
    let e = event_ids(3);
    let rows = vec![
        new_delivery(&t, "sub_a", e[0], 1, "2026-01-02T03:04:05Z"),
        new_delivery(&t, "sub_a", e[1], 2, "2026-01-02T03:04:07Z"),
        new_delivery(&t, "sub_a", e[2], 3, "2026-01-02T03:04:09Z"),
    ];
    o.store.fan_out(moved("fan", 0, 3), rows).await.unwrap();
    let lease = std::time::Duration::from_secs(30);
    let claim = |now: &str, limit: usize| {
        let (store, now) = (o.store.clone(), at(now));
        async move {
            store
                .claim_due_deliveries(now, lease, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|d| (d.delivery_id.clone(), d.state, d.attempts, d.lease_until))
                .collect::<Vec<_>>()
        }
    };
    let leased = |id: &str, attempts: i64, until: &str| {
        (
            format!("dlv_sub_a-{id}"),
            DeliveryState::InFlight,
            attempts,
            Some(at(until)),
        )
    };

    assert_eq!(
        claim("2026-01-02T03:04:07Z", 10).await,
        vec![
            leased("0001", 1, "2026-01-02T03:04:37Z"),
            leased("0002", 1, "2026-01-02T03:04:37Z"),
        ]
    );
    let now = at("2026-01-02T03:04:07Z");
    assert_eq!(
        ids(&o.store.due_deliveries(now, 10).await.unwrap()),
        Vec::<&str>::new(),
        "claimed rows are no longer pending"
    );
    assert_eq!(
        claim("2026-01-02T03:04:08Z", 10).await,
        vec![],
        "leases hold"
    );
    assert_eq!(
        claim("2026-01-02T03:04:36Z", 1).await,
        vec![leased("0003", 1, "2026-01-02T03:05:06Z")],
        "a limit of one, and a held lease is skipped"
    );
    // Past the first leases: those rows are claimed again, as a new attempt.
    assert_eq!(
        claim("2026-01-02T03:04:37Z", 10).await,
        vec![
            leased("0001", 2, "2026-01-02T03:05:07Z"),
            leased("0002", 2, "2026-01-02T03:05:07Z"),
        ]
    );
}

async fn concurrent_claims_never_take_the_same_row(o: Opened) {
    let t = tenant("acme");
    let e = event_ids(40);
    let rows: Vec<NewDelivery> = e
        .iter()
        .enumerate()
        .map(|(i, id)| new_delivery(&t, "sub_a", *id, i as i64 + 1, DUE))
        .collect();
    o.store.fan_out(moved("fan", 0, 40), rows).await.unwrap();
    let now = at("2026-01-02T03:05:00Z");
    let lease = std::time::Duration::from_secs(30);
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let store = o.store.clone();
            tokio::spawn(async move { store.claim_due_deliveries(now, lease, 15).await.unwrap() })
        })
        .collect();
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap().into_iter().map(|d| d.delivery_id));
    }
    let distinct: BTreeSet<&String> = claimed.iter().collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "a row claimed twice: {claimed:?}"
    );
    assert!(!claimed.is_empty());
    let left = o.store.due_deliveries(now, 100).await.unwrap().len();
    assert_eq!(
        left + claimed.len(),
        40,
        "every row claimed once or still pending"
    );
}

async fn listings_stay_within_the_tenant_and_page_by_id(o: Opened) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let e = event_ids(4);
    let rows = vec![
        new_delivery(&acme, "sub_a", e[0], 1, DUE),
        new_delivery(&acme, "sub_a", e[1], 2, DUE),
        new_delivery(&acme, "sub_a", e[2], 3, DUE),
        new_delivery(&globex, "sub_g", e[3], 4, DUE),
    ];
    o.store.fan_out(moved("fan", 0, 4), rows).await.unwrap();

    assert_eq!(
        o.store.deliveries_of_event(&globex, e[0]).await.unwrap(),
        vec![]
    );
    assert_eq!(
        o.store.deliveries_of_event(&acme, e[3]).await.unwrap(),
        vec![]
    );
    assert_eq!(
        ids(&o.store.deliveries_of_event(&globex, e[3]).await.unwrap()),
        vec!["dlv_sub_g-0004"]
    );
    let foreign = o
        .store
        .deliveries_of_subscription(&globex, "sub_a", 10, None)
        .await
        .unwrap();
    assert_eq!(foreign.deliveries, vec![]);
    assert_eq!(foreign.next_cursor, None);

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = o
            .store
            .deliveries_of_subscription(&acme, "sub_a", 2, after)
            .await
            .unwrap();
        assert!(page.deliveries.len() <= 2);
        seen.extend(page.deliveries.iter().map(|d| d.delivery_id.clone()));
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["dlv_sub_a-0001", "dlv_sub_a-0002", "dlv_sub_a-0003"]
    );
}

async fn the_fan_out_reads_every_tenants_enabled_subscriptions_only(o: Opened) {
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let mut off = spec("off");
    off.enabled = false;
    for s in [
        subscription(&acme, "sub_1", spec("one")),
        subscription(&acme, "sub_2", off),
        subscription(&globex, "sub_3", spec("three")),
    ] {
        o.store.insert_subscription(s).await.unwrap();
    }
    let enabled: BTreeSet<(String, String)> = o
        .store
        .enabled_subscriptions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.tenant_id.to_string(), s.subscription_id))
        .collect();
    assert_eq!(
        enabled,
        BTreeSet::from([
            ("acme".to_string(), "sub_1".to_string()),
            ("globex".to_string(), "sub_3".to_string()),
        ])
    );
}

fn spec(name: &str) -> SubscriptionSpec {
    SubscriptionSpec {
        subscriber_name: name.into(),
        subscriber_type: "webhook".into(),
        event_types: vec!["order.*".into(), "payment.captured".into()],
        event_sources: vec!["backend".into()],
        event_categories: vec!["business".into()],
        callback_url: "https://hooks.example.com/herald".into(),
        retry_policy: json!({"schedule": [1, 2, 4]}),
        filter: Some("event.data.amount > 100".into()),
        ordering: "stream".into(),
        payload_format: "json".into(),
        rate_limit: Some(2.5),
        headers: BTreeMap::from([("x-team".to_string(), "billing".to_string())]),
        enabled: true,
    }
}

fn subscription(tenant: &TenantId, id: &str, spec: SubscriptionSpec) -> Subscription {
    Subscription {
        subscription_id: id.into(),
        tenant_id: tenant.clone(),
        spec,
        secret: format!("whsec_secret-of-{id}"),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: at("2026-01-02T03:04:05.123456Z"),
        updated_at: at("2026-01-02T03:04:05.123456Z"),
    }
}

fn attempt(n: i64, sent: &str, status: Option<i64>, next: Option<&str>) -> DeliveryAttempt {
    DeliveryAttempt {
        attempt: n,
        at: at(sent),
        status,
        duration_ms: 12,
        error_class: status
            .filter(|s| *s >= 300)
            .map(|_| "server_error".to_string()),
        response_snippet: Some("busy".into()),
        next_attempt_at: next.map(at),
    }
}

async fn a_finished_attempt_is_recorded_and_moves_the_delivery_on(o: Opened) {
    let t = tenant("acme");
    let e = event_ids(1);
    let row = new_delivery(&t, "sub_a", e[0], 1, "2026-01-02T03:04:05Z");
    o.store
        .fan_out(moved("fan", 0, 1), vec![row])
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(30);
    let id = "dlv_sub_a-0001";

    let first = o
        .store
        .claim_due_deliveries(at("2026-01-02T03:04:06Z"), lease, 10);
    assert_eq!(first.await.unwrap()[0].attempts, 1);
    let failed = attempt(
        1,
        "2026-01-02T03:04:06Z",
        Some(503),
        Some("2026-01-02T03:04:16Z"),
    );
    let retry = DeliveryOutcome::RetryAt(at("2026-01-02T03:04:16Z"));
    assert!(
        o.store
            .finish_delivery(id, failed.clone(), retry)
            .await
            .unwrap()
    );
    let after = &o.store.deliveries_of_event(&t, e[0]).await.unwrap()[0];
    assert_eq!(
        (
            after.state,
            after.next_attempt_at,
            after.lease_until,
            after.last_status
        ),
        (
            DeliveryState::Pending,
            at("2026-01-02T03:04:16Z"),
            None,
            Some(503)
        )
    );
    assert_eq!(after.last_error_class.as_deref(), Some("server_error"));
    assert_eq!(
        ids(&o
            .store
            .due_deliveries(at("2026-01-02T03:04:15Z"), 10)
            .await
            .unwrap()),
        Vec::<&str>::new(),
        "not due before the retry time"
    );

    let second = o
        .store
        .claim_due_deliveries(at("2026-01-02T03:04:16Z"), lease, 10);
    assert_eq!(second.await.unwrap()[0].attempts, 2);
    let ok = attempt(2, "2026-01-02T03:04:16Z", Some(204), None);
    assert!(
        o.store
            .finish_delivery(id, ok.clone(), DeliveryOutcome::Delivered)
            .await
            .unwrap()
    );
    let done = &o.store.deliveries_of_event(&t, e[0]).await.unwrap()[0];
    assert_eq!(
        (done.state, done.last_status, done.last_error_class.clone()),
        (DeliveryState::Delivered, Some(204), None)
    );
    assert_eq!(
        o.store.delivery_attempts(id).await.unwrap(),
        vec![failed, ok]
    );
    assert_eq!(
        o.store
            .claim_due_deliveries(at("2026-01-02T04:00:00Z"), lease, 10)
            .await
            .unwrap(),
        vec![],
        "a delivered row is never claimed again"
    );
}

async fn a_stale_claim_finishes_nothing(o: Opened) {
    let t = tenant("acme");
    let e = event_ids(1);
    let row = new_delivery(&t, "sub_a", e[0], 1, "2026-01-02T03:04:05Z");
    o.store
        .fan_out(moved("fan", 0, 1), vec![row])
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(30);
    let id = "dlv_sub_a-0001";
    o.store
        .claim_due_deliveries(at("2026-01-02T03:04:06Z"), lease, 10)
        .await
        .unwrap();
    // The lease runs out and another worker claims it again.
    let again = o
        .store
        .claim_due_deliveries(at("2026-01-02T03:04:36Z"), lease, 10);
    assert_eq!(again.await.unwrap()[0].attempts, 2);
    let before = o.store.deliveries_of_event(&t, e[0]).await.unwrap();

    let late = attempt(1, "2026-01-02T03:04:40Z", Some(200), None);
    assert!(
        !o.store
            .finish_delivery(id, late, DeliveryOutcome::Delivered)
            .await
            .unwrap()
    );
    assert_eq!(o.store.deliveries_of_event(&t, e[0]).await.unwrap(), before);
    assert_eq!(o.store.delivery_attempts(id).await.unwrap(), vec![]);
    // The newest claim's result is taken.
    let current = attempt(2, "2026-01-02T03:04:41Z", Some(500), None);
    assert!(
        o.store
            .finish_delivery(id, current, DeliveryOutcome::Dead)
            .await
            .unwrap()
    );
    let dead = &o.store.deliveries_of_event(&t, e[0]).await.unwrap()[0];
    assert_eq!(dead.state, DeliveryState::Dead);
    let twice = attempt(2, "2026-01-02T03:04:42Z", Some(200), None);
    assert!(
        !o.store
            .finish_delivery(id, twice, DeliveryOutcome::Delivered)
            .await
            .unwrap(),
        "a finished claim cannot be finished again"
    );
}

async fn a_gone_receiver_disables_the_subscription_with_the_delivery(o: Opened) {
    let t = tenant("acme");
    let sub = subscription(&t, "sub_gone", spec("gone"));
    o.store.insert_subscription(sub).await.unwrap();
    let other = subscription(&t, "sub_other", spec("other"));
    o.store.insert_subscription(other).await.unwrap();
    let e = event_ids(1);
    let row = new_delivery(&t, "sub_gone", e[0], 1, "2026-01-02T03:04:05Z");
    o.store
        .fan_out(moved("fan", 0, 1), vec![row])
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(30);
    o.store
        .claim_due_deliveries(at("2026-01-02T03:04:06Z"), lease, 10)
        .await
        .unwrap();

    let gone = attempt(1, "2026-01-02T03:04:06Z", Some(410), None);
    let outcome = DeliveryOutcome::DisableSubscription;
    assert!(
        o.store
            .finish_delivery("dlv_sub_gone-0001", gone, outcome)
            .await
            .unwrap()
    );
    assert_eq!(
        o.store.deliveries_of_event(&t, e[0]).await.unwrap()[0].state,
        DeliveryState::Dead
    );
    let enabled: Vec<String> = o
        .store
        .enabled_subscriptions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.subscription_id)
        .collect();
    assert_eq!(enabled, vec!["sub_other".to_string()]);
    let read = o
        .store
        .get_subscription(&t, "sub_gone")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !read.spec.enabled,
        "the stored definition says disabled too"
    );
    assert_eq!(read.spec.headers, spec("gone").headers, "the rest is kept");
}

async fn a_released_claim_is_due_again_without_counting_an_attempt(o: Opened) {
    let t = tenant("acme");
    let e = event_ids(1);
    let row = new_delivery(&t, "sub_a", e[0], 1, "2026-01-02T03:04:05Z");
    o.store
        .fan_out(moved("fan", 0, 1), vec![row])
        .await
        .unwrap();
    let lease = std::time::Duration::from_secs(30);
    let id = "dlv_sub_a-0001";
    let now = at("2026-01-02T03:04:06Z");
    o.store.claim_due_deliveries(now, lease, 10).await.unwrap();
    let later = at("2026-01-02T03:05:00Z");
    assert!(
        !o.store.release_delivery(id, 2, later, now).await.unwrap(),
        "not the token"
    );
    assert!(o.store.release_delivery(id, 1, later, now).await.unwrap());
    assert!(
        !o.store.release_delivery(id, 1, later, now).await.unwrap(),
        "released once"
    );
    let d = &o.store.deliveries_of_event(&t, e[0]).await.unwrap()[0];
    assert_eq!(
        (d.state, d.attempts, d.next_attempt_at, d.lease_until),
        (DeliveryState::Pending, 0, later, None)
    );
    assert_eq!(o.store.delivery_attempts(id).await.unwrap(), vec![]);
    let again = o
        .store
        .claim_due_deliveries(later, lease, 10)
        .await
        .unwrap();
    assert_eq!(again[0].attempts, 1, "the next claim is the first attempt");
}

fn claimed_ids(claimed: &[Delivery]) -> BTreeSet<String> {
    claimed.iter().map(|d| d.delivery_id.clone()).collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

async fn a_stream_ordering_subscription_claims_one_delivery_of_a_stream_at_a_time(o: Opened) {
    let t = tenant("acme");
    let mut unordered = spec("unordered");
    unordered.ordering = "none".into();
    o.store
        .insert_subscription(subscription(&t, "sub_o", spec("ordered")))
        .await
        .unwrap();
    o.store
        .insert_subscription(subscription(&t, "sub_n", unordered))
        .await
        .unwrap();
    let e = event_ids(5);
    let due = "2026-01-02T03:04:05Z";
    // Versions 1..3 of stream order-7 to both; version 1 of order-8 to the
    // ordered one; and a replay of version 3.
    let mut rows: Vec<NewDelivery> = (0..3)
        .flat_map(|i| {
            [
                new_delivery(&t, "sub_o", e[i], i as i64 + 1, due),
                new_delivery(&t, "sub_n", e[i], i as i64 + 1, due),
            ]
        })
        .collect();
    let mut other_stream = new_delivery(&t, "sub_o", e[3], 4, due);
    other_stream.stream_id = Some("order-8".into());
    other_stream.stream_version = Some(1);
    rows.push(other_stream);
    let mut replay = new_delivery(&t, "sub_o", e[2], 3, due);
    replay.delivery_id = "dlv_replayed".into();
    replay.webhook_id = "msg_replayed".into();
    replay.replay_id = Some("rpl_1".into());
    rows.push(replay);
    o.store.fan_out(moved("fan", 0, 4), rows).await.unwrap();
    // Long enough that no claim below lapses.
    let lease = std::time::Duration::from_secs(3600);
    let now = at("2026-01-02T03:04:06Z");

    let first = o.store.claim_due_deliveries(now, lease, 100).await.unwrap();
    assert_eq!(
        claimed_ids(&first),
        set(&[
            "dlv_sub_o-0001",
            "dlv_sub_o-0004",
            "dlv_replayed",
            "dlv_sub_n-0001",
            "dlv_sub_n-0002",
            "dlv_sub_n-0003",
        ]),
        "version 1 of each stream, the replay and everything unordered"
    );
    // Version 1 fails and waits for its retry: version 2 still waits.
    let later = "2026-01-02T03:05:00Z";
    let failed = attempt(1, "2026-01-02T03:04:06Z", Some(500), Some(later));
    o.store
        .finish_delivery(
            "dlv_sub_o-0001",
            failed,
            DeliveryOutcome::RetryAt(at(later)),
        )
        .await
        .unwrap();
    let none = o
        .store
        .claim_due_deliveries(at("2026-01-02T03:04:30Z"), lease, 100)
        .await
        .unwrap();
    assert_eq!(claimed_ids(&none), set(&[]));
    // Its retry comes due: only it goes; once it is dead, version 2 goes.
    let retry = o
        .store
        .claim_due_deliveries(at(later), lease, 100)
        .await
        .unwrap();
    assert_eq!(claimed_ids(&retry), set(&["dlv_sub_o-0001"]));
    let dead = attempt(2, later, Some(500), None);
    o.store
        .finish_delivery("dlv_sub_o-0001", dead, DeliveryOutcome::Dead)
        .await
        .unwrap();
    let second = o
        .store
        .claim_due_deliveries(at(later), lease, 100)
        .await
        .unwrap();
    assert_eq!(claimed_ids(&second), set(&["dlv_sub_o-0002"]));
    // Delivered: version 3 goes.
    let ok = attempt(1, later, Some(200), None);
    o.store
        .finish_delivery("dlv_sub_o-0002", ok, DeliveryOutcome::Delivered)
        .await
        .unwrap();
    let third = o
        .store
        .claim_due_deliveries(at(later), lease, 100)
        .await
        .unwrap();
    assert_eq!(claimed_ids(&third), set(&["dlv_sub_o-0003"]));
}

async fn dead_letters_and_disables_are_noted_in_the_audit_trail_and_the_outbox(o: Opened) {
    let t = tenant("acme");
    o.store
        .insert_subscription(subscription(&t, "sub_gone", spec("gone")))
        .await
        .unwrap();
    let e = event_ids(2);
    let due = "2026-01-02T03:04:05Z";
    let rows: Vec<NewDelivery> = (0..2)
        .map(|i| {
            let mut d = new_delivery(&t, "sub_gone", e[i], i as i64 + 1, due);
            d.stream_id = None;
            d.stream_version = None;
            d
        })
        .collect();
    o.store.fan_out(moved("fan", 0, 2), rows).await.unwrap();
    let lease = std::time::Duration::from_secs(30);
    let now = at("2026-01-02T03:04:06Z");
    assert_eq!(
        o.store
            .claim_due_deliveries(now, lease, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    let publish = FinishOptions {
        publish_lifecycle: true,
        ..FinishOptions::default()
    };
    // Both answered 410: both die, the subscription is turned off once.
    for id in ["dlv_sub_gone-0001", "dlv_sub_gone-0002"] {
        let gone = attempt(1, "2026-01-02T03:04:06Z", Some(410), None);
        assert!(
            o.store
                .finish_delivery_with(id, gone, DeliveryOutcome::DisableSubscription, publish)
                .await
                .unwrap()
        );
    }
    let outbox = o.store.pending_lifecycle(10).await.unwrap();
    let kinds: Vec<(&str, Option<EventId>)> = outbox
        .iter()
        .map(|p| (p.record.kind.as_str(), p.record.event_id))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("delivery.exhausted", Some(e[0])),
            ("subscription.disabled", None),
            ("delivery.exhausted", Some(e[1])),
        ]
    );
    let exhausted: serde_json::Value = serde_json::from_str(&outbox[0].record.payload).unwrap();
    assert_eq!(exhausted["delivery_id"], "dlv_sub_gone-0001");
    assert_eq!(exhausted["subscription_id"], "sub_gone");
    assert_eq!(exhausted["event_id"], e[0].to_string());
    assert_eq!(exhausted["last_status"], 410);
    assert_eq!(exhausted["last_error_class"], "server_error");
    let disabled: serde_json::Value = serde_json::from_str(&outbox[1].record.payload).unwrap();
    assert_eq!(disabled["reason"], "gone");

    // A notice recorded directly, without publishing: audited only.
    let started = LifecycleRecord {
        tenant_id: "acme".into(),
        event_id: None,
        kind: LifecycleKind::ReplayStarted,
        payload: json!({"type": "event.replay.started", "replay_id": "rpl_1"}).to_string(),
    };
    o.store
        .record_lifecycle(vec![started], false, now)
        .await
        .unwrap();
    assert_eq!(o.store.pending_lifecycle(10).await.unwrap().len(), 3);

    let audit = o
        .store
        .query_audit(&AuditQuery {
            tenant_id: Some("acme".into()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let mut trail: Vec<(String, String)> = audit
        .records
        .iter()
        .map(|r| (r.operation.clone(), r.resource.clone()))
        .collect();
    trail.sort();
    assert_eq!(
        trail,
        vec![
            (
                "delivery.exhausted".into(),
                "/api/v1/dlq/dlv_sub_gone-0001".into()
            ),
            (
                "delivery.exhausted".into(),
                "/api/v1/dlq/dlv_sub_gone-0002".into()
            ),
            (
                "event.replay.started".into(),
                "/api/v1/events/replay/rpl_1".into()
            ),
            (
                "subscription.disabled".into(),
                "/api/v1/events/subscriptions/sub_gone".into()
            ),
        ]
    );
}
