//! The Segment decoder: golden pairs from the Tracking API's documented
//! examples, the clock-skew rule, and properties (never panics, never
//! drops a field).

mod support;

use herald_collect::ClientContext;
use herald_collect::segment::{Received, corrected, decode_message, split_batch};
use proptest::prelude::*;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const KEYS: &[&str] = &[
    "type",
    "event",
    "name",
    "category",
    "properties",
    "traits",
    "groupId",
    "previousId",
    "userId",
    "anonymousId",
    "messageId",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "context",
    "integrations",
    "channel",
    "version",
    "_metadata",
    "ip",
    "userAgent",
    "unknown_fields",
    "batch",
];

fn t(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap()
}

fn received<'a>(client: &'a ClientContext, route: Option<&'a str>) -> Received<'a> {
    Received {
        received_at: t("2026-12-07T12:00:10Z"),
        route_type: route,
        batch_sent_at: None,
        batch_context: None,
        batch_rest: None,
        from_browser: false,
        client,
        correct_clock: true,
        metadata_key: "segment",
    }
}

fn keep(s: &str) -> Option<String> {
    Some(s.to_string())
}

#[test]
fn the_documented_track_call_maps_as_the_table_says() {
    // The Tracking API documentation's track example.
    let sent = json!({
        "userId": "019mr8mf4r",
        "event": "Item Purchased",
        "properties": {"name": "Leap to Conclusions Mat", "revenue": 14.99},
        "context": {"ip": "24.5.68.47"},
        "timestamp": "2026-12-07T11:59:58Z",
        "sentAt": "2026-12-07T12:00:00Z",
        "messageId": "m-1",
        "integrations": {"All": true}
    });
    let client = ClientContext::default();
    let out = decode_message(sent, &received(&client, Some("track")), &keep);
    assert_eq!(
        out,
        json!({
            "user_id": "019mr8mf4r",
            "data": {"properties": {"name": "Leap to Conclusions Mat", "revenue": 14.99}},
            "idempotency_key": "m-1",
            "event_type": "Item Purchased",
            "event_category": "user_action",
            "timestamp": "2026-12-07T12:00:08Z",
            "event_source": "backend",
            "context": {"ip": "24.5.68.47"},
            "metadata": {"segment": {
                "integrations": {"All": true}, "type": "track",
                "timestamp": "2026-12-07T11:59:58Z", "sentAt": "2026-12-07T12:00:00Z",
                "receivedAt": "2026-12-07T12:00:10Z"
            }}
        })
    );
}

#[test]
fn identify_page_group_alias_and_unknown_types() {
    let client = ClientContext {
        ip: Some("203.0.113.0".into()),
        user_agent: Some("ua".into()),
        referer: None,
    };
    let r = received(&client, None);
    let out = decode_message(
        json!({"type": "identify", "userId": "u", "traits": {"email": "a@b.c"}}),
        &r,
        &keep,
    );
    assert_eq!(out["event_type"], "user_identified");
    assert_eq!(out["event_category"], "user_lifecycle");
    assert_eq!(out["data"]["traits"]["email"], "a@b.c");
    // The request's address and agent when the message reports none.
    assert_eq!(
        out["context"],
        json!({"ip": "203.0.113.0", "user_agent": "ua"})
    );
    let out = decode_message(
        json!({"type": "page", "name": "Home", "category": "Docs"}),
        &r,
        &keep,
    );
    assert_eq!(
        (&out["event_type"], &out["event_category"]),
        (&json!("page_viewed"), &json!("page_view"))
    );
    assert_eq!(out["data"], json!({"name": "Home", "category": "Docs"}));
    let out = decode_message(json!({"type": "group", "groupId": "g"}), &r, &keep);
    assert_eq!(out["data"]["group_id"], "g");
    let out = decode_message(json!({"type": "alias", "previousId": "p"}), &r, &keep);
    assert_eq!(out["data"]["previous_id"], "p");
    let out = decode_message(json!({"type": "custom"}), &r, &keep);
    assert_eq!(
        (&out["event_type"], &out["category"]),
        (&json!("segment.custom"), &json!("business"))
    );
    // A track without a name is left for the core to refuse (no event_type).
    let out = decode_message(json!({"type": "track"}), &r, &keep);
    assert!(out.get("event_type").is_none());
    // `event` on a non-track is kept, not obeyed.
    let out = decode_message(json!({"type": "page", "event": "x"}), &r, &keep);
    assert_eq!(out["metadata"]["unknown_fields"]["event"], "x");
}

