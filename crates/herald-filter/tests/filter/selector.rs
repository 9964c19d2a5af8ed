//! Selectors: parsing from JSON with every bad field named, and matching
//! on types, sources, categories and the CEL filter.

use herald_core::ErrorKind;
use herald_filter::{EventView, Selector};
use serde_json::{Value, json};

use crate::support::event_with;

fn parse(body: Value) -> Selector {
    Selector::from_json(&body, "").unwrap_or_else(|e| panic!("{body} should parse: {e:?}"))
}

fn matches(selector: &Selector, event: Value) -> bool {
    let event = event_with(event);
    selector
        .matches(&EventView::new(&event))
        .expect("no evaluation error")
}

#[test]
fn an_empty_selector_matches_everything() {
    let s = parse(json!({}));
    assert!(matches(&s, json!({})));
    assert!(matches(
        &s,
        json!({"event_type": "user.signed_up", "event_source": "frontend"})
    ));
    assert_eq!(Selector::any(), s);
}

#[test]
fn event_types_match_exactly_or_by_pattern() {
    let s = parse(json!({"event_types": ["order.*", "payment.>", "user.signed_up"]}));
    for (event_type, expected) in [
        ("order.created", true),
        ("order.created.v2", false),
        ("order", false),
        ("payment.card.failed", true),
        ("payment.failed", true),
        ("payment", false),
        ("user.signed_up", true),
        ("user.signed_in", false),
    ] {
        assert_eq!(
            matches(&s, json!({"event_type": event_type})),
            expected,
            "{event_type}"
        );
    }
}

#[test]
fn sources_and_categories_narrow_the_match() {
    let s = parse(json!({"event_sources": ["frontend", "iot_device"]}));
    assert!(matches(&s, json!({"event_source": "frontend"})));
    assert!(!matches(&s, json!({"event_source": "backend"})));

    let by_event_category = parse(json!({"event_categories": ["payment"]}));
    assert!(matches(
        &by_event_category,
        json!({"event_category": "payment"})
    ));
    assert!(!matches(
        &by_event_category,
        json!({"event_category": "order"})
    ));
    assert!(!matches(&by_event_category, json!({})));

    let by_category = parse(json!({"event_categories": ["security"]}));
    assert!(matches(&by_category, json!({"category": "security"})));
    assert!(!matches(&by_category, json!({"category": "business"})));

    // `system` is a category: every system event, whatever its finer kind.
    let system = parse(json!({"event_categories": ["system"]}));
    assert!(matches(
        &system,
        json!({"category": "system", "event_category": "performance"})
    ));
    assert!(matches(
        &system,
        json!({"category": "system", "event_category": "system"})
    ));
    assert!(!matches(
        &system,
        json!({"category": "business", "event_category": "order"})
    ));
}

#[test]
fn every_part_must_hold_and_the_filter_runs_last() {
    let s = parse(json!({
        "event_types": ["order.*"],
        "event_sources": ["backend"],
        "filter": "event.data.amount > 100",
    }));
    assert!(matches(&s, json!({"data": {"amount": 150}})));
    assert!(!matches(&s, json!({"data": {"amount": 50}})));
    assert!(!matches(
        &s,
        json!({"event_source": "frontend", "data": {"amount": 150}})
    ));
    // The type check fails first, so the filter never sees an event without
    // `amount` and no evaluation error arises.
    let other = event_with(json!({"event_type": "user.created"}));
    assert_eq!(s.matches(&EventView::new(&other)), Ok(false));
    // When the filter does run on such an event, the error comes back.
    let missing = event_with(json!({"data": {}}));
    assert!(s.matches(&EventView::new(&missing)).is_err());
}

#[test]
fn every_bad_field_is_named_by_a_json_pointer() {
    let body = json!({
        "event_types": ["order.*", "order.>.x", 7, "ok.type"],
        "event_sources": ["backend", "mainframe"],
        "event_categories": "payment",
        "filter": "event.data.amount >",
        "unrelated": true,
    });
    let errors = Selector::from_json(&body, "/selector").unwrap_err();
    let fields: Vec<(&str, ErrorKind)> =
        errors.iter().map(|e| (e.field.as_str(), e.kind)).collect();
    assert_eq!(
        fields,
        [
            ("/selector/event_types/1", ErrorKind::InvalidValue),
            ("/selector/event_types/2", ErrorKind::InvalidType),
            ("/selector/event_sources/1", ErrorKind::InvalidValue),
            ("/selector/event_categories", ErrorKind::InvalidType),
            ("/selector/filter", ErrorKind::InvalidValue),
        ]
    );
    assert!(errors[2].message.contains("mainframe") && errors[2].message.contains("iot_device"));
    assert!(
        errors[4].message.contains("line 1, column"),
        "{}",
        errors[4].message
    );
}

#[test]
fn filter_must_be_a_string_and_lists_are_bounded() {
    let errors = Selector::from_json(&json!({"filter": true}), "").unwrap_err();
    assert_eq!(
        (errors[0].field.as_str(), errors[0].kind),
        ("/filter", ErrorKind::InvalidType)
    );
    let many: Vec<String> = (0..300).map(|i| format!("t.n{i}")).collect();
    let errors = Selector::from_json(&json!({"event_types": many}), "").unwrap_err();
    assert_eq!(
        (errors[0].field.as_str(), errors[0].kind),
        ("/event_types", ErrorKind::TooLarge)
    );
    let long = format!("event.data.a == '{}'", "x".repeat(5000));
    let errors = Selector::from_json(&json!({"filter": long}), "").unwrap_err();
    assert_eq!(
        (errors[0].field.as_str(), errors[0].kind),
        ("/filter", ErrorKind::TooLarge)
    );
    let errors = Selector::from_json(&json!([1]), "/x").unwrap_err();
    assert_eq!(errors[0].field, "/x");
}

#[test]
fn a_selector_round_trips_through_its_json() {
    let body = json!({
        "event_types": ["order.*", "user.created"],
        "event_sources": ["backend"],
        "event_categories": ["payment", "security"],
        "filter": "event.data.amount > 100",
    });
    let s = parse(body.clone());
    assert_eq!(s.to_json(), body);
    assert_eq!(serde_json::to_value(&s).unwrap(), body);
    assert_eq!(parse(s.to_json()), s);
}

#[test]
fn selectors_and_filters_can_be_shared_between_threads() {
    fn shared<T: Send + Sync + 'static>(_: &T) {}
    let s = parse(json!({"event_types": ["order.*"], "filter": "event.data.amount > 100"}));
    shared(&s);
    // And used from another thread, as a delivery worker would.
    let handle = std::thread::spawn(move || {
        let event = event_with(json!({"data": {"amount": 101}}));
        s.matches(&EventView::new(&event))
    });
    assert_eq!(handle.join().expect("no panic"), Ok(true));
}
