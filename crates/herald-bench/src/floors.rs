//! The machine's floors, measured in the same run as Herald: what HTTP alone
//! costs (a server that reads each body fully and answers 200) and what
//! durable storage alone costs (Herald's schema and row insert, one
//! transaction per batch, straight from this process).

use std::path::Path;
use std::time::{Duration, Instant};

use herald_core::{
    CanonicalEvent, EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp,
};
use herald_store::sqlite::floor;

/// Starts the HTTP floor on 127.0.0.1:0 and returns its base URL.
pub async fn start_http_floor() -> String {
    let app = axum::Router::new()
        .fallback(|body: axum::body::Bytes| async move {
            (axum::http::StatusCode::OK, body.len().to_string())
        })
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind http floor");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

/// Turns bodies into canonical events the way Herald's ingest does.
pub fn canonicalize(bodies: &[serde_json::Value]) -> Vec<CanonicalEvent> {
    let tenant = TenantId::parse("bench").expect("tenant id");
    let hasher = EmailHasher::new(b"bench");
    let processor = EventProcessor::default();
    let ctx = ProcessingContext {
        tenant_id: &tenant,
        email_hasher: &hasher,
        processing_timestamp: Timestamp::now(),
        ids: &herald_core::UuidV7Ids::default(),
        traceparent: None,
    };
    bodies
        .iter()
        .filter_map(|b| {
            processor
                .process_value(b.clone(), &ctx)
                .ok()
                .map(|p| p.event)
        })
        .collect()
}

/// Events per second for the core pipeline alone (decode, validate,
/// normalise, redact) on one core, from serialized bodies.
pub fn pipeline_floor(
    bodies: &[bytes::Bytes],
    min_time: Duration,
    processor: &EventProcessor,
) -> f64 {
    let tenant = TenantId::parse("bench").expect("tenant id");
    let hasher = EmailHasher::new(b"bench");
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < min_time {
        for b in bodies {
            let ctx = ProcessingContext {
                tenant_id: &tenant,
                email_hasher: &hasher,
                processing_timestamp: Timestamp::now(),
                ids: &herald_core::UuidV7Ids::default(),
                traceparent: None,
            };
            if processor.process_json(b, &ctx).is_ok() {
                n += 1;
            }
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// The pipeline a tenant with these definitions gets (as the server builds it).
pub fn processor_with(definitions: Vec<herald_registry::EventDefinition>) -> EventProcessor {
    let registry = herald_registry::Registry::build(
        TenantId::parse("bench").expect("tenant id"),
        definitions,
        std::sync::Arc::new(herald_registry::ValidatorCache::new()),
    );
    EventProcessor {
        vocabulary: std::sync::Arc::new(registry),
        ..EventProcessor::default()
    }
}

/// Events per second inserting `events` in transactions of `batch` into a
/// fresh database under `dir`, for at most `max_time`.
pub fn storage_floor(
    dir: &Path,
    events: &[CanonicalEvent],
    batch: usize,
    max_time: Duration,
) -> f64 {
    let mut conn = floor::open(&dir.join("floor.db"), true).expect("open floor db");
    // Fresh ids per insert so the same canonical rows can be reused.
    let mut rows: Vec<CanonicalEvent> = events.to_vec();
    let ids = herald_core::UuidV7Ids::default();
    let started = Instant::now();
    let mut n = 0usize;
    'outer: loop {
        for chunk in rows.chunks_mut(batch) {
            for e in chunk.iter_mut() {
                e.event_id = herald_core::IdSource::event_id(&ids, Timestamp::now());
            }
            floor::insert_batch(&mut conn, chunk).expect("floor insert");
            n += chunk.len();
            if started.elapsed() >= max_time {
                break 'outer;
            }
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Events per second writing `events` to PostgreSQL with Herald's schema and
/// indexes: binary `COPY` into a staging table, then one `INSERT ... SELECT`,
/// one transaction per `batch`, for at most `max_time`. The schema is
/// created fresh and dropped afterwards.
pub async fn pg_storage_floor(
    url: &str,
    events: &[CanonicalEvent],
    batch: usize,
    max_time: Duration,
) -> f64 {
    use herald_store::postgres::floor as pg;
    let schema = format!("bench_floor_{}", std::process::id());
    let mut client = pg::open(url, &schema, time::OffsetDateTime::now_utc())
        .await
        .expect("open postgres floor");
    let mut rows: Vec<CanonicalEvent> = events.to_vec();
    let ids = herald_core::UuidV7Ids::default();
    let started = Instant::now();
    let mut n = 0usize;
    'outer: loop {
        for chunk in rows.chunks_mut(batch) {
            for e in chunk.iter_mut() {
                e.event_id = herald_core::IdSource::event_id(&ids, Timestamp::now());
            }
            pg::insert_batch(&mut client, chunk)
                .await
                .expect("postgres floor insert");
            n += chunk.len();
            if started.elapsed() >= max_time {
                break 'outer;
            }
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    pg::drop_schema(&client, &schema).await;
    rate
}
