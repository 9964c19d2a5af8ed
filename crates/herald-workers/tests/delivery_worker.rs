//! The delivery worker on each backend, driven by calling its step under a
//! manual clock with a fake sender: signed sends, retries on the
//! subscription's schedule with a stable `webhook-id`, 410 disabling the
//! subscription, dead letters once the policy is spent, `Retry-After`
//! honoured, a deleted subscription ending its deliveries, and a redriven
//! dead letter retried on its schedule from the start.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use herald_core::{
    EmailHasher, EventId, EventProcessor, ManualClock, ProcessingContext, SequentialIds, TenantId,
    Timestamp,
};
use herald_store::{DeliveryState, NewEvent, Store, Subscription, SubscriptionSpec};
use herald_testkit::on_each_backend;
use herald_workers::delivery::breaker::BreakerConfig;
use herald_workers::delivery::signature::{WebhookSecret, verify};
use herald_workers::delivery::worker::{
    DeliveryWorker, OutgoingWebhook, SendResult, WebhookSender,
};
use herald_workers::fanout::{FAN_OUT_CURSOR, FanOut};
use herald_workers::follower::CommitLogFollower;
use serde_json::{Value, json};

use herald_testkit::{StoreUnderTest as Opened, open_store as open};

on_each_backend!(
    open = open;
    a_healthy_endpoint_gets_each_matching_event_once_signed,
    a_server_error_is_retried_on_schedule_with_the_same_webhook_id,
    gone_disables_the_subscription_and_stops_attempts,
    spent_retries_make_a_dead_letter,
    retry_after_is_honoured,
    a_deleted_subscription_ends_its_deliveries,
    an_open_breaker_puts_deliveries_back_unattempted,
    a_rotated_out_secret_still_signs_during_the_overlap,
    one_steps_sends_run_concurrently_up_to_the_bound,
    a_redriven_dead_letter_starts_its_schedule_over_as_the_same_delivery,
);

/// Records every request and answers from a script (then 204s).
#[derive(Debug, Default)]
struct FakeSender {
    sent: Mutex<Vec<OutgoingWebhook>>,
    answers: Mutex<VecDeque<SendResult>>,
}

impl FakeSender {
    fn answering(answers: Vec<SendResult>) -> Arc<FakeSender> {
        Arc::new(FakeSender {
            sent: Mutex::default(),
            answers: Mutex::new(answers.into()),
        })
    }

    fn sent(&self) -> Vec<OutgoingWebhook> {
        self.sent.lock().unwrap().clone()
    }
}

impl WebhookSender for FakeSender {
    fn send<'a>(
        &'a self,
        request: OutgoingWebhook,
    ) -> Pin<Box<dyn Future<Output = SendResult> + Send + 'a>> {
        self.sent.lock().unwrap().push(request);
        let answer = self.answers.lock().unwrap().pop_front();
        Box::pin(async move { answer.unwrap_or_else(|| status(204)) })
    }
}

fn status(code: u16) -> SendResult {
    SendResult::Response {
        status: code,
        retry_after: None,
        body: b"answer".to_vec(),
    }
}

fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

fn secret() -> WebhookSecret {
    WebhookSecret::generate([7; 32])
}

fn subscription(tenant: &TenantId, id: &str) -> Subscription {
    Subscription {
        subscription_id: id.into(),
        tenant_id: tenant.clone(),
        spec: SubscriptionSpec {
            subscriber_name: format!("name-of-{id}"),
            subscriber_type: "webhook".into(),
            event_types: vec!["order.*".into()],
            event_sources: vec![],
            event_categories: vec![],
            callback_url: "https://hooks.example.com/herald".into(),
            retry_policy: json!({"schedule": [10, 20]}),
            filter: None,
            ordering: "none".into(),
            payload_format: "json".into(),
            rate_limit: None,
            headers: BTreeMap::from([("x-team".to_string(), "billing".to_string())]),
            enabled: true,
        },
        secret: secret().expose(),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: at("2030-01-01T00:00:00Z"),
        updated_at: at("2030-01-01T00:00:00Z"),
    }
}

struct Setup {
    clock: Arc<ManualClock>,
    sender: Arc<FakeSender>,
    worker: DeliveryWorker,
    tenant: TenantId,
    events: Vec<EventId>,
}

