//! The filter parser: what each filter becomes, and that every bad field is
//! named by its own pointer (table tests and a property over mixes of good
//! and bad fields).

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

fn fields_of(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn every_filter_lands_in_its_typed_field() {
    let f = EventFilter::from_json(&json!({
        "event_type": "order.created",
        "event_types": ["a", "b"],
        "event_source": "backend",
        "event_category": ["order"],
        "category": "business",
        "statuses": ["pending", "processed"],
        "start_time": "2025-01-01T00:00:00Z",
        "end_time": "2025-02-01T00:00:00+01:00",
        "trace_id": "t1",
        "user_id": 42,
        "actor": {"email_hash": "h", "role": "admin", "order_id": "not-a-key-here"},
        "object": {"order_id": "o1", "kind": "box"},
        "context": {"environment": "prod", "service": "api", "region": "eu"},
        "outcome": {"status": "failure", "reason": "timeout"},
        "stream_id": "order:1",
        "q": "hello world",
    }))
    .unwrap();
    assert_eq!(f.event_types, ["order.created", "a", "b"]);
    assert_eq!(f.event_sources, [EventSource::parse("backend").unwrap()]);
    assert_eq!(f.event_categories, [EventCategory::parse("order").unwrap()]);
    assert_eq!(f.categories, [Category::Business]);
    assert_eq!(f.statuses, [EventStatus::Pending, EventStatus::Processed]);
    assert!(f.start_time.is_some() && f.end_time.is_some());
    assert_eq!(
        f.keys,
        [
            (CorrelationKey::TraceId, "t1".to_string()),
            (CorrelationKey::UserId, "42".to_string()),
            (CorrelationKey::EmailHash, "h".to_string()),
            (CorrelationKey::OrderId, "o1".to_string()),
        ]
    );
    let field = |part, key: &str, value: &str| FieldFilter {
        part,
        key: key.into(),
        value: value.into(),
    };
    assert_eq!(
        f.fields,
        [
            field(EventPart::Actor, "role", "admin"),
            // A correlation key outside its own part is an ordinary field.
            field(EventPart::Actor, "order_id", "not-a-key-here"),
            field(EventPart::Object, "kind", "box"),
            field(EventPart::Context, "region", "eu"),
            field(EventPart::Outcome, "reason", "timeout"),
        ]
    );
    assert_eq!(f.outcome_status, OutcomeStatus::parse("failure"));
    assert_eq!(f.environment.as_deref(), Some("prod"));
    assert_eq!(f.service.as_deref(), Some("api"));
    assert_eq!(f.stream_id.as_deref(), Some("order:1"));
    assert_eq!(f.text.as_deref(), Some("hello world"));
}

#[test]
fn nulls_and_an_empty_object_filter_nothing() {
    assert_eq!(
        EventFilter::from_json(&json!({})).unwrap(),
        EventFilter::default()
    );
    assert_eq!(
        EventFilter::from_json(&json!({"event_type": null, "actor": null, "q": null})).unwrap(),
        EventFilter::default()
    );
}

#[test]
fn each_bad_field_is_named_with_its_message() {
    for (body, field, kind, message) in [
        (
            json!({"event_type": 5}),
            "/event_type",
            ErrorKind::InvalidType,
            "expected a string or an array of strings, got integer",
        ),
        (
            json!({"event_types": ["a", true]}),
            "/event_types/1",
            ErrorKind::InvalidType,
            "expected a string, got boolean",
        ),
        (
            json!({"category": "nope"}),
            "/category",
            ErrorKind::InvalidValue,
            "`nope` is not allowed; expected one of: business, system, delivery, security",
        ),
        (
            json!({"service": 1.5}),
            "/service",
            ErrorKind::InvalidType,
            "expected a string, got number",
        ),
        (
            json!({"actor": [1]}),
            "/actor",
            ErrorKind::InvalidType,
            "expected an object of key: value filters, got array",
        ),
        (
            json!({"actor": {"a/b": {}}}),
            "/actor/a~1b",
            ErrorKind::InvalidType,
            "expected a string, got object",
        ),
        (
            json!({"start_time": "2025-02-01T00:00:00Z", "end_time": "2025-01-01T00:00:00Z"}),
            "/start_time",
            ErrorKind::InvalidValue,
            "start_time is after end_time",
        ),
        (
            json!({"limit": 10}),
            "/limit",
            ErrorKind::InvalidValue,
            "unknown filter; known filters: user_id, event_type",
        ),
    ] {
        let errors = EventFilter::from_json(&body).unwrap_err();
        assert_eq!(errors.len(), 1, "{body}: {errors:?}");
        assert_eq!(errors[0].field, field, "{body}");
        assert_eq!(errors[0].kind, kind, "{body}");
        assert!(
            errors[0].message.starts_with(message),
            "{body}: {}",
            errors[0].message
        );
    }
    let errors = EventFilter::from_json(&json!({"outcome": {"status": "meh"}})).unwrap_err();
    assert_eq!(fields_of(&errors), ["/outcome/status"]);
    assert!(errors[0].message.starts_with("expected one of: "));
    let errors = EventFilter::from_json(&json!({"start_time": "yesterday"})).unwrap_err();
    assert_eq!(fields_of(&errors), ["/start_time"]);
    let errors = EventFilter::from_json(&json!([1])).unwrap_err();
    assert_eq!(fields_of(&errors), [""]);
    assert_eq!(
        errors[0].message,
        "expected an object of filters, got array"
    );
}

#[test]
fn a_caller_takes_its_own_keys_and_the_rest_are_unknown() {
    let body = json!({"limit": 5, "lmit": 5, "category": "x"});
    let mut errors = Vec::new();
    let mut limit = None;
    parse_with(
        body.as_object().unwrap(),
        "limit",
        |key, value, _| match key {
            "limit" => {
                limit = value.as_u64();
                Parsed::Filter
            }
            _ => Parsed::Unknown,
        },
        &mut errors,
    );
    assert_eq!(limit, Some(5));
    // In the body's key order.
    assert_eq!(fields_of(&errors), ["/lmit", "/category"]);
    assert!(errors[0].message.ends_with(", stream_id, q, limit"));
}

/// A filter's key, a value that parses, and values that do not, each with
/// the pointer its error names.
type Case = (&'static str, Value, Vec<(Value, &'static str)>);

