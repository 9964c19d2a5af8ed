//! The processing worker driven step by step with a clock the test holds:
//! critical events are taken ahead of a backlog, and a failing event is
//! failed, retried on its schedule (not before), then dead.

use std::sync::Arc;

use herald_core::{
    EmailHasher, EventId, EventProcessor, EventStatus, ManualClock, ProcessingContext,
    SequentialIds, TenantId, Timestamp,
};
use herald_store::{DeadJobFilter, NewEvent, Processor, ProcessorSpec, Store};
use herald_workers::delivery::http::HttpSender;
use herald_workers::delivery::network::AllowedNetworks;
use herald_workers::delivery::schedule::SeededJitter;
use herald_workers::processors::worker::ProcessingWorker;
use serde_json::{Value, json};

fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

async fn append(store: &Store, ids: &SequentialIds, bodies: Vec<Value>) -> Vec<EventId> {
    let tenant = TenantId::parse("acme").unwrap();
    let hasher = EmailHasher::new(b"k");
    let ctx = ProcessingContext {
        tenant_id: &tenant,
        email_hasher: &hasher,
        processing_timestamp: at("2030-01-02T03:04:00Z"),
        ids,
        traceparent: None,
    };
    let events: Vec<NewEvent> = bodies
        .into_iter()
        .map(|b| NewEvent {
            event: EventProcessor::default()
                .process_value(b, &ctx)
                .unwrap()
                .event,
            expected_version: Default::default(),
        })
        .collect();
    let out = events.iter().map(|e| e.event.event_id).collect();
    store.append(events).await.unwrap();
    out
}

async fn processor(store: &Store, id: &str, mut spec: Value) {
    spec["enabled"] = json!(true);
    let spec: ProcessorSpec = serde_json::from_value(spec).unwrap();
    store
        .insert_processor(Processor {
            processor_id: id.into(),
            tenant_id: TenantId::parse("acme").unwrap(),
            spec,
            secret: None,
            created_at: at("2030-01-01T00:00:00Z"),
            updated_at: at("2030-01-01T00:00:00Z"),
        })
        .await
        .unwrap();
}

fn worker(store: &Store, clock: &Arc<ManualClock>) -> ProcessingWorker {
    let sender = HttpSender::new(AllowedNetworks::parse("").unwrap()).unwrap();
    ProcessingWorker::new(
        store.clone(),
        clock.clone(),
        Arc::new(sender),
        Box::new(SeededJitter::new(7)),
    )
}

async fn status(store: &Store, id: EventId) -> EventStatus {
    let tenant = TenantId::parse("acme").unwrap();
    store
        .get_event(&tenant, id)
        .await
        .unwrap()
        .unwrap()
        .event
        .status
}

#[tokio::test]
async fn a_critical_event_is_processed_ahead_of_a_backlog_of_page_views() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), Default::default()).unwrap();
    let clock = Arc::new(ManualClock::new(at("2030-01-02T03:04:05Z")));
    processor(&store, "prc_views", json!({"processor_name": "views", "processor_type": "enrich", "priority": 0,
        "filters": {"event_types": ["page.viewed"]}, "config": {"fields": {"n": "1"}}, "retry_policy": null})).await;
    processor(&store, "prc_sec", json!({"processor_name": "sec", "processor_type": "enrich", "priority": 0, "critical": true,
        "filters": {"event_categories": ["security"]}, "config": {"fields": {"n": "2"}}, "retry_policy": null})).await;
    let ids = SequentialIds::default();
    let views = append(
        &store,
        &ids,
        (0..40)
            .map(|i| json!({"event_type": "page.viewed", "category": "business", "data": {"i": i}}))
            .collect(),
    )
    .await;
    let security = append(
        &store,
        &ids,
        vec![json!({"event_type": "login.failed", "category": "security"})],
    )
    .await[0];

    // Everything queued first; then four jobs a step: the security event,
    // stored last, goes first.
    let intake = worker(&store, &clock).with_batch(500);
    assert_eq!(intake.intake_step().await.unwrap(), (0, 41));
    let w = worker(&store, &clock).with_concurrency(1).with_batch(4);
    assert_eq!(w.work_step().await.unwrap(), 4);
    assert_eq!(status(&store, security).await, EventStatus::Processed);
    let mut done = 0;
    for v in &views {
        if status(&store, *v).await == EventStatus::Processed {
            done += 1;
        }
    }
    assert_eq!(done, 3, "the three oldest page views after it");
    assert_eq!(status(&store, views[0]).await, EventStatus::Processed);
    assert_eq!(status(&store, views[39]).await, EventStatus::Processing);
    while !w.step().await.unwrap().is_empty() {}
    assert_eq!(status(&store, views[39]).await, EventStatus::Processed);
    assert_eq!(store.processing_backlog().await.unwrap(), 0);
    store.close().await;
}

#[tokio::test]
async fn a_failing_event_is_retried_on_its_schedule_then_dead() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), Default::default()).unwrap();
    let clock = Arc::new(ManualClock::new(at("2030-01-02T03:04:05Z")));
    processor(&store, "prc_strict", json!({"processor_name": "strict", "processor_type": "enrich", "priority": 0,
        "filters": {}, "config": {"fields": {"n": "event.data.missing + 1"}}, "retry_policy": {"schedule": [10]}})).await;
    let ids = SequentialIds::default();
    let id = append(
        &store,
        &ids,
        vec![json!({"event_type": "a.b", "category": "system", "data": {}})],
    )
    .await[0];
    let w = worker(&store, &clock);
    assert_eq!(w.step().await.unwrap().worked, 1);
    assert_eq!(status(&store, id).await, EventStatus::Failed);
    let results = store.processing_results(&[id]).await.unwrap();
    assert!(
        results[&id][0]
            .error
            .as_deref()
            .unwrap()
            .contains("field `n`"),
        "{results:?}"
    );

    // The retry is due 10 s ± 20 % later: not at 7 s, surely by 13 s.
    clock.advance(time::Duration::seconds(7));
    assert_eq!(w.step().await.unwrap().worked, 0, "not due yet");
    clock.advance(time::Duration::seconds(6));
    assert_eq!(w.step().await.unwrap().worked, 1, "the retry ran");
    let tenant = TenantId::parse("acme").unwrap();
    let dead = store
        .dead_processing_jobs(&tenant, &DeadJobFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(dead.len(), 1, "the schedule is spent");
    assert_eq!(dead[0].0.attempts, 2);
    assert_eq!(status(&store, id).await, EventStatus::Failed);
    clock.advance(time::Duration::hours(1));
    assert!(
        w.step().await.unwrap().is_empty(),
        "a dead job is not run again"
    );
    store.close().await;
}
