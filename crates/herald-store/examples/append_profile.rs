//! Appends realistic events to a fresh embedded store the way the server's
//! group commit sees them (several concurrent requests per commit) and
//! reports events/s: run under `valgrind --tool=callgrind` to compare the
//! write path's instruction counts before and after a change.
//!
//! `cargo run --release -p herald-store --example append_profile -- [events] [requests_per_commit] [events_per_request]`

use herald_core::{EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp};
use herald_store::{NewEvent, Store, sqlite::SqliteOptions};
use serde_json::json;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let total = args.first().copied().unwrap_or(8000);
    let per_commit = args.get(1).copied().unwrap_or(4);
    let per_request = args.get(2).copied().unwrap_or(250);

    let tenant = TenantId::parse("bench").unwrap();
    let hasher = EmailHasher::new(b"profile");
    let processor = EventProcessor::default();
    let types = [
        ("checkout_started", "business"),
        ("request_received", "system"),
        ("db_error", "system"),
        ("deploy_completed", "delivery"),
        ("permission_denied", "security"),
    ];
    let events: Vec<NewEvent> = (0..total)
        .map(|i| {
            let (t, c) = types[i % types.len()];
            let body = json!({
                "event_type": t, "category": c, "user_id": format!("user_{}", i % 997),
                "object": {"order_id": format!("ord_{}", i % 3001), "session_id": format!("s_{}", i % 1511)},
                "correlation": {"trace_id": format!("{:032x}", i as u128 * 7919), "span_id": format!("{:016x}", i * 31)},
                "context": {"service": "checkout-api", "environment": "production", "endpoint": "/v1/cart"},
                "outcome": {"status": if i % 13 == 0 { "failure" } else { "success" }},
                "data": {"amount": i * 3, "currency": "EUR", "items": [{"sku": format!("sku-{}", i % 50), "qty": 2}],
                         "note": "customer asked for gift wrapping and express delivery to the office address"}
            });
            let ctx = ProcessingContext {
                tenant_id: &tenant,
                email_hasher: &hasher,
                processing_timestamp: Timestamp::now(),
                ids: &herald_core::UuidV7Ids::new(),
                traceparent: None,
            };
            let p = processor.process_value(body, &ctx).expect("valid event");
            NewEvent {
                event: p.event,
                expected_version: Default::default(),
            }
        })
        .collect();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(
        dir.path(),
        SqliteOptions {
            synchronous_full: false,
            ..SqliteOptions::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    rt.block_on(async {
        for round in events.chunks(per_commit * per_request) {
            let tasks: Vec<_> = round
                .chunks(per_request)
                .map(|req| {
                    let (store, req) = (store.clone(), req.to_vec());
                    tokio::spawn(async move { store.append(req).await.unwrap().len() })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
        store.close().await;
    });
    let secs = started.elapsed().as_secs_f64();
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{total} events, {per_commit} requests × {per_request} per commit: {:.0} events/s",
            total as f64 / secs
        );
    }
}
