//! The canonical event as a CEL value: exactly the JSON a subscriber
//! receives (absent optional fields are absent, so filters test them with
//! `has(…)`), except that `timestamp` and `processing_timestamp` are CEL
//! timestamps, so `event.timestamp > timestamp("2026-01-01T00:00:00Z")`
//! compares instants. JSON integers become CEL `int` (or `uint` above
//! `i64::MAX`), other numbers `double`; CEL compares the three numerically
//! with each other, so `event.data.amount > 100` holds for `150` and `150.5`.

use std::cell::OnceCell;
use std::collections::HashMap;

use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelTimestamp,
    CelUInt,
};
use cel::common::value::{CowVal, Val};
use cel::context::VariableResolver;
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
        self.value
            .get_or_init(|| EventVariable(event_to_val(self.event)))
    }
}

/// Builds the CEL value of `event`.
fn event_to_val(event: &CanonicalEvent) -> Box<dyn Val> {
    // Serialising through serde keeps the field set and wire names identical
    // to what subscribers receive; the canonical event always serialises.
    let json = serde_json::to_value(event).unwrap_or(Json::Null);
    let Json::Object(fields) = json else {
        return Box::new(CelNull);
    };
    let mut map: HashMap<CelMapKey<'static>, Box<dyn Val>> = HashMap::with_capacity(fields.len());
    for (name, field) in fields {
        let value = match name.as_str() {
            "timestamp" => timestamp_val(&event.timestamp),
            "processing_timestamp" => timestamp_val(&event.processing_timestamp),
            _ => json_to_val(field),
        };
        map.insert(CelMapKey::from(name), value);
    }
    Box::new(CelMap::from(map))
}

fn timestamp_val(ts: &Timestamp) -> Box<dyn Val> {
    let offset = FixedOffset::east_opt(ts.offset_seconds())
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset"));
    match DateTime::from_timestamp(ts.unix_seconds(), ts.nanos()) {
        Some(utc) => Box::new(CelTimestamp::from(utc.with_timezone(&offset))),
        // Outside chrono's range: keep the text so the field still exists.
        None => Box::new(CelString::from(ts.to_rfc3339())),
    }
}

/// JSON to CEL, moving the strings: objects become maps with string keys,
/// integers `int` (`uint` when above `i64::MAX`), other numbers `double`.
pub(crate) fn json_to_val(json: Json) -> Box<dyn Val> {
    match json {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Json::String(s) => Box::new(CelString::from(s)),
        Json::Array(items) => Box::new(CelList::from(
            items.into_iter().map(json_to_val).collect::<Vec<_>>(),
        )),
        Json::Object(fields) => Box::new(CelMap::from(
            fields
                .into_iter()
                .map(|(k, v)| (CelMapKey::from(k), json_to_val(v)))
                .collect::<HashMap<_, _>>(),
        )),
    }
}
