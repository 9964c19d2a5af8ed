//! Cost of compiling a filter, and of matching ten subscriptions' selectors
//! against one event (one conversion of the event shared by all ten).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use herald_core::CanonicalEvent;
use herald_filter::{EventView, Filter, Selector};
use serde_json::json;

const FILTER: &str =
    "event.data.amount > 100 && event.actor.user_id != '' && 'vip' in event.data.tags";

fn event() -> CanonicalEvent {
    serde_json::from_value(json!({
        "event_id": "0190f5b2-7c3a-7b4e-9a1d-0123456789ab",
        "tenant_id": "acme",
        "event_type": "order.created",
        "category": "business",
        "event_category": "order",
        "event_source": "backend",
        "timestamp": "2026-03-01T12:00:00Z",
        "processing_timestamp": "2026-03-01T12:00:01Z",
        "actor": {"user_id": "u-1"},
        "object": {"order_id": "o-1"},
        "data": {"amount": 150.5, "currency": "EUR", "tags": ["vip", "eu"],
                 "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]},
        "status": "pending",
    }))
    .expect("a valid event")
}

/// Ten selectors as subscriptions would have them: patterns, sources,
/// categories, and CEL filters of which some pass and some do not.
fn selectors() -> Vec<Selector> {
    let bodies = [
        json!({"event_types": ["order.*"], "filter": "event.data.amount > 100"}),
        json!({"event_types": ["order.>"], "filter": "event.data.currency == 'EUR'"}),
        json!({"event_types": ["payment.*"], "filter": "event.data.amount > 100"}),
        json!({"event_sources": ["backend"], "filter": FILTER}),
        json!({"event_categories": ["order"], "filter": "event.data.items.exists(i, i.qty > 1)"}),
        json!({"event_types": ["order.created"]}),
        json!({"event_types": ["user.*"], "event_sources": ["frontend"]}),
        json!({"filter": "has(event.data.coupon) && event.data.coupon == 'X'"}),
        json!({"event_categories": ["business"], "filter": "event.object.order_id == 'o-1'"}),
        json!({"filter": "event.timestamp > timestamp('2026-01-01T00:00:00Z')"}),
    ];
    bodies
        .iter()
        .map(|b| Selector::from_json(b, "").expect("valid selector"))
        .collect()
}

fn bench(c: &mut Criterion) {
    c.bench_function("compile", |b| {
        b.iter(|| Filter::compile(black_box(FILTER)).expect("compiles"))
    });
    let event = event();
    let selectors = selectors();
    c.bench_function("match_10_selectors", |b| {
        b.iter(|| {
            let view = EventView::new(black_box(&event));
            selectors
                .iter()
                .filter(|s| s.matches(&view) == Ok(true))
                .count()
        })
    });
    // The evaluation alone: the view converted the event on first use.
    let filter = Filter::compile(FILTER).expect("compiles");
    let view = EventView::new(&event);
    c.bench_function("evaluate_one_filter", |b| {
        b.iter(|| filter.matches(black_box(&view)).expect("evaluates"))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
