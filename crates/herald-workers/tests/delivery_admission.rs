//! How the delivery worker keeps one endpoint's trouble its own, on each
//! backend, with a fake sender and a manual clock: an endpoint that hangs
//! holds only its concurrency budget while another endpoint's deliveries
//! all go out; a subscription's `rate_limit` spaces its deliveries out,
//! the ones over it put back unattempted until the limiter's next token;
//! and a subscription that only fails for too long is turned off.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use herald_core::{
    Clock, EmailHasher, EventProcessor, ManualClock, ProcessingContext, SequentialIds, TenantId,
    Timestamp,
};
use herald_store::{Delivery, DeliveryState, NewEvent, Store, Subscription, SubscriptionSpec};
use herald_testkit::{StoreUnderTest as Opened, on_each_backend, open_store as open, wait_until};
use herald_workers::delivery::breaker::BreakerConfig;
use herald_workers::delivery::signature::WebhookSecret;
use herald_workers::delivery::worker::{
    DeliveryWorker, OutgoingWebhook, SendResult, WebhookSender,
};
use herald_workers::fanout::{FAN_OUT_CURSOR, FanOut};
use herald_workers::follower::CommitLogFollower;
use serde_json::json;
use tokio::sync::{Semaphore, watch};

on_each_backend!(
    open = open;
    a_hanging_endpoint_holds_only_its_budget_while_another_gets_everything,
    a_rate_limit_spaces_deliveries_out_without_counting_attempts,
    a_subscription_failing_for_too_long_is_disabled_and_a_success_resets_the_run,
);

const HANGING: &str = "https://hanging.example.com/hook";
const HEALTHY: &str = "https://healthy.example.com/hook";

fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn subscription(tenant: &TenantId, id: &str, url: &str, rate_limit: Option<f64>) -> Subscription {
    Subscription {
        subscription_id: id.into(),
        tenant_id: tenant.clone(),
        spec: SubscriptionSpec {
            subscriber_name: format!("name-of-{id}"),
            subscriber_type: "webhook".into(),
            event_types: vec!["order.*".into()],
            event_sources: vec![],
            event_categories: vec![],
            callback_url: url.into(),
            retry_policy: json!({"schedule": [10, 20]}),
            filter: None,
            ordering: "none".into(),
            payload_format: "json".into(),
            rate_limit,
            headers: BTreeMap::new(),
            enabled: true,
        },
        secret: WebhookSecret::generate([7; 32]).expose(),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: at("2030-01-01T00:00:00Z"),
        updated_at: at("2030-01-01T00:00:00Z"),
    }
}

/// Stores `subscriptions` and `n` events of type `order.created`, fans
/// them out, and returns the clock the deliveries came due by.
async fn fanned_out(store: &Store, subscriptions: Vec<Subscription>, n: usize) -> Arc<ManualClock> {
    let tenant = TenantId::parse("acme").unwrap();
    for s in subscriptions {
        store.insert_subscription(s).await.unwrap();
    }
    let ids = SequentialIds::default();
    let hasher = EmailHasher::new(b"k");
    let ctx = ProcessingContext {
        tenant_id: &tenant,
        email_hasher: &hasher,
        processing_timestamp: at("2030-01-02T03:04:00Z"),
        ids: &ids,
        traceparent: None,
    };
    let events: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent {
            event: EventProcessor::default()
                .process_value(
                    json!({"event_type": "order.created", "category": "business",
                           "event_source": "backend", "data": {"i": i}}),
                    &ctx,
                )
                .unwrap()
                .event,
            expected_version: Default::default(),
        })
        .collect();
    store.append(events).await.unwrap();
    let clock = Arc::new(ManualClock::new(at("2030-01-02T03:05:00Z")));
    let follower = CommitLogFollower::new(store.clone(), FAN_OUT_CURSOR, 1000);
    FanOut::new(clock.clone())
        .step(&follower, store)
        .await
        .unwrap();
    clock
}

async fn deliveries(store: &Store, subscription: &str) -> Vec<Delivery> {
    store
        .deliveries_of_subscription(&TenantId::parse("acme").unwrap(), subscription, 1000, None)
        .await
        .unwrap()
        .deliveries
}

/// Answers the healthy endpoint at once; holds every request to the
/// hanging one until the test lets go, counting how many it holds.
#[derive(Debug)]
struct HangingSender {
    let_go: Semaphore,
    held: AtomicUsize,
    most_held: AtomicUsize,
    healthy: AtomicUsize,
}

impl WebhookSender for HangingSender {
    fn send<'a>(
        &'a self,
        request: OutgoingWebhook,
    ) -> Pin<Box<dyn Future<Output = SendResult> + Send + 'a>> {
        Box::pin(async move {
            if request.url == HANGING {
                let now = self.held.fetch_add(1, SeqCst) + 1;
                self.most_held.fetch_max(now, SeqCst);
                self.let_go.acquire().await.expect("open").forget();
                self.held.fetch_sub(1, SeqCst);
            } else {
                self.healthy.fetch_add(1, SeqCst);
            }
            SendResult::Response {
                status: 204,
                retry_after: None,
                body: vec![],
            }
        })
    }
}

