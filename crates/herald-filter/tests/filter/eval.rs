//! What filters mean on real events: numbers, strings, lists, nested data,
//! `has()`, timestamps and the canonical fields.

use herald_filter::{EvalError, EventView, Filter};
use serde_json::json;

use crate::support::{eval, event_data, event_with, on_data};

#[test]
fn ints_and_floats_compare_numerically_with_each_other() {
    assert!(on_data("event.data.amount > 100", json!({"amount": 150})));
    assert!(on_data("event.data.amount > 100", json!({"amount": 100.5})));
    assert!(!on_data("event.data.amount > 100", json!({"amount": 100})));
    assert!(!on_data(
        "event.data.amount > 100",
        json!({"amount": 99.99})
    ));
    assert!(on_data("event.data.amount > 99.5", json!({"amount": 100})));
    assert!(on_data(
        "event.data.amount == 100",
        json!({"amount": 100.0})
    ));
    assert!(on_data(
        "event.data.amount == 100.0",
        json!({"amount": 100})
    ));
    assert!(on_data(
        "event.data.amount >= 100 && event.data.amount <= 100",
        json!({"amount": 100})
    ));
    assert!(on_data("event.data.amount < 0", json!({"amount": -3})));
}

#[test]
fn integers_beyond_i64_still_compare() {
    assert!(on_data("event.data.n > 100", json!({"n": u64::MAX})));
    assert!(on_data(
        "event.data.n > 9223372036854775807",
        json!({"n": u64::MAX})
    ));
}

#[test]
fn strings_compare_and_have_the_standard_functions() {
    let data = json!({"plan": "pro", "email": "ana@example.com"});
    assert!(on_data("event.data.plan == 'pro'", data.clone()));
    assert!(!on_data("event.data.plan == 'free'", data.clone()));
    assert!(on_data("event.data.plan != 'free'", data.clone()));
    assert!(on_data(
        "event.data.email.endsWith('@example.com')",
        data.clone()
    ));
    assert!(on_data("event.data.email.startsWith('ana')", data.clone()));
    assert!(on_data("event.data.email.contains('@')", data.clone()));
    assert!(on_data(
        "event.data.plan < 'zzz' && event.data.plan > 'a'",
        data.clone()
    ));
    assert!(on_data("size(event.data.plan) == 3", data));
}

#[test]
fn lists_support_in_size_and_macros() {
    let data = json!({"tags": ["vip", "eu"], "items": [{"price": 5}, {"price": 50}]});
    assert!(on_data("'vip' in event.data.tags", data.clone()));
    assert!(!on_data("'us' in event.data.tags", data.clone()));
    assert!(on_data("event.data.tags[1] == 'eu'", data.clone()));
    assert!(on_data("size(event.data.items) == 2", data.clone()));
    assert!(on_data(
        "event.data.items.exists(i, i.price > 10)",
        data.clone()
    ));
    assert!(!on_data(
        "event.data.items.all(i, i.price > 10)",
        data.clone()
    ));
    assert!(on_data(
        "event.data.items.exists_one(i, i.price == 5)",
        data.clone()
    ));
    assert!(on_data(
        "event.data.items.filter(i, i.price > 1).size() == 2",
        data.clone()
    ));
    assert!(on_data(
        "event.data.plan in ['pro', 'team']",
        json!({"plan": "team"})
    ));
    assert!(on_data("event.data.n in [1, 2, 3]", json!({"n": 2})));
    assert!(!on_data("event.data.n in [1, 2, 3]", json!({"n": 4})));
}

#[test]
fn nested_data_is_reached_by_dots_and_brackets() {
    let data = json!({"customer": {"address": {"country": "NZ"}, "tier": 2}, "odd key": true});
    assert!(on_data(
        "event.data.customer.address.country == 'NZ'",
        data.clone()
    ));
    assert!(on_data("event.data['customer']['tier'] == 2", data.clone()));
    assert!(on_data("event.data['odd key']", data));
}

#[test]
fn has_tests_presence_and_a_missing_field_is_an_error_not_a_match() {
    let with = json!({"coupon": "X"});
    let without = json!({"other": 1});
    assert!(on_data("has(event.data.coupon)", with.clone()));
    assert!(!on_data("has(event.data.coupon)", without.clone()));
    assert!(on_data(
        "has(event.data.coupon) && event.data.coupon == 'X'",
        with
    ));
    assert!(!on_data(
        "has(event.data.coupon) && event.data.coupon == 'X'",
        without.clone()
    ));
    let err = eval("event.data.coupon == 'X'", &event_data(without)).unwrap_err();
    assert!(
        matches!(err, EvalError::Execution(ref m) if m.contains("coupon")),
        "{err:?}"
    );
}

#[test]
fn null_values_are_present_and_equal_null() {
    assert!(on_data(
        "has(event.data.x) && event.data.x == null",
        json!({"x": null})
    ));
    assert!(on_data("event.data.flag == true", json!({"flag": true})));
    assert!(on_data("event.data.flag", json!({"flag": true})));
    assert!(!on_data("!event.data.flag", json!({"flag": true})));
}

#[test]
fn comparing_a_string_with_a_number_is_an_error() {
    let err = eval(
        "event.data.amount > 100",
        &event_data(json!({"amount": "150"})),
    )
    .unwrap_err();
    assert!(matches!(err, EvalError::Execution(_)), "{err:?}");
    // A user can convert explicitly.
    assert!(on_data(
        "int(event.data.amount) > 100",
        json!({"amount": "150"})
    ));
    assert!(on_data(
        "double(event.data.amount) > 100.0",
        json!({"amount": "150.5"})
    ));
}

