//! The canonical event as a CEL value: exactly the JSON a subscriber
//! receives (absent optional fields are absent, so filters test them with
//! `has(…)`), except that `timestamp` and `processing_timestamp` are CEL
//! timestamps, so `event.timestamp > timestamp("2026-01-01T00:00:00Z")`
//! compares instants. JSON integers become CEL `int` (or `uint` above
//! `i64::MAX`), other numbers `double`; CEL compares the three numerically
//! with each other, so `event.data.amount > 100` holds for `150` and `150.5`.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::Arc;

use cel::Value;
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
use cel::objects::{Key, Map};
use chrono::{DateTime, FixedOffset};
use herald_core::{CanonicalEvent, Timestamp};
use serde_json::Value as Json;

/// One event, converted to a CEL value at most once however many filters
/// look at it; every filter then reads that one value by reference.
#[derive(Debug)]
pub struct EventView<'a> {
    event: &'a CanonicalEvent,
    value: OnceCell<EventVariable>,
}

/// The event bound as the variable `event`, lent to each evaluation
/// without copying.
#[derive(Debug)]
pub struct EventVariable(Box<dyn Val>);

impl VariableResolver for EventVariable {
    fn resolve<'b>(&'b self, variable: &str) -> Option<CowVal<'b, 'b>> {
        (variable == "event").then(|| CowVal::Borrowed(self.0.as_ref()))
    }
}

impl<'a> EventView<'a> {
    pub fn new(event: &'a CanonicalEvent) -> Self {
        EventView {
            event,
            value: OnceCell::new(),
        }
    }

    pub fn event(&self) -> &'a CanonicalEvent {
        self.event
    }

    /// The event as the CEL variable `event`, built on first use.
    pub(crate) fn variable(&self) -> &EventVariable {
        self.value.get_or_init(|| {
            // Every value `event_to_value` builds has a `Val` form.
            let value = Box::<dyn Val>::try_from(event_to_value(self.event))
                .expect("JSON values convert to CEL values");
            EventVariable(value)
        })
    }
}

/// Builds the CEL value of `event`.
pub fn event_to_value(event: &CanonicalEvent) -> Value {
    // Serialising through serde keeps the field set and wire names identical
    // to what subscribers receive; the canonical event always serialises.
    let json = serde_json::to_value(event).unwrap_or(Json::Null);
    let Json::Object(fields) = json else {
        return Value::Null;
    };
    let mut map = HashMap::with_capacity(fields.len());
    for (name, field) in fields {
        let value = match name.as_str() {
            "timestamp" => timestamp_value(&event.timestamp),
            "processing_timestamp" => timestamp_value(&event.processing_timestamp),
            _ => json_to_value(field),
        };
        map.insert(Key::String(Arc::new(name)), value);
    }
    Value::Map(Map { map: Arc::new(map) })
}

fn timestamp_value(ts: &Timestamp) -> Value {
    let offset = FixedOffset::east_opt(ts.offset_seconds())
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    match DateTime::from_timestamp(ts.unix_seconds(), ts.nanos()) {
        Some(utc) => Value::Timestamp(utc.with_timezone(&offset)),
        // Outside chrono's range: keep the text so the field still exists.
        None => Value::String(Arc::new(ts.to_rfc3339())),
    }
}

/// JSON to CEL: objects become maps with string keys, integers `int`
/// (`uint` when above `i64::MAX`), other numbers `double`.
pub fn json_to_value(json: Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::String(Arc::new(s)),
        Json::Array(items) => Value::List(Arc::new(items.into_iter().map(json_to_value).collect())),
        Json::Object(fields) => {
            let map: HashMap<Key, Value> = fields
                .into_iter()
                .map(|(k, v)| (Key::String(Arc::new(k)), json_to_value(v)))
                .collect();
            Value::Map(Map { map: Arc::new(map) })
        }
    }
}