async fn a_hanging_endpoint_holds_only_its_budget_while_another_gets_everything(o: Opened) {
    let store = &o.store;
    let tenant = TenantId::parse("acme").unwrap();
    let clock = fanned_out(
        store,
        vec![
            subscription(&tenant, "sub_hanging", HANGING, None),
            subscription(&tenant, "sub_healthy", HEALTHY, None),
        ],
        20,
    )
    .await;
    let sender = Arc::new(HangingSender {
        let_go: Semaphore::new(0),
        held: AtomicUsize::new(0),
        most_held: AtomicUsize::new(0),
        healthy: AtomicUsize::new(0),
    });
    let worker = DeliveryWorker::new(
        store.clone(),
        clock.clone(),
        sender.clone(),
        Box::new(|| 0.5),
    )
    .with_concurrency(6)
    .with_endpoint_concurrency(3)
    // A lease no wait below outlasts: the held requests stay claimed.
    .with_timeout(Duration::from_secs(3600));
    let (stop_tx, stop) = watch::channel(false);
    let wake = Arc::new(tokio::sync::Notify::new());
    let running = tokio::spawn(worker.run(wake, Duration::from_millis(20), stop));

    wait_until(
        "every delivery to the healthy endpoint is delivered",
        Duration::from_secs(20),
        || async {
            // Time passes, so a delivery put back while its endpoint was
            // busy comes due again.
            clock.advance(time::Duration::seconds(1));
            deliveries(store, "sub_healthy")
                .await
                .iter()
                .all(|d| d.state == DeliveryState::Delivered)
        },
    )
    .await;
    assert_eq!(sender.healthy.load(SeqCst), 20, "each sent once");
    // The hanging endpoint filled its budget (so more would have shown)
    // and never went past it.
    assert_eq!(sender.held.load(SeqCst), 3);
    assert_eq!(sender.most_held.load(SeqCst), 3);
    let hanging = deliveries(store, "sub_hanging").await;
    // The rest wait unattempted, due shortly.
    let now = clock.now();
    for d in hanging.iter().filter(|d| d.state == DeliveryState::Pending) {
        assert_eq!(d.attempts, 0, "{d:?}");
        assert!(
            d.next_attempt_at.unix_nanos() <= now.unix_nanos() + 1_000_000_000,
            "{d:?}"
        );
    }

    // Let the held requests answer; the worker finishes what it has in
    // flight before it stops.
    sender.let_go.add_permits(1000);
    stop_tx.send(true).unwrap();
    running.await.unwrap();
    let after = deliveries(store, "sub_hanging").await;
    assert!(
        after
            .iter()
            .filter(|d| d.state == DeliveryState::Delivered)
            .count()
            >= 3,
        "{after:?}"
    );
    assert!(
        after.iter().all(|d| d.state != DeliveryState::InFlight),
        "{after:?}"
    );
}

/// Answers 204 to everything (or `status`, when set) and counts the
/// requests.
#[derive(Debug, Default)]
struct CountingSender {
    sent: AtomicUsize,
    status: std::sync::Mutex<Option<u16>>,
}

impl WebhookSender for CountingSender {
    fn send<'a>(
        &'a self,
        _request: OutgoingWebhook,
    ) -> Pin<Box<dyn Future<Output = SendResult> + Send + 'a>> {
        self.sent.fetch_add(1, SeqCst);
        let status = self.status.lock().unwrap().unwrap_or(204);
        Box::pin(async move {
            SendResult::Response {
                status,
                retry_after: None,
                body: vec![],
            }
        })
    }
}

async fn a_rate_limit_spaces_deliveries_out_without_counting_attempts(o: Opened) {
    let store = &o.store;
    let tenant = TenantId::parse("acme").unwrap();
    // Two a second: a burst of two, then one every half second.
    let clock = fanned_out(
        store,
        vec![subscription(&tenant, "sub_limited", HEALTHY, Some(2.0))],
        5,
    )
    .await;
    let sender = Arc::new(CountingSender::default());
    let worker = DeliveryWorker::new(
        store.clone(),
        clock.clone(),
        sender.clone(),
        Box::new(|| 0.5),
    );
    assert_eq!(worker.step().await.unwrap(), 5);
    assert_eq!(sender.sent.load(SeqCst), 2, "the burst");
    let waiting: Vec<Delivery> = deliveries(store, "sub_limited")
        .await
        .into_iter()
        .filter(|d| d.state == DeliveryState::Pending)
        .collect();
    assert_eq!(waiting.len(), 3);
    for d in &waiting {
        assert_eq!(d.attempts, 0, "put back unattempted: {d:?}");
        assert_eq!(d.next_attempt_at, at("2030-01-02T03:05:00.5Z"), "{d:?}");
    }
    // Not before the next token.
    clock.advance(time::Duration::milliseconds(499));
    assert_eq!(worker.step().await.unwrap(), 0);
    // Then one per half second, however many are due.
    for (wait_ms, sent) in [(1, 3), (500, 4), (500, 5)] {
        clock.advance(time::Duration::milliseconds(wait_ms));
        worker.step().await.unwrap();
        assert_eq!(sender.sent.load(SeqCst), sent, "one per half second");
    }
    assert!(
        deliveries(store, "sub_limited")
            .await
            .iter()
            .all(|d| d.state == DeliveryState::Delivered && d.attempts == 1)
    );
}