#[test]
fn a_result_that_is_not_a_bool_is_an_error() {
    let err = eval("event.data.x", &event_data(json!({"x": 3}))).unwrap_err();
    assert_eq!(err, EvalError::NotBoolean("an int".into()));
}

#[test]
fn canonical_fields_read_as_their_wire_values() {
    let event = event_with(json!({
        "event_type": "payment.failed",
        "category": "business",
        "event_category": "payment",
        "event_source": "frontend",
        "actor": {"user_id": "u1", "plan_tier": "gold"},
        "object": {"order_id": "o-9"},
        "outcome": {"status": "failure", "error_code": "card_declined"},
        "context": {"environment": "staging"},
        "metadata": {"k": "v"},
        "stream_id": "order:o-9",
        "stream_version": 3,
    }));
    for src in [
        "event.event_type == 'payment.failed'",
        "event.event_type.startsWith('payment.')",
        "event.tenant_id == 'acme'",
        "event.category == 'business'",
        "event.event_category == 'payment'",
        "event.event_source == 'frontend'",
        "event.actor.user_id != '' && event.actor.plan_tier == 'gold'",
        "event.object.order_id == 'o-9'",
        "event.outcome.status == 'failure' && event.outcome.error_code == 'card_declined'",
        "event.context.environment == 'staging'",
        "event.metadata.k == 'v'",
        "event.stream_id == 'order:o-9' && event.stream_version == 3",
        "event.status == 'pending'",
        "event.event_id == '0190f5b2-7c3a-7b4e-9a1d-0123456789ab'",
        "!has(event.idempotency_key)",
        "!has(event.actor.email_hash)",
    ] {
        assert_eq!(eval(src, &event), Ok(true), "{src}");
    }
    // An absent optional field is absent, not null.
    let plain = event_with(json!({}));
    assert_eq!(eval("has(event.event_category)", &plain), Ok(false));
    assert!(eval("event.event_category == 'payment'", &plain).is_err());
}

#[test]
fn timestamps_compare_as_instants() {
    let event = event_with(json!({"timestamp": "2026-03-01T14:00:00+02:00"}));
    for (src, expected) in [
        ("event.timestamp == timestamp('2026-03-01T12:00:00Z')", true),
        (
            "event.timestamp > timestamp('2026-03-01T11:59:59.999Z')",
            true,
        ),
        (
            "event.timestamp < timestamp('2026-03-01T12:00:00.001Z')",
            true,
        ),
        ("event.timestamp > timestamp('2026-03-01T12:00:00Z')", false),
        (
            "event.processing_timestamp - event.timestamp > duration('1s')",
            true,
        ),
        (
            "event.processing_timestamp - event.timestamp < duration('2s')",
            true,
        ),
        ("event.timestamp.getFullYear() == 2026", true),
    ] {
        assert_eq!(eval(src, &event), Ok(expected), "{src}");
    }
    // Timestamps inside data are strings; `timestamp()` parses them.
    assert!(on_data(
        "timestamp(event.data.due) < timestamp('2027-01-01T00:00:00Z')",
        json!({"due": "2026-12-31T23:59:59Z"})
    ));
}

#[test]
fn one_view_serves_many_filters() {
    let event = event_data(json!({"amount": 120, "plan": "pro"}));
    let view = EventView::new(&event);
    let filters: Vec<Filter> = [
        "event.data.amount > 100",
        "event.data.plan == 'pro'",
        "event.data.amount > 500",
    ]
    .iter()
    .map(|s| Filter::compile(s).unwrap())
    .collect();
    let results: Vec<bool> = filters.iter().map(|f| f.matches(&view).unwrap()).collect();
    assert_eq!(results, [true, true, false]);
    // A clone shares the program and still evaluates.
    assert_eq!(filters[0].clone().matches(&view), Ok(true));
}

#[test]
fn strings_match_regular_expressions() {
    let data = json!({"email": "ana@example.com"});
    assert!(on_data(
        r"event.data.email.matches('^[a-z]+@example\\.com$')",
        data.clone()
    ));
    assert!(!on_data("event.data.email.matches('^bob@')", data.clone()));
    assert!(on_data(
        "matches(event.data.email, 'example')",
        data.clone()
    ));
    // A pattern that does not compile fails the evaluation, not the process.
    assert!(eval("event.data.email.matches('(')", &event_data(data)).is_err());
}

#[test]
fn a_filter_with_a_bound_variable_reads_it_beside_the_event() {
    use herald_filter::{Binding, FilterError};
    let src = "event.data.order_id == wait.context.order_id";
    // Without the extra name, `wait` is an unknown variable.
    assert!(matches!(
        Filter::compile(src),
        Err(FilterError::UnknownVariable { ref name, .. }) if name == "wait"
    ));
    let filter = Filter::compile_with(src, &["wait"]).unwrap();
    let event = event_data(json!({"order_id": "o-1"}));
    let view = EventView::new(&event);
    let same = Binding::json("wait", &json!({"context": {"order_id": "o-1"}}));
    let other = Binding::json("wait", &json!({"context": {"order_id": "o-2"}}));
    assert_eq!(filter.matches_with(&view, &same), Ok(true));
    assert_eq!(filter.matches_with(&view, &other), Ok(false));
    // A missing context field is an evaluation error: no match.
    let empty = Binding::json("wait", &json!({"context": {}}));
    assert!(matches!(
        filter.matches_with(&view, &empty),
        Err(EvalError::Execution(_))
    ));
    // Other names are still refused, with their place.
    assert!(matches!(
        Filter::compile_with("workflow.x == 1", &["wait"]),
        Err(FilterError::UnknownVariable { ref name, line: 1, column: 1, .. }) if name == "workflow"
    ));
}
