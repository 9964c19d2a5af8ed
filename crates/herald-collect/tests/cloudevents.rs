//! The CloudEvents decoder: the JSON format's example as a golden pair,
//! binary mode, and properties (never panics; an accepted event never
//! loses a field; every attribute problem is named).

mod support;

use herald_collect::cloudevents::{decode, encode, from_binary};
use proptest::prelude::*;
use serde_json::json;

const KEYS: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
    "traceparent",
    "category",
    "eventcategory",
    "ext1",
    "metadata",
];

#[test]
fn the_json_format_example_maps_as_the_table_says() {
    let out = decode(
        json!({
            "specversion": "1.0", "type": "com.example.someevent", "source": "/mycontext",
            "subject": "larger-context", "id": "A234-1234-1234", "time": "2018-04-05T17:31:00Z",
            "comexampleextension1": "value", "datacontenttype": "application/json",
            "data": {"appinfoA": "abc"}
        }),
        "",
    )
    .unwrap();
    assert_eq!(
        out,
        json!({
            "event_type": "com.example.someevent",
            "idempotency_key": "[\"/mycontext\",\"A234-1234-1234\"]",
            "event_source": "external_api",
            "object": {"resource_id": "larger-context"},
            "timestamp": "2018-04-05T17:31:00Z",
            "category": "business",
            "data": {"appinfoA": "abc"},
            "metadata": {"cloudevents": {
                "specversion": "1.0", "type": "com.example.someevent", "source": "/mycontext",
                "subject": "larger-context", "id": "A234-1234-1234", "time": "2018-04-05T17:31:00Z",
                "datacontenttype": "application/json",
                "extensions": {"comexampleextension1": "value"}
            }}
        })
    );
}

#[test]
fn outbound_an_inbound_cloudevent_keeps_its_attributes_and_data_is_the_event() {
    let request = decode(
        json!({
            "specversion": "1.0", "type": "com.example.someevent", "source": "/mycontext",
            "subject": "larger-context", "id": "A234-1234-1234", "time": "2018-04-05T17:31:00Z",
            "comexampleextension1": "value", "dataschema": "https://example.com/s.json",
            "data": {"appinfoA": "abc"}
        }),
        "",
    )
    .unwrap();
    // The stored event: the request's fields plus what storage adds.
    let mut event = request.clone();
    event["event_id"] = json!("0197a0a0-0000-7000-8000-000000000001");
    event["tenant_id"] = json!("acme");
    let out = encode(&event);
    assert_eq!(
        out,
        json!({
            "specversion": "1.0", "id": "A234-1234-1234", "source": "/mycontext",
            "type": "com.example.someevent", "datacontenttype": "application/json",
            "time": "2018-04-05T17:31:00Z", "subject": "larger-context",
            "dataschema": "https://example.com/s.json", "comexampleextension1": "value",
            "data": event,
        })
    );
    // Decoding it again gives the same request, data aside (now the event).
    let mut again = decode(out, "").unwrap();
    assert_eq!(again["data"], event);
    again["data"] = request["data"].clone();
    again["metadata"]["cloudevents"]
        .as_object_mut()
        .unwrap()
        .remove("datacontenttype");
    assert_eq!(again, request);
}

#[test]
fn outbound_a_native_event_is_named_by_its_id_and_tenant() {
    let event = json!({
        "event_id": "0197a0a0-0000-7000-8000-000000000002", "tenant_id": "acme",
        "event_type": "order.created", "event_source": "backend", "timestamp": "2026-12-08T10:00:00Z",
        "object": {"resource_id": "o-1"},
        "correlation": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7"},
        "data": {"amount": 5},
    });
    let out = encode(&event);
    assert_eq!(out["id"], event["event_id"]);
    assert_eq!(out["source"], "/herald/acme/backend");
    assert_eq!(out["type"], "order.created");
    assert_eq!(out["time"], "2026-12-08T10:00:00Z");
    assert_eq!(out["subject"], "o-1");
    assert_eq!(
        out["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert_eq!(out["data"], event);
}

#[test]
fn binary_mode_and_data_encodings() {
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let base = [
        ("specversion", "1.0"),
        ("id", "1"),
        ("source", "/s"),
        ("type", "t"),
    ];
    let out = from_binary(&h(&base), Some("application/octet-stream"), &[0xff, 0x00]).unwrap();
    assert_eq!(out["metadata"]["cloudevents"]["data_base64"], "/wA=");
    assert!(out.get("data").is_none());
    let out = from_binary(&h(&base), Some("text/plain"), b"hi").unwrap();
    assert_eq!(out["data"], "hi");
    let out = from_binary(&h(&base), None, br#"{"a":1}"#).unwrap();
    assert_eq!(out["data"], json!({"a": 1}));
    let errors = from_binary(&h(&base), Some("application/json"), b"{nope").unwrap_err();
    assert_eq!(errors[0].pointer, "");
    let errors = from_binary(&h(&[("specversion", "1.0")]), None, b"").unwrap_err();
    let pointers: Vec<_> = errors.iter().map(|e| e.pointer.as_str()).collect();
    assert_eq!(pointers, ["/ce-id", "/ce-source", "/ce-type"]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoding_never_panics_and_never_drops_a_field(
        mut event in support::object(KEYS),
        valid in any::<bool>(),
    ) {
        if valid {
            let m = event.as_object_mut().unwrap();
            m.insert("specversion".into(), json!("1.0"));
            for k in ["id", "source", "type"] {
                m.insert(k.into(), json!(format!("{k}-x")));
            }
        }
        match decode(event.clone(), "") {
            Ok(out) => {
                prop_assert_eq!(support::dropped(&event, &out), Vec::<String>::new(), "{}", out);
                prop_assert_eq!(&out["event_source"], &json!("external_api"));
            }
            Err(errors) => {
                prop_assert!(!valid && !errors.is_empty());
                prop_assert!(errors.iter().all(|e| ["/specversion", "/id", "/source", "/type"].contains(&e.pointer.as_str())));
            }
        }
    }
}