/// One subscription `sub_a` of `order.*`, the events of `types` stored and
/// fanned out, and a worker with no jitter whose sender answers `answers`.
async fn setup(store: &Store, types: &[&str], answers: Vec<SendResult>) -> Setup {
    let tenant = TenantId::parse("acme").unwrap();
    store
        .insert_subscription(subscription(&tenant, "sub_a"))
        .await
        .unwrap();
    let ids = SequentialIds::default();
    let hasher = EmailHasher::new(b"k");
    let ctx = ProcessingContext {
        tenant_id: &tenant,
        email_hasher: &hasher,
        processing_timestamp: at("2030-01-02T03:04:00Z"),
        ids: &ids,
        traceparent: None,
    };
    let new: Vec<NewEvent> = types
        .iter()
        .map(|t| NewEvent {
            event: EventProcessor::default()
                .process_value(
                    json!({"event_type": t, "category": "business", "event_source": "backend",
                           "data": {"n": 1}}),
                    &ctx,
                )
                .unwrap()
                .event,
            expected_version: Default::default(),
        })
        .collect();
    let events = new.iter().map(|e| e.event.event_id).collect();
    store.append(new).await.unwrap();
    let clock = Arc::new(ManualClock::new(at("2030-01-02T03:05:00Z")));
    let follower = CommitLogFollower::new(store.clone(), FAN_OUT_CURSOR, 100);
    FanOut::new(clock.clone())
        .step(&follower, store)
        .await
        .unwrap();
    let sender = FakeSender::answering(answers);
    // The middle of the jitter range: no jitter.
    // One send at a time, so the scripted answers meet deliveries in order.
    let worker = DeliveryWorker::new(
        store.clone(),
        clock.clone(),
        sender.clone(),
        Box::new(|| 0.5),
    )
    .with_concurrency(1);
    Setup {
        clock,
        sender,
        worker,
        tenant,
        events,
    }
}

fn header<'a>(r: &'a OutgoingWebhook, name: &str) -> &'a str {
    r.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} header in {r:?}"))
}

fn verified(r: &OutgoingWebhook, now: Timestamp) -> Value {
    verify(
        header(r, "webhook-id"),
        header(r, "webhook-timestamp"),
        r.body.as_bytes(),
        header(r, "webhook-signature"),
        &[secret()],
        now.unix_micros() / 1_000_000,
        300,
    )
    .unwrap_or_else(|e| panic!("signature of {r:?}: {e}"));
    serde_json::from_str(&r.body).unwrap()
}

async fn state(store: &Store, s: &Setup, i: usize) -> (DeliveryState, i64) {
    let d = &store
        .deliveries_of_event(&s.tenant, s.events[i])
        .await
        .unwrap()[0];
    (d.state, d.attempts)
}

async fn a_healthy_endpoint_gets_each_matching_event_once_signed(o: Opened) {
    let store = &o.store;
    let s = setup(
        store,
        &["order.created", "user.login", "order.paid"],
        vec![],
    )
    .await;
    assert_eq!(s.worker.step().await.unwrap(), 2);
    let sent = s.sender.sent();
    assert_eq!(sent.len(), 2);
    let now = herald_core::Clock::now(&*s.clock);
    let mut seen = Vec::new();
    for r in &sent {
        assert_eq!(r.url, "https://hooks.example.com/herald");
        assert_eq!(header(r, "x-team"), "billing");
        let body = verified(r, now);
        seen.push(body["data"]["event_id"].as_str().unwrap().to_string());
    }
    seen.sort();
    let mut expected = vec![s.events[0].to_string(), s.events[2].to_string()];
    expected.sort();
    assert_eq!(seen, expected);
    assert_eq!(state(store, &s, 0).await, (DeliveryState::Delivered, 1));
    assert_eq!(state(store, &s, 2).await, (DeliveryState::Delivered, 1));
    s.clock.advance(time::Duration::seconds(3_600));
    assert_eq!(s.worker.step().await.unwrap(), 0, "nothing is sent twice");
    assert_eq!(s.sender.sent().len(), 2);
}

async fn a_server_error_is_retried_on_schedule_with_the_same_webhook_id(o: Opened) {
    let store = &o.store;
    let s = setup(store, &["order.created"], vec![status(500)]).await;
    assert_eq!(s.worker.step().await.unwrap(), 1);
    let d = &store
        .deliveries_of_event(&s.tenant, s.events[0])
        .await
        .unwrap()[0];
    assert_eq!(d.state, DeliveryState::Pending);
    assert_eq!(d.last_status, Some(500));
    assert_eq!(
        d.next_attempt_at,
        at("2030-01-02T03:05:10Z"),
        "the first wait, unjittered"
    );
    s.clock.advance(time::Duration::seconds(9));
    assert_eq!(s.worker.step().await.unwrap(), 0, "not before its time");
    s.clock.advance(time::Duration::seconds(1));
    assert_eq!(s.worker.step().await.unwrap(), 1);
    assert_eq!(state(store, &s, 0).await, (DeliveryState::Delivered, 2));
    let sent = s.sender.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        header(&sent[0], "webhook-id"),
        header(&sent[1], "webhook-id")
    );
    verified(&sent[1], herald_core::Clock::now(&*s.clock));
    let attempts = store.delivery_attempts(&d.delivery_id).await.unwrap();
    assert_eq!(
        attempts
            .iter()
            .map(|a| (a.attempt, a.status))
            .collect::<Vec<_>>(),
        vec![(1, Some(500)), (2, Some(204))]
    );
}

