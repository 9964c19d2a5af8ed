//! The cost of schema validation at ingest: `EventProcessor::process_json`
//! of a typical ~600-byte event with the built-in vocabulary only, with a
//! registry that defines the type without a schema, and with a typical
//! schema (an object with 8 typed properties, 3 required). The
//! target is at most 1.3 × the cost without a schema.
//!
//! `cargo bench -p herald-registry --bench validation`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use herald_core::{EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp};
use herald_registry::{Registry, ValidatorCache, parse_input};
use serde_json::{Value, json};

fn event() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_type": "order.created",
        "category": "business",
        "event_source": "backend",
        "timestamp": "2025-12-30T10:00:00.123456Z",
        "actor": {"user_id": "user_12345", "role": "customer"},
        "object": {"order_id": "ord_0001234", "session_id": "sess_abcdef"},
        "correlation": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"},
        "context": {"environment": "production", "service": "checkout", "version": "1.4.2"},
        "data": {
            "order_id": "ord_0001234", "amount": 1999, "currency": "EUR", "items": 3,
            "coupon": "WINTER25", "express": false, "channel": "web", "weight_kg": 1.25
        },
        "metadata": {"ingest": "bench", "note": "a typical order event of about six hundred bytes, give or take a few"}
    }))
    .unwrap()
}

fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["order_id", "amount", "currency"],
        "properties": {
            "order_id": {"type": "string", "minLength": 1, "maxLength": 64},
            "amount": {"type": "integer", "minimum": 0},
            "currency": {"enum": ["EUR", "USD", "GBP"]},
            "items": {"type": "integer", "minimum": 1},
            "coupon": {"type": "string", "maxLength": 32},
            "express": {"type": "boolean"},
            "channel": {"type": "string", "enum": ["web", "app", "pos"]},
            "weight_kg": {"type": "number", "minimum": 0}
        }
    })
}

fn with_definition(schema: Option<Value>) -> EventProcessor {
    let mut body = json!({"event_type": "order.created", "category": "business"});
    if let Some(s) = schema {
        body["payload_schema"] = s;
    }
    let def =
        parse_input(&body, None)
            .unwrap()
            .into_definition("def_bench".into(), 1, Timestamp::now());
    let registry = Registry::build(
        TenantId::parse("bench").unwrap(),
        vec![def],
        Arc::new(ValidatorCache::new()),
    );
    EventProcessor {
        vocabulary: Arc::new(registry),
        ..EventProcessor::default()
    }
}

fn bench(c: &mut Criterion) {
    let bytes = event();
    eprintln!("event: {} bytes", bytes.len());
    let tenant = TenantId::parse("bench").unwrap();
    let hasher = EmailHasher::new(b"bench");
    let ctx = ProcessingContext {
        tenant_id: &tenant,
        email_hasher: &hasher,
        processing_timestamp: Timestamp::now(),
        ids: &herald_core::UuidV7Ids::new(),
        traceparent: None,
    };
    let cases = [
        ("builtin_vocabulary", EventProcessor::default()),
        ("definition_without_schema", with_definition(None)),
        ("definition_with_schema", with_definition(Some(schema()))),
    ];
    let mut group = c.benchmark_group("process_json");
    for (name, processor) in &cases {
        let ok = processor.process_json(&bytes, &ctx);
        assert!(ok.is_ok(), "{name}: {:?}", ok.err());
        group.bench_function(*name, |b| {
            b.iter(|| processor.process_json(black_box(&bytes), &ctx))
        });
    }
    group.finish();

    // The ratio, measured interleaved: on a shared machine, load drifts
    // between criterion's separate runs; alternating short rounds of both
    // and taking the median ratio cancels most of it.
    let (without, with) = (&cases[1].1, &cases[2].1);
    let round = |p: &EventProcessor| {
        let start = std::time::Instant::now();
        for _ in 0..2_000 {
            black_box(p.process_json(black_box(&bytes), &ctx).is_ok());
        }
        start.elapsed().as_nanos() as f64 / 2_000.0
    };
    let mut samples: Vec<(f64, f64)> = (0..101).map(|_| (round(without), round(with))).collect();
    samples.sort_by(|a, b| (a.1 / a.0).total_cmp(&(b.1 / b.0)));
    let (median_without, median_with) = samples[samples.len() / 2];
    let mut base: Vec<f64> = samples.iter().map(|s| s.0).collect();
    base.sort_by(f64::total_cmp);
    let mut checked: Vec<f64> = samples.iter().map(|s| s.1).collect();
    checked.sort_by(f64::total_cmp);
    eprintln!(
        "interleaved: without schema {:.0} ns/event, with schema {:.0} ns/event (medians); median ratio {:.3} (pair {:.0}/{:.0})",
        base[base.len() / 2],
        checked[checked.len() / 2],
        median_with / median_without,
        median_with,
        median_without
    );

    let validator = herald_registry::schema::compile(&schema()).unwrap();
    let data: Value = serde_json::from_slice::<Value>(&bytes).unwrap()["data"].clone();
    c.bench_function("schema_validate_only", |b| {
        b.iter(|| herald_registry::schema::validate(&validator, black_box(&data), "/data"))
    });
    c.bench_function("schema_compile", |b| {
        b.iter(|| herald_registry::schema::compile(black_box(&schema())))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
