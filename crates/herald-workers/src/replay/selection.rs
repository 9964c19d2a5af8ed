//! What a replay selects, parsed from its request body: `event_ids` (at
//! most [`MAX_EVENT_IDS`]), or `stream_id`, or `start_time` and `end_time`
//! — exactly one of the three — plus the event query's filter fields,
//! parsed by the query's own parser ([`filter::parse_with`]). The API
//! parses a request with it and the worker parses the stored selection
//! again with it, so both read a selection alike.

use std::collections::BTreeSet;

use herald_core::EventId;
use herald_core::error::{ErrorKind, FieldError, pointer_push, type_name};
use herald_core::filter::{self, Parsed};
use herald_store::ReplayScan;
use serde_json::{Map, Value};

/// The most event ids one replay may name.
pub const MAX_EVENT_IDS: usize = 1000;

/// The selection keys that are not event filters.
const SELECTION_FIELDS: &str = "event_ids";

/// A selection and the body keys that are its own (the caller strips
/// these to store the selection as given).
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub scan: ReplayScan,
    /// The body's keys that belong to the selection, in body order.
    pub keys: Vec<String>,
}

impl Selection {
    /// The selection part of `body`: its own keys, as given.
    pub fn stored(&self, body: &Map<String, Value>) -> Value {
        Value::Object(
            self.keys
                .iter()
                .filter_map(|k| body.get(k).map(|v| (k.clone(), v.clone())))
                .collect(),
        )
    }
}

fn bad(field: &str, kind: ErrorKind, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
        kind,
    }
}

/// Parses a replay body: its selection keys here, every other key handed
/// to `other` (the caller's own, named in `other_fields` for the
/// unknown-key message). Records every problem in `errors`.
pub fn parse(
    body: &Map<String, Value>,
    other_fields: &str,
    mut other: impl FnMut(&str, &Value, &mut Vec<FieldError>) -> Parsed,
    errors: &mut Vec<FieldError>,
) -> Selection {
    let mut event_ids = Vec::new();
    let mut not_filters = BTreeSet::new();
    let filter = filter::parse_with(
        body,
        &format!("{SELECTION_FIELDS}, {other_fields}"),
        |key, v, errors| {
            not_filters.insert(key.to_string());
            if key == "event_ids" {
                event_ids = ids(v, errors);
                Parsed::Filter
            } else {
                other(key, v, errors)
            }
        },
        errors,
    );
    let given = |k: &str| body.get(k).is_some_and(|v| !v.is_null());
    let kinds: Vec<&str> = [
        ("event_ids", given("event_ids")),
        ("stream_id", given("stream_id")),
        ("start_time", given("start_time") || given("end_time")),
    ]
    .into_iter()
    .filter_map(|(k, g)| g.then_some(k))
    .collect();
    const ONE_OF: &str = "a replay selects events by exactly one of event_ids, stream_id, or start_time with end_time";
    match kinds.as_slice() {
        [] => {
            for f in ["/event_ids", "/stream_id", "/start_time", "/end_time"] {
                errors.push(bad(f, ErrorKind::Missing, ONE_OF));
            }
        }
        ["event_ids"] => {
            for key in body.keys().filter(|k| !not_filters.contains(*k)) {
                errors.push(bad(
                    &pointer_push("", key),
                    ErrorKind::InvalidValue,
                    "event_ids names the events; leave out the other filters",
                ));
            }
        }
        ["stream_id"] => {}
        ["start_time"] => {
            for f in ["start_time", "end_time"] {
                if !given(f) {
                    errors.push(bad(
                        &pointer_push("", f),
                        ErrorKind::Missing,
                        "a time range needs both start_time and end_time",
                    ));
                }
            }
        }
        several => {
            for k in several {
                errors.push(bad(&pointer_push("", k), ErrorKind::InvalidValue, ONE_OF));
            }
        }
    }
    let keys = body
        .keys()
        .filter(|k| *k == "event_ids" || !not_filters.contains(*k))
        .cloned()
        .collect();
    Selection {
        scan: ReplayScan {
            filter,
            event_ids,
            until_seq: None,
        },
        keys,
    }
}

/// `event_ids`: 1..=[`MAX_EVENT_IDS`] event ids.
fn ids(v: &Value, errors: &mut Vec<FieldError>) -> Vec<EventId> {
    let Value::Array(items) = v else {
        errors.push(bad(
            "/event_ids",
            ErrorKind::InvalidType,
            format!("expected a list of event ids, got {}", type_name(v)),
        ));
        return Vec::new();
    };
    if items.is_empty() || items.len() > MAX_EVENT_IDS {
        errors.push(bad(
            "/event_ids",
            ErrorKind::InvalidValue,
            format!(
                "expected 1 to {MAX_EVENT_IDS} event ids, got {}",
                items.len()
            ),
        ));
        return Vec::new();
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str().map(EventId::parse) {
            Some(Ok(id)) => out.push(id),
            _ => errors.push(bad(
                &format!("/event_ids/{i}"),
                ErrorKind::InvalidValue,
                format!("not an event id: {item}"),
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parsed(body: Value) -> (Selection, Vec<String>) {
        let Value::Object(body) = body else {
            panic!("an object")
        };
        let mut errors = Vec::new();
        let s = parse(
            &body,
            "dry_run",
            |k, _, _| {
                if k == "dry_run" {
                    Parsed::Filter
                } else {
                    Parsed::Unknown
                }
            },
            &mut errors,
        );
        (s, errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn each_selection_kind_parses_with_its_own_keys() {
        let id = "01890a5d-ac96-774b-bcce-b302099a8057";
        let (s, errors) = parsed(json!({"event_ids": [id], "dry_run": true}));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.scan.event_ids.len(), 1);
        assert_eq!(s.keys, ["event_ids"]);

        let (s, errors) = parsed(json!({"stream_id": "order-1"}));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.scan.filter.stream_id.as_deref(), Some("order-1"));

        let (s, errors) = parsed(json!({"start_time": "2026-01-01T00:00:00Z",
            "end_time": "2026-01-02T00:00:00Z", "event_type": "order.placed", "dry_run": false}));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(s.scan.filter.event_types, ["order.placed"]);
        assert_eq!(s.keys, ["start_time", "end_time", "event_type"]);
    }

    #[test]
    fn no_kind_several_kinds_and_half_a_range_are_named() {
        let (_, errors) = parsed(json!({"event_type": "x"}));
        assert_eq!(
            errors,
            ["/event_ids", "/stream_id", "/start_time", "/end_time"]
        );
        let (_, errors) = parsed(json!({"stream_id": "s", "start_time": "2026-01-01T00:00:00Z"}));
        assert_eq!(errors, ["/stream_id", "/start_time"]);
        let (_, errors) = parsed(json!({"start_time": "2026-01-01T00:00:00Z"}));
        assert_eq!(errors, ["/end_time"]);
    }

    #[test]
    fn bad_event_ids_and_filters_beside_them_are_named() {
        let (_, errors) = parsed(json!({"event_ids": ["nope"], "event_type": "x"}));
        assert_eq!(errors, ["/event_ids/0", "/event_type"]);
        let many: Vec<String> = (0..=MAX_EVENT_IDS)
            .map(|_| "01890a5d-ac96-774b-bcce-b302099a8057".to_string())
            .collect();
        let (_, errors) = parsed(json!({ "event_ids": many }));
        assert_eq!(errors, ["/event_ids"]);
        let (_, errors) = parsed(json!({"stream_id": "s", "colour": "red"}));
        assert_eq!(errors, ["/colour"]);
    }
}
