//! A fixed amount of work for instruction-count profiling, which stays
//! repeatable on a busy machine where wall-clock benchmarks do not:
//!
//! ```text
//! cargo build --release -p herald-core --example profile_pipeline
//! valgrind --tool=callgrind target/release/examples/profile_pipeline 0
//! valgrind --tool=callgrind target/release/examples/profile_pipeline 10000
//! ```
//!
//! The difference of the two totals divided by 10 000 is the cost of one
//! event through `process_json` (decode → validate → normalise → redact),
//! setup excluded. The event is the one `benches/pipeline.rs` times.

use herald_core::{EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp};

/// The `herald` binary's allocator (glibc's malloc would be ~17% of the
/// pipeline's instructions here, a cost production does not pay).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/common/event.rs"]
mod event;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let tenant = TenantId::parse("acme").expect("tenant");
    let hasher = EmailHasher::for_tenant(b"bench-secret", &tenant);
    let processor = EventProcessor::default();
    let ctx = ProcessingContext {
        tenant_id: &tenant,
        email_hasher: &hasher,
        processing_timestamp: Timestamp::now(),
        ids: &herald_core::UuidV7Ids::default(),
        traceparent: None,
    };
    let mut kept = 0usize;
    for _ in 0..n {
        let p = processor
            .process_json(std::hint::black_box(event::EVENT.as_bytes()), &ctx)
            .expect("valid event");
        kept += p.warnings.len();
        std::hint::black_box(p);
    }
    std::hint::black_box(kept);
}
