//! The processing worker's fast path and the store upkeep driven the way the house rules
//! want background work tested: by calling `step()` directly, with a clock
//! the test holds, never by waiting for a loop.

use std::sync::Arc;

use herald_core::{
    Clock, EmailHasher, EventId, EventProcessor, EventStatus, ManualClock, ProcessingContext,
    SequentialIds, TenantId, Timestamp,
};
use herald_store::{LifecycleKind, NewEvent, Store};
use herald_testkit::PgSchema;
use herald_workers::delivery::http::HttpSender;
use herald_workers::delivery::network::AllowedNetworks;
use herald_workers::delivery::schedule::SeededJitter;
use herald_workers::processors::worker::ProcessingWorker;
use herald_workers::upkeep::Upkeep;

fn at(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

async fn append(store: &Store, n: usize, received: Timestamp) -> Vec<EventId> {
    let tenant = TenantId::parse("acme").unwrap();
    let hasher = EmailHasher::new(b"k");
    let ids = SequentialIds::default();
    let ctx = ProcessingContext {
        tenant_id: &tenant,
        email_hasher: &hasher,
        processing_timestamp: received,
        ids: &ids,
        traceparent: None,
    };
    let events: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent {
            event: EventProcessor::default()
                .process_value(
                    serde_json::json!({"event_type": "a.b", "category": "system", "data": {"i": i}}),
                    &ctx,
                )
                .unwrap()
                .event,
            expected_version: Default::default(),
        })
        .collect();
    let ids: Vec<EventId> = events.iter().map(|e| e.event.event_id).collect();
    store.append(events).await.unwrap();
    ids
}

#[tokio::test]
async fn without_processors_the_worker_completes_pending_events_at_its_clocks_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path(), Default::default()).unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let clock = Arc::new(ManualClock::new(at("2030-01-02T03:04:05Z")));
    let sender = HttpSender::new(AllowedNetworks::parse("").unwrap()).unwrap();
    let worker = ProcessingWorker::new(
        store.clone(),
        clock.clone(),
        Arc::new(sender),
        Box::new(SeededJitter::new(1)),
    )
    .with_batch(2)
    .publishing_lifecycle(true);

    let first = append(&store, 3, at("2030-01-02T03:04:00Z")).await;
    assert_eq!(worker.step().await.unwrap().completed, 2, "a batch of 2");
    assert_eq!(worker.step().await.unwrap().completed, 1);
    assert!(worker.step().await.unwrap().is_empty());
    for id in &first {
        let stored = store.get_event(&tenant, *id).await.unwrap().unwrap();
        assert_eq!(stored.event.status, EventStatus::Processed);
        assert_eq!(
            stored.processed_at,
            Some(clock.now()),
            "stamped by the clock"
        );
    }

    // The clock is read at each step, not once.
    let later = clock.advance(time::Duration::minutes(90));
    let second = append(&store, 1, at("2030-01-02T04:30:00Z")).await;
    assert_eq!(worker.step().await.unwrap().completed, 1);
    let stored = store.get_event(&tenant, second[0]).await.unwrap().unwrap();
    assert_eq!(stored.processed_at, Some(later));

    // Each completion queued its notification, and only one each.
    let outbox = store.pending_lifecycle(100).await.unwrap();
    let mut notified: Vec<EventId> = outbox.iter().filter_map(|p| p.record.event_id).collect();
    notified.sort();
    let mut all: Vec<EventId> = first.iter().chain(&second).copied().collect();
    all.sort();
    assert_eq!(notified, all);
    assert!(
        outbox
            .iter()
            .all(|p| p.record.kind == LifecycleKind::ProcessedSuccess)
    );
    store.close().await;
}

/// Whether the schema has the monthly partition `events_pYYYY_MM`.
async fn has_partition(schema: &PgSchema, name: &str) -> bool {
    schema
        .client()
        .await
        .query_opt(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&schema.name, &name],
        )
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn upkeep_creates_the_partitions_ahead_of_its_clock_on_postgres() {
    let Some(schema) = PgSchema::from_env() else {
        return;
    };
    let opened = at("2026-01-15T00:00:00Z");
    let store = Store::open_postgres(
        herald_store::postgres::PgOptions {
            schema: schema.name.clone(),
            ..herald_store::postgres::PgOptions::new(&schema.url)
        },
        opened.as_offset_date_time(),
    )
    .await
    .unwrap();
    // Opening placed the months around its own `now`, not the machine's.
    assert!(has_partition(&schema, "events_p2026_02").await);
    // Positive control: years later, the months are not there yet...
    assert!(!has_partition(&schema, "events_p2031_06").await);

    let clock = Arc::new(ManualClock::new(at("2031-05-15T12:00:00Z")));
    let upkeep = Upkeep {
        store: store.clone(),
        clock: clock.clone(),
    };
    upkeep.step().await.unwrap();
    // ...and one step with the clock there creates them.
    assert!(has_partition(&schema, "events_p2031_05").await);
    assert!(has_partition(&schema, "events_p2031_06").await);
    // A second step is harmless.
    upkeep.step().await.unwrap();
    store.close().await;
}
