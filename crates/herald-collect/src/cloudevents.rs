//! CloudEvents 1.0 over HTTP, inbound: an event in structured mode (the
//! JSON format), batched mode (an array of them) or binary mode
//! (attributes in `ce-*` headers, the body is `data`), decoded into the
//! ingest request. Lossless: every attribute and extension is kept.
//!
//! | CloudEvents | ingest request |
//! |---|---|
//! | `type` | `event_type` |
//! | `source` + `id` | `idempotency_key` = `["<source>","<id>"]` (the spec's uniqueness rule: a repeat stores nothing new) |
//! | `time` | `timestamp` |
//! | `subject` | `object.resource_id` |
//! | `data` (JSON) | `data` |
//! | `data` (other media types, binary mode) | `data` as text when it is UTF-8, else `metadata.cloudevents.data_base64` |
//! | `data_base64` | `metadata.cloudevents.data_base64` |
//! | `traceparent` extension | `traceparent` (the trace correlation ids) |
//! | `category`, `eventcategory` extensions | `category`, `event_category` (else `category` `business`) |
//! | `specversion`, `id`, `source`, `datacontenttype`, `dataschema`, `subject`, `time`, other extensions | `metadata.cloudevents` (extensions under `extensions`) |
//!
//! `event_source` is `external_api`.

use serde_json::{Map, Value, json};

/// A problem with an event's CloudEvents attributes, at a JSON pointer
/// (`/id`; binary mode names the header as `/ce-id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeError {
    pub pointer: String,
    pub message: String,
}

const CONTEXT_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