#[test]
fn clock_skew_is_corrected_from_sent_at() {
    // A device 1 h slow: stamped at 11:00:00, sent at 11:00:05 by its clock,
    // received at 12:00:10 → it happened at 12:00:05.
    assert_eq!(
        corrected(
            t("2026-12-07T11:00:00Z"),
            t("2026-12-07T11:00:05Z"),
            t("2026-12-07T12:00:10Z")
        ),
        Some(t("2026-12-07T12:00:05Z"))
    );
    // originalTimestamp (analytics.js) wins over timestamp; the batch's
    // sentAt applies to messages without their own.
    let client = ClientContext::default();
    let mut r = received(&client, Some("track"));
    let sent_at = json!("2026-12-07T11:00:05Z");
    r.batch_sent_at = Some(&sent_at);
    let out = decode_message(
        json!({"event": "e", "originalTimestamp": "2026-12-07T11:00:00Z", "timestamp": "2000-01-01T00:00:00Z"}),
        &r,
        &keep,
    );
    assert_eq!(out["timestamp"], "2026-12-07T12:00:05Z");
    assert_eq!(
        out["metadata"]["segment"]["originalTimestamp"],
        "2026-12-07T11:00:00Z"
    );
    assert_eq!(out["metadata"]["segment"]["sentAt"], "2026-12-07T11:00:05Z");
    // Without sentAt: as sent.
    let out = decode_message(
        json!({"event": "e", "timestamp": "2026-01-01T00:00:00Z"}),
        &received(&client, Some("track")),
        &keep,
    );
    assert_eq!(out["timestamp"], "2026-01-01T00:00:00Z");
}

#[test]
fn batches() {
    let b = split_batch(json!({"batch": [{"type": "track"}], "sentAt": "s", "context": {"a": 1}, "writeKey": "k", "timestamp": "x"})).unwrap();
    assert_eq!(b.messages.len(), 1);
    assert_eq!(b.sent_at, Some(json!("s")));
    assert_eq!(b.context.unwrap()["a"], 1);
    assert_eq!(
        b.rest,
        json!({"timestamp": "x"}).as_object().unwrap().clone()
    );
    assert!(split_batch(json!({"batch": 1})).is_err());
    assert!(split_batch(json!({})).is_err());
    assert!(split_batch(json!("x")).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoding_never_panics_and_never_drops_a_field(
        message in support::object(KEYS),
        route in proptest::option::of(proptest::sample::select(vec!["track", "identify", "page", "screen", "group", "alias"])),
    ) {
        let client = ClientContext::default();
        let out = decode_message(message.clone(), &received(&client, route), &keep);
        // Every scalar sent is somewhere in the request, but a string
        // `type` and a track's string `event` (they became the type).
        let mut expected = message.clone();
        if let Some(m) = expected.as_object_mut() {
            let kind = m.get("type").and_then(Value::as_str).map(str::to_string).or(route.map(str::to_string));
            if m.get("type").is_some_and(Value::is_string) {
                m.remove("type");
            }
            if kind.as_deref() == Some("track") && m.get("event").is_some_and(Value::is_string) {
                m.remove("event");
            }
        }
        prop_assert_eq!(support::dropped(&expected, &out), Vec::<String>::new(), "{}", out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The RudderStack webhook's decoding (the same mapping, times kept
    /// as sent) never panics and never drops a field either.
    #[test]
    fn rudderstack_decoding_never_drops_a_field(message in support::object(KEYS)) {
        let client = ClientContext::default();
        let out = herald_collect::rudderstack::decode_event(message.clone(), t("2026-12-07T12:00:10Z"), &client, &keep);
        let mut expected = message.clone();
        if let Some(m) = expected.as_object_mut() {
            let track = m.get("type").is_some_and(|k| k == "track");
            if m.get("type").is_some_and(Value::is_string) {
                m.remove("type");
            }
            if track && m.get("event").is_some_and(Value::is_string) {
                m.remove("event");
            }
        }
        prop_assert_eq!(support::dropped(&expected, &out), Vec::<String>::new(), "{}", out);
        prop_assert_eq!(&out["event_source"], &json!("frontend"));
    }
}