async fn gone_disables_the_subscription_and_stops_attempts(o: Opened) {
    let store = &o.store;
    let s = setup(store, &["order.created", "order.paid"], vec![status(410)]).await;
    assert_eq!(s.worker.step().await.unwrap(), 2);
    let sub = store
        .get_subscription(&s.tenant, "sub_a")
        .await
        .unwrap()
        .unwrap();
    assert!(!sub.spec.enabled);
    let states = [state(store, &s, 0).await.0, state(store, &s, 1).await.0];
    assert!(states.contains(&DeliveryState::Dead), "{states:?}");
    // The other delivery waits while the subscription is off; no send.
    s.clock.advance(time::Duration::seconds(3_600));
    s.worker.step().await.unwrap();
    assert_eq!(s.sender.sent().len(), 1, "only the first was sent");
    let waiting = [state(store, &s, 0).await, state(store, &s, 1).await];
    assert!(
        waiting.contains(&(DeliveryState::Pending, 0)),
        "the other waits unattempted: {waiting:?}"
    );
}

async fn spent_retries_make_a_dead_letter(o: Opened) {
    let store = &o.store;
    let s = setup(
        store,
        &["order.created"],
        vec![status(500), status(502), status(503)],
    )
    .await;
    for _ in 0..3 {
        assert_eq!(s.worker.step().await.unwrap(), 1);
        s.clock.advance(time::Duration::seconds(20));
    }
    assert_eq!(state(store, &s, 0).await, (DeliveryState::Dead, 3));
    s.clock.advance(time::Duration::seconds(3_600));
    assert_eq!(s.worker.step().await.unwrap(), 0);
    assert_eq!(s.sender.sent().len(), 3);
}

async fn retry_after_is_honoured(o: Opened) {
    let store = &o.store;
    let busy = SendResult::Response {
        status: 429,
        retry_after: Some("120".into()),
        body: vec![],
    };
    let s = setup(store, &["order.created"], vec![busy]).await;
    s.worker.step().await.unwrap();
    let d = &store
        .deliveries_of_event(&s.tenant, s.events[0])
        .await
        .unwrap()[0];
    assert_eq!(d.next_attempt_at, at("2030-01-02T03:07:00Z"));
    assert_eq!(d.last_error_class.as_deref(), Some("http_4xx"));
}

async fn a_deleted_subscription_ends_its_deliveries(o: Opened) {
    let store = &o.store;
    let s = setup(store, &["order.created"], vec![]).await;
    store.delete_subscription(&s.tenant, "sub_a").await.unwrap();
    assert_eq!(s.worker.step().await.unwrap(), 1);
    let d = &store
        .deliveries_of_event(&s.tenant, s.events[0])
        .await
        .unwrap()[0];
    assert_eq!(d.state, DeliveryState::Dead);
    assert_eq!(d.last_error_class.as_deref(), Some("subscription_deleted"));
    assert!(s.sender.sent().is_empty());
}

async fn an_open_breaker_puts_deliveries_back_unattempted(o: Opened) {
    let store = &o.store;
    let s = setup(
        store,
        &["order.a", "order.b", "order.c"],
        vec![status(500), status(500)],
    )
    .await;
    let worker = DeliveryWorker::new(
        store.clone(),
        s.clock.clone(),
        s.sender.clone(),
        Box::new(|| 0.5),
    )
    .with_concurrency(1)
    .with_breaker(BreakerConfig {
        failure_threshold: 2,
        cooldown: std::time::Duration::from_secs(60),
        ..BreakerConfig::default()
    });
    assert_eq!(worker.step().await.unwrap(), 3);
    assert_eq!(
        s.sender.sent().len(),
        2,
        "two failures open the breaker; the third is not sent"
    );
    let third = &store
        .deliveries_of_event(&s.tenant, s.events[2])
        .await
        .unwrap()[0];
    assert_eq!(third.state, DeliveryState::Pending);
    assert_eq!(third.attempts, 0, "a refusal is not an attempt");
    assert_eq!(
        third.next_attempt_at,
        at("2030-01-02T03:06:00Z"),
        "due when the breaker half-opens"
    );
    // After the cooldown one probe goes out; it succeeds and closes the breaker.
    s.clock.advance(time::Duration::seconds(60));
    worker.step().await.unwrap();
    assert_eq!(state(store, &s, 2).await, (DeliveryState::Delivered, 1));
}