async fn a_subscription_failing_for_too_long_is_disabled_and_a_success_resets_the_run(o: Opened) {
    let store = &o.store;
    let tenant = TenantId::parse("acme").unwrap();
    let mut sub = subscription(&tenant, "sub_failing", HEALTHY, None);
    // A retry every 100 s, more than the test needs.
    sub.spec.retry_policy = json!({"schedule": vec![100; 20]});
    let clock = fanned_out(store, vec![sub], 2).await;
    let sender = Arc::new(CountingSender::default());
    *sender.status.lock().unwrap() = Some(500);
    let worker = DeliveryWorker::new(
        store.clone(),
        clock.clone(),
        sender.clone(),
        Box::new(|| 0.5),
    )
    .disabling_after(Some(Duration::from_secs(600)))
    // A breaker that never opens: every retry below is attempted.
    .with_breaker(BreakerConfig {
        failure_threshold: 1000,
        ..BreakerConfig::default()
    });
    let enabled = || async {
        store
            .get_subscription(&tenant, "sub_failing")
            .await
            .unwrap()
            .unwrap()
            .spec
            .enabled
    };
    // Failing from 03:05:00; at 03:08:20 one answer succeeds, which ends
    // the run, and the next failure starts a new one at 03:10:00.
    assert_eq!(worker.step().await.unwrap(), 2);
    for _ in 0..2 {
        clock.advance(time::Duration::seconds(100));
        worker.step().await.unwrap();
    }
    clock.advance(time::Duration::seconds(100));
    *sender.status.lock().unwrap() = Some(204);
    worker.step().await.unwrap();
    *sender.status.lock().unwrap() = Some(500);
    assert!(enabled().await);
    let failing: Vec<Delivery> = deliveries(store, "sub_failing")
        .await
        .into_iter()
        .filter(|d| d.state == DeliveryState::Pending)
        .collect();
    assert!(failing.is_empty(), "both were delivered: {failing:?}");

    // A new event, failing from now on.
    let more = fanned_more(store, &clock).await;
    let started = clock.now();
    worker.step().await.unwrap();
    for _ in 0..5 {
        clock.advance(time::Duration::seconds(100));
        worker.step().await.unwrap();
        assert!(enabled().await, "the run is shorter than 600 s");
    }
    // 600 s after the run began, the next failure turns it off.
    clock.advance(time::Duration::seconds(100));
    worker.step().await.unwrap();
    assert!(!enabled().await, "failing for 600 s");
    let audit = store
        .query_audit(&herald_store::AuditQuery {
            tenant_id: Some("acme".into()),
            operation: Some("subscription.disabled".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.records.len(), 1, "{audit:?}");
    let detail: serde_json::Value =
        serde_json::from_str(audit.records[0].detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["reason"], "failing_too_long");
    assert_eq!(detail["failing_since"], started.to_string());
    // Its delivery is kept for when it is turned on again: pending, not dead.
    let kept = &store.deliveries_of_event(&tenant, more).await.unwrap()[0];
    assert_eq!(kept.state, DeliveryState::Pending, "{kept:?}");
    let sent = sender.sent.load(SeqCst);
    clock.advance(time::Duration::seconds(3600));
    worker.step().await.unwrap();
    assert_eq!(sender.sent.load(SeqCst), sent, "nothing is sent while off");
}

/// Stores one more `order.created` event and fans it out; its id.
async fn fanned_more(store: &Store, clock: &Arc<ManualClock>) -> herald_core::EventId {
    let tenant = TenantId::parse("acme").unwrap();
    let ids = SequentialIds::default();
    let hasher = EmailHasher::new(b"k");
    let ctx = ProcessingContext {
        tenant_id: &tenant,
        email_hasher: &hasher,
        processing_timestamp: clock.now(),
        ids: &ids,
        traceparent: None,
    };
    let event = EventProcessor::default()
        .process_value(
            json!({"event_type": "order.created", "category": "business",
                   "event_source": "backend", "data": {"more": true}}),
            &ctx,
        )
        .unwrap()
        .event;
    let id = event.event_id;
    store
        .append(vec![NewEvent {
            event,
            expected_version: Default::default(),
        }])
        .await
        .unwrap();
    let follower = CommitLogFollower::new(store.clone(), FAN_OUT_CURSOR, 1000);
    FanOut::new(clock.clone())
        .step(&follower, store)
        .await
        .unwrap();
    id
}
