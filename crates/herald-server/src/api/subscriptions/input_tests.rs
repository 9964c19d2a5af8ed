//! Unit tests of the subscription body checks.

use serde_json::json;

use super::*;

fn fields(body: Value) -> (Option<SubscriptionSpec>, Vec<FieldError>) {
    let (f, errors) = parse_fields(&body, SecretField::Allowed);
    (f.spec, errors)
}

#[test]
fn a_minimal_body_takes_every_default() {
    let (spec, errors) =
        fields(json!({"subscriber_name": "a", "callback_url": "https://example.com/h"}));
    assert!(errors.is_empty(), "{errors:?}");
    let spec = spec.unwrap();
    assert_eq!(spec.subscriber_type, "webhook");
    assert_eq!(spec.ordering, "none");
    assert!(spec.enabled);
    assert_eq!(spec.retry_policy, RetryPolicy::default().to_json());
    assert_eq!((spec.filter, spec.rate_limit), (None, None));
}

#[test]
fn every_bad_field_is_named_at_once() {
    let (spec, errors) = fields(json!({
        "subscriber_type": "email",
        "event_types": ["order.*", "order.>.x", 3],
        "event_sources": ["moon"],
        "event_categories": ["business", "payment", "weather"],
        "callback_url": "ftp://example.com",
        "webhook_secret": "nope",
        "retry_policy": {"schedule": [-1]},
        "filter": "",
        "ordering": "random",
        "rate_limit": 0,
        "headers": {"Connection": "close", "webhook-id": "x", "x-ok": 1},
        "enabled": "yes",
        "colour": "red",
    }));
    assert!(spec.is_none());
    let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort_unstable();
    fields.dedup();
    assert_eq!(
        fields,
        [
            "/callback_url",
            "/colour",
            "/enabled",
            "/event_categories/2",
            "/event_sources/0",
            "/event_types/1",
            "/event_types/2",
            "/filter",
            "/headers/Connection",
            "/headers/webhook-id",
            "/headers/x-ok",
            "/ordering",
            "/rate_limit",
            "/retry_policy/schedule/0",
            "/subscriber_name",
            "/subscriber_type",
            "/webhook_secret",
        ]
    );
}

#[test]
fn a_put_cannot_set_the_secret() {
    let body = json!({"subscriber_name": "a", "callback_url": "https://example.com/h",
        "webhook_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"});
    let (f, errors) = parse_fields(&body, SecretField::Refused);
    assert!(f.spec.is_some() && f.secret.is_none());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "/webhook_secret");
    let (f, errors) = parse_fields(&body, SecretField::Allowed);
    assert!(errors.is_empty() && f.secret.is_some());
}

#[test]
fn the_filter_must_compile_as_cel_over_the_event() {
    assert!(check_filter("event.data.amount > 100 && event.actor.user_id != \"\"").is_ok());
    assert!(check_filter(" ").is_err());
    let syntax = check_filter("event.data.amount >").unwrap_err();
    assert_eq!(syntax.field, "/filter");
    assert!(syntax.message.contains("line 1"), "{}", syntax.message);
    let unknown = check_filter("order.amount > 1").unwrap_err();
    assert!(unknown.message.contains("order"), "{}", unknown.message);
    let long = format!(
        "event.data.a == '{}'",
        "x".repeat(herald_filter::MAX_FILTER_LEN)
    );
    assert_eq!(check_filter(&long).unwrap_err().kind, ErrorKind::TooLarge);
}

#[test]
fn the_selector_fields_are_the_shared_selectors() {
    let body = json!({
        "subscriber_name": "a", "callback_url": "https://example.com/h",
        "event_types": ["order.*", "order.>.x"],
        "event_sources": ["backend", "nowhere"],
        "event_categories": ["business", "payment", "nothing"],
        "filter": "event.data.amount >"
    });
    let (_, errors) = parse_fields(&body, SecretField::Allowed);
    let mut fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "/event_categories/2",
            "/event_sources/1",
            "/event_types/1",
            "/filter"
        ]
    );
}

#[tokio::test]
async fn a_loopback_callback_is_refused_unless_its_range_is_allowed() {
    let body = json!({"subscriber_name": "a", "callback_url": "http://127.0.0.1:9/h"});
    let errors = parse(&body, SecretField::Allowed, &AllowedNetworks::default())
        .await
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, "/callback_url");
    assert!(
        errors[0].message.contains("delivery_allowed_networks"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0]
            .message
            .contains("HERALD_DELIVERY_ALLOWED_NETWORKS")
    );
    let allowed = AllowedNetworks::parse("127.0.0.0/8").unwrap();
    assert!(parse(&body, SecretField::Allowed, &allowed).await.is_ok());
}