async fn a_rotated_out_secret_still_signs_during_the_overlap(o: Opened) {
    let store = &o.store;
    let s = setup(store, &["order.created"], vec![]).await;
    let mut sub = store
        .get_subscription(&s.tenant, "sub_a")
        .await
        .unwrap()
        .unwrap();
    let new = WebhookSecret::generate([9; 32]);
    sub.previous_secret = Some(sub.secret.clone());
    sub.previous_secret_expires_at = Some(at("2030-01-03T00:00:00Z"));
    sub.secret = new.expose();
    store.delete_subscription(&s.tenant, "sub_a").await.unwrap();
    store.insert_subscription(sub).await.unwrap();
    s.worker.step().await.unwrap();
    let sent = &s.sender.sent()[0];
    let now = herald_core::Clock::now(&*s.clock);
    verified(sent, now);
    verify(
        header(sent, "webhook-id"),
        header(sent, "webhook-timestamp"),
        sent.body.as_bytes(),
        header(sent, "webhook-signature"),
        &[new],
        now.unix_micros() / 1_000_000,
        300,
    )
    .expect("the new secret signs too");
}

/// Answers only once `parties` requests are in flight together, and
/// counts the most it saw at once.
#[derive(Debug)]
struct GatheringSender {
    barrier: tokio::sync::Barrier,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl WebhookSender for GatheringSender {
    fn send<'a>(
        &'a self,
        _request: OutgoingWebhook,
    ) -> Pin<Box<dyn Future<Output = SendResult> + Send + 'a>> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            self.barrier.wait().await;
            self.in_flight.fetch_sub(1, SeqCst);
            status(204)
        })
    }
}

async fn one_steps_sends_run_concurrently_up_to_the_bound(o: Opened) {
    let store = &o.store;
    let s = setup(store, &["order.a", "order.b", "order.c", "order.d"], vec![]).await;
    let sender = Arc::new(GatheringSender {
        barrier: tokio::sync::Barrier::new(2),
        in_flight: Default::default(),
        most: Default::default(),
    });
    let worker = DeliveryWorker::new(
        store.clone(),
        s.clock.clone(),
        sender.clone(),
        Box::new(|| 0.5),
    )
    .with_concurrency(2);
    // Sent one at a time, the first send would wait for a partner for ever.
    let step = tokio::time::timeout(std::time::Duration::from_secs(10), worker.step());
    assert_eq!(step.await.expect("sends ran together").unwrap(), 4);
    assert_eq!(
        sender.most.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "never more than the bound"
    );
    for i in 0..4 {
        assert_eq!(state(store, &s, i).await, (DeliveryState::Delivered, 1));
    }
}

async fn a_redriven_dead_letter_starts_its_schedule_over_as_the_same_delivery(o: Opened) {
    let store = &o.store;
    let refusals = vec![status(500); 4];
    let s = setup(store, &["order.created"], refusals).await;
    // Waits of 10 s and 20 s: three attempts, then dead.
    for wait in [10, 20, 0] {
        assert_eq!(s.worker.step().await.unwrap(), 1);
        s.clock.advance(time::Duration::seconds(wait));
    }
    assert_eq!(state(store, &s, 0).await, (DeliveryState::Dead, 3));
    let id = store
        .deliveries_of_event(&s.tenant, s.events[0])
        .await
        .unwrap()[0]
        .delivery_id
        .clone();
    let now = herald_core::Clock::now(&*s.clock);
    let redriven = store
        .redrive_dead_letters(
            &s.tenant,
            &herald_store::DeadLetterSelection::Ids(vec![id.clone()]),
            now,
        )
        .await
        .unwrap();
    assert_eq!(redriven, 1);

    // Refused again: the schedule's first wait, not the end of it.
    assert_eq!(s.worker.step().await.unwrap(), 1);
    let d = &store
        .deliveries_of_event(&s.tenant, s.events[0])
        .await
        .unwrap()[0];
    assert_eq!((d.state, d.attempts), (DeliveryState::Pending, 4));
    assert_eq!(d.next_attempt_at, at("2030-01-02T03:05:40Z"), "now + 10 s");
    s.clock.advance(time::Duration::seconds(10));
    assert_eq!(s.worker.step().await.unwrap(), 1);
    assert_eq!(state(store, &s, 0).await, (DeliveryState::Delivered, 5));

    let sent = s.sender.sent();
    assert_eq!(sent.len(), 5);
    assert!(
        sent.iter()
            .all(|r| header(r, "webhook-id") == header(&sent[0], "webhook-id")),
        "one delivery, one webhook-id"
    );
    let numbers: Vec<i64> = store
        .delivery_attempts(&id)
        .await
        .unwrap()
        .iter()
        .map(|a| a.attempt)
        .collect();
    assert_eq!(numbers, vec![1, 2, 3, 4, 5]);
}