/// One structured-mode event (a JSON object) as the ingest request; every
/// attribute problem at once. `prefix` is how a pointer is written (`""`
/// structured, `"ce-"` binary).
pub fn decode(event: Value, prefix: &str) -> Result<Value, Vec<AttributeError>> {
    let err = |name: &str, message: &str| AttributeError {
        pointer: format!("/{prefix}{name}"),
        message: message.into(),
    };
    let Value::Object(mut m) = event else {
        return Err(vec![err("", "expected a CloudEvent: a JSON object")]);
    };
    let mut errors = Vec::new();
    match m.get("specversion") {
        Some(Value::String(v)) if v == "1.0" => {}
        Some(_) => errors.push(err(
            "specversion",
            "only CloudEvents 1.0 is accepted: \"1.0\"",
        )),
        None => errors.push(err("specversion", "required: \"1.0\"")),
    }
    for name in ["id", "source", "type"] {
        match m.get(name) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(Value::String(_)) => errors.push(err(name, "must not be empty")),
            Some(_) => errors.push(err(name, "expected a string")),
            None => errors.push(err(name, "required")),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = Map::new();
    let mut ce = Map::new();
    let mut extensions = Map::new();
    let text = |m: &Map<String, Value>, k: &str| {
        m.get(k).and_then(Value::as_str).unwrap_or("").to_string()
    };
    out.insert("event_type".into(), json!(text(&m, "type")));
    out.insert(
        "idempotency_key".into(),
        json!(json!([text(&m, "source"), text(&m, "id")]).to_string()),
    );
    out.insert("event_source".into(), json!("external_api"));
    let data = m.shift_remove("data");
    let data_base64 = m.shift_remove("data_base64");
    for (key, value) in m {
        match key.as_str() {
            "time" => {
                out.insert("timestamp".into(), value.clone());
                ce.insert(key, value);
            }
            "subject" => {
                crate::object_at(&mut out, "object").insert("resource_id".into(), value.clone());
                ce.insert(key, value);
            }
            "traceparent" => {
                out.insert("traceparent".into(), value.clone());
                extensions.insert(key, value);
            }
            "category" => {
                out.insert("category".into(), value.clone());
                extensions.insert(key, value);
            }
            "eventcategory" => {
                out.insert("event_category".into(), value.clone());
                extensions.insert(key, value);
            }
            k if CONTEXT_ATTRIBUTES.contains(&k) => {
                ce.insert(key, value);
            }
            _ => {
                extensions.insert(key, value);
            }
        }
    }
    if !out.contains_key("category") && !out.contains_key("event_category") {
        out.insert("category".into(), json!("business"));
    }
    if let Some(d) = data {
        out.insert("data".into(), d);
    }
    if let Some(b) = data_base64 {
        ce.insert("data_base64".into(), b);
    }
    if !extensions.is_empty() {
        ce.insert("extensions".into(), Value::Object(extensions));
    }
    crate::object_at(&mut out, "metadata").insert("cloudevents".into(), Value::Object(ce));
    Ok(out.into())
}

/// A stored event (its canonical JSON) as a structured-mode CloudEvent,
/// outbound (a subscription with `payload_format: "cloudevents"`).
/// `data` is the event itself (`datacontenttype` `application/json`).
/// An event that arrived as a CloudEvent goes out with the `id`, `source`,
/// `subject`, `time`, `dataschema` and extensions it arrived with, so a
/// consumer deduplicates it as its producer meant; any other has:
///
/// | CloudEvents | from the event |
/// |---|---|
/// | `id` | `event_id` |
/// | `source` | `/herald/{tenant_id}/{event_source}` |
/// | `type` | `event_type` (always) |
/// | `time` | `timestamp` |
/// | `subject` | `object.resource_id`, else `stream_id` |
/// | `traceparent` | `correlation.trace_id` + `span_id` |
pub fn encode(event: &Value) -> Value {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut out = Map::new();
    out.insert("specversion".into(), json!("1.0"));
    let arrived = event["metadata"]["cloudevents"].as_object();
    let kept = |k: &str| arrived.and_then(|ce| ce.get(k)).cloned();
    out.insert(
        "id".into(),
        kept("id").unwrap_or_else(|| event["event_id"].clone()),
    );
    let source = kept("source").unwrap_or_else(|| {
        json!(format!(
            "/herald/{}/{}",
            text(&event["tenant_id"]).unwrap_or_default(),
            text(&event["event_source"]).unwrap_or_default()
        ))
    });
    out.insert("source".into(), source);
    out.insert("type".into(), event["event_type"].clone());
    out.insert("datacontenttype".into(), json!("application/json"));
    if let Some(t) = kept("time").or_else(|| text(&event["timestamp"]).map(Value::from)) {
        out.insert("time".into(), t);
    }
    let subject = kept("subject")
        .or_else(|| text(&event["object"]["resource_id"]).map(Value::from))
        .or_else(|| text(&event["stream_id"]).map(Value::from));
    if let Some(s) = subject {
        out.insert("subject".into(), s);
    }
    if let Some(s) = kept("dataschema") {
        out.insert("dataschema".into(), s);
    }
    if let Some(Value::Object(ext)) = kept("extensions") {
        for (k, v) in ext {
            out.entry(k).or_insert(v);
        }
    }
    if !out.contains_key("traceparent")
        && let (Some(trace), Some(span)) = (
            text(&event["correlation"]["trace_id"]),
            text(&event["correlation"]["span_id"]),
        )
    {
        out.insert("traceparent".into(), json!(format!("00-{trace}-{span}-01")));
    }
    out.insert("data".into(), event.clone());
    Value::Object(out)
}

/// A binary-mode event: the `ce-*` headers (name without the prefix,
/// lower-cased; values percent-decoded), the `Content-Type` and the body.
pub fn from_binary(
    headers: &[(String, String)],
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Value, Vec<AttributeError>> {
    let mut m = Map::new();
    for (name, value) in headers {
        m.insert(name.clone(), json!(percent_decode(value)));
    }
    if let Some(ct) = content_type {
        m.insert("datacontenttype".into(), json!(ct));
    }
    let json_media = content_type.is_none_or(|ct| {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        essence == "application/json" || essence.ends_with("+json") || essence == "text/json"
    });
    if !body.is_empty() {
        if json_media {
            match serde_json::from_slice::<Value>(body) {
                Ok(v) => {
                    m.insert("data".into(), v);
                }
                Err(e) => {
                    return Err(vec![AttributeError {
                        pointer: String::new(),
                        message: format!(
                            "the body's Content-Type is JSON but it does not parse: {e}"
                        ),
                    }]);
                }
            }
        } else {
            match std::str::from_utf8(body) {
                Ok(s) => {
                    m.insert("data".into(), json!(s));
                }
                Err(_) => {
                    m.insert("data_base64".into(), json!(base64(body)));
                }
            }
        }
    }
    decode(Value::Object(m), "ce-")
}

/// The HTTP binding's header value encoding: `%XX` escapes.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
        assert_eq!(percent_decode("a%20b%"), "a b%");
        assert_eq!(percent_decode("%E2%82%AC"), "€");
    }
}
