//! The browser decoder: golden pairs of the documented mapping, and
//! properties (never panics, never drops a field).

mod support;

use herald_collect::ClientContext;
use herald_collect::frontend::{decode_event, split_batch, take_write_key};
use proptest::prelude::*;
use serde_json::{Value, json};

const KEYS: &[&str] = &[
    "event_type",
    "event_category",
    "category",
    "user_id",
    "anonymous_id",
    "anonymousId",
    "session_id",
    "sessionId",
    "page_url",
    "pageUrl",
    "timestamp",
    "data",
    "context",
    "metadata",
    "event_source",
    "idempotency_key",
    "tenant_id",
    "stream_id",
    "actor",
    "ip",
    "user_agent",
    "userAgent",
    "referer",
    "referrer",
    "unknown_fields",
    "client_reported",
];

fn captured() -> ClientContext {
    ClientContext {
        ip: Some("203.0.113.0".into()),
        user_agent: Some("Mozilla/5.0".into()),
        referer: Some("https://shop.example/cart".into()),
    }
}

#[test]
fn the_light_model_maps_as_documented() {
    let sent = json!({
        "event_type": "button_clicked", "event_category": "click", "user_id": "u1",
        "anonymous_id": "a1", "session_id": "s1", "page_url": "https://shop.example/p/1",
        "timestamp": "2026-01-02T03:04:05Z", "data": {"button": "buy"},
        "context": {"ip": "6.6.6.6", "locale": "de-DE"},
        "event_source": "backend", "stream_id": "order:1", "actor": {"role": "admin"}
    });
    let info = json!({"screen": "1920x1080", "locale": "en-US"});
    let out = decode_event(sent, info.as_object(), &captured());
    assert_eq!(
        out,
        json!({
            "event_type": "button_clicked", "event_category": "click", "user_id": "u1",
            "actor": {"anonymous_id": "a1"}, "object": {"session_id": "s1"},
            "timestamp": "2026-01-02T03:04:05Z", "data": {"button": "buy"},
            "event_source": "frontend",
            "context": {
                "screen": "1920x1080", "locale": "de-DE", "page_url": "https://shop.example/p/1",
                "ip": "203.0.113.0", "user_agent": "Mozilla/5.0", "referer": "https://shop.example/cart"
            },
            "metadata": {
                "client_reported": {"event_source": "backend", "ip": "6.6.6.6"},
                "unknown_fields": {"stream_id": "order:1", "actor": {"role": "admin"}}
            }
        })
    );
}

#[test]
fn without_a_category_the_event_is_business() {
    let out = decode_event(json!({"event_type": "x"}), None, &ClientContext::default());
    assert_eq!(
        out,
        json!({"event_type": "x", "event_source": "frontend", "category": "business"})
    );
    // Not an object: left for the core to refuse.
    assert_eq!(decode_event(json!([1]), None, &captured()), json!([1]));
}

#[test]
fn batches_and_write_keys() {
    let b = split_batch(
        json!({"events": [{"event_type": "a"}], "client_info": {"tz": "UTC"}, "writeKey": "wk"}),
    )
    .unwrap();
    assert_eq!(b.events, vec![json!({"event_type": "a"})]);
    assert_eq!(b.client_info.unwrap()["tz"], "UTC");
    assert_eq!(b.write_key.as_deref(), Some("wk"));
    let errors = split_batch(json!({"client_info": 1, "extra": true})).unwrap_err();
    let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(pointers, ["/events", "/client_info", "/extra"]);
    assert!(split_batch(json!("x")).is_err());
    assert_eq!(split_batch(json!([])).unwrap().events, Vec::<Value>::new());
    let mut body = json!({"event_type": "a", "writeKey": "wk"});
    assert_eq!(take_write_key(&mut body).as_deref(), Some("wk"));
    assert_eq!(body, json!({"event_type": "a"}));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoding_never_panics_and_never_drops_a_field(
        event in support::object(KEYS),
        info in support::object(KEYS),
        with_capture in any::<bool>(),
    ) {
        let client = if with_capture { captured() } else { ClientContext::default() };
        // Without client_info, every scalar sent is somewhere in the request.
        let out = decode_event(event.clone(), None, &client);
        let mut expected = event.clone();
        if let Some(m) = expected.as_object_mut() && m.get("event_source") == Some(&json!("frontend")) {
            m.remove("event_source");
        }
        prop_assert_eq!(support::dropped(&expected, &out), Vec::<String>::new(), "{}", out);
        // With it, the event's own fields all the same.
        let out = decode_event(event.clone(), info.as_object(), &client);
        prop_assert_eq!(support::dropped(&expected, &out), Vec::<String>::new(), "{}", out);
        prop_assert_eq!(&out["event_source"], &json!("frontend"));
        let _ = split_batch(json!({"events": [event], "client_info": info}));
    }
}
