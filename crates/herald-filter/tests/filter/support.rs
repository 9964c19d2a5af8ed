//! Building canonical events for the tests.

use herald_core::CanonicalEvent;
use herald_filter::{EventView, Filter};
use serde_json::{Value, json};

/// A canonical event with `overrides` merged over a minimal valid one.
pub fn event_with(overrides: Value) -> CanonicalEvent {
    let mut base = json!({
        "event_id": "0190f5b2-7c3a-7b4e-9a1d-0123456789ab",
        "tenant_id": "acme",
        "event_type": "order.created",
        "category": "business",
        "event_source": "backend",
        "timestamp": "2026-03-01T12:00:00Z",
        "processing_timestamp": "2026-03-01T12:00:01.250Z",
        "status": "pending",
    });
    let (Value::Object(base_fields), Value::Object(extra)) = (&mut base, overrides) else {
        panic!("objects expected");
    };
    base_fields.extend(extra);
    serde_json::from_value(base).expect("a valid canonical event")
}

/// An event whose `data` is `data`.
pub fn event_data(data: Value) -> CanonicalEvent {
    event_with(json!({ "data": data }))
}

/// Compiles `src` (which must compile) and evaluates it on `event`.
pub fn eval(src: &str, event: &CanonicalEvent) -> Result<bool, herald_filter::EvalError> {
    let filter = Filter::compile(src).unwrap_or_else(|e| panic!("`{src}` should compile: {e}"));
    filter.matches(&EventView::new(event))
}

/// Evaluates `src` on an event with `data`, expecting a bool.
pub fn on_data(src: &str, data: Value) -> bool {
    eval(src, &event_data(data)).unwrap_or_else(|e| panic!("`{src}` failed: {e}"))
}
