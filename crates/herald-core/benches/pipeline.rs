//! Micro-benchmarks of the core: the full decode → validate → normalise →
//! redact path for a typical ~600-byte event, and the JSON and protobuf
//! codecs on the canonical event it produces.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald_core::codec::{json, proto};
use herald_core::{EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp};

/// The `herald` binary's allocator (glibc's malloc would be ~17% of the
/// pipeline's instructions here, a cost production does not pay).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/event.rs"]
mod event;
use event::EVENT;

fn pipeline(c: &mut Criterion) {
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
    let event = processor
        .process_json(EVENT.as_bytes(), &ctx)
        .expect("valid event")
        .event;
    let json_bytes = json::encode(&event);
    let proto_bytes = proto::encode(&event);

    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("process_json ({} B event)", EVENT.len()), |b| {
        b.iter(|| {
            processor
                .process_json(std::hint::black_box(EVENT.as_bytes()), &ctx)
                .expect("valid")
        })
    });
    g.bench_function(format!("json encode ({} B)", json_bytes.len()), |b| {
        b.iter(|| json::encode(std::hint::black_box(&event)))
    });
    g.bench_function("json decode", |b| {
        b.iter(|| json::decode(std::hint::black_box(&json_bytes)).expect("decodes"))
    });
    g.bench_function(format!("protobuf encode ({} B)", proto_bytes.len()), |b| {
        b.iter(|| proto::encode(std::hint::black_box(&event)))
    });
    g.bench_function("protobuf decode", |b| {
        b.iter(|| proto::decode(std::hint::black_box(&proto_bytes)).expect("decodes"))
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