fn cases() -> Vec<Case> {
    vec![
        (
            "event_type",
            json!("a.b"),
            vec![
                (json!(1), "/event_type"),
                (json!(["x", 2]), "/event_type/1"),
            ],
        ),
        (
            "event_sources",
            json!(["backend"]),
            vec![
                (json!("nowhere"), "/event_sources"),
                (json!({}), "/event_sources"),
            ],
        ),
        (
            "event_category",
            json!("order"),
            vec![(json!("nope"), "/event_category")],
        ),
        (
            "categories",
            json!(["system", "security"]),
            vec![(json!(["system", 3]), "/categories/1")],
        ),
        ("status", json!("failed"), vec![(json!("done"), "/status")]),
        (
            "end_time",
            json!("2030-01-01T00:00:00Z"),
            vec![(json!("soon"), "/end_time"), (json!(true), "/end_time")],
        ),
        (
            "outcome_status",
            json!("success"),
            vec![(json!("great"), "/outcome_status")],
        ),
        ("order_id", json!("o-1"), vec![(json!([1]), "/order_id")]),
        (
            "environment",
            json!("prod"),
            vec![(json!(0.5), "/environment")],
        ),
        ("stream_id", json!("s:1"), vec![(json!({}), "/stream_id")]),
        ("q", json!("words"), vec![(json!(false), "/q")]),
        (
            "actor",
            json!({"user_id": "u", "role": "r"}),
            vec![
                (json!("u"), "/actor"),
                (json!({"role": [1]}), "/actor/role"),
            ],
        ),
        (
            "outcome",
            json!({"status": "failure"}),
            vec![
                (json!({"status": "nope"}), "/outcome/status"),
                (json!({"reason": null, "code": {}}), "/outcome/code"),
            ],
        ),
        (
            "context",
            json!({"service": "api"}),
            vec![(json!({"service": 2.5}), "/context/service")],
        ),
        (
            "no_such_filter",
            json!(null),
            vec![(json!(1), "/no_such_filter")],
        ),
    ]
}

proptest! {
    /// Whatever mix of good and bad fields a body has, the parser names
    /// exactly the bad ones, each by its own pointer.
    #[test]
    fn the_parser_names_every_bad_field_and_only_those(
        picks in proptest::collection::vec((any::<bool>(), any::<bool>(), 0usize..2), 15)
    ) {
        let mut body = Map::new();
        let mut bad = BTreeSet::new();
        for ((key, good, bads), (include, pick_bad, which)) in cases().into_iter().zip(picks) {
            if !include {
                continue;
            }
            // The unknown key has no good value: it is always bad.
            if pick_bad || key == "no_such_filter" {
                let (value, pointer) = &bads[which % bads.len()];
                body.insert(key.to_string(), value.clone());
                bad.insert(pointer.to_string());
            } else {
                body.insert(key.to_string(), good);
            }
        }
        let named: BTreeSet<String> = match EventFilter::from_json(&Value::Object(body.clone())) {
            Ok(_) => BTreeSet::new(),
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        };
        prop_assert_eq!(named, bad, "{}", Value::Object(body));
    }
}
