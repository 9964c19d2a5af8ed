//! The browser model of `POST /api/v1/events/frontend` and `/batch`: a
//! light event (`event_type` required; `event_category`, `user_id`,
//! `anonymous_id`, `session_id`, `page_url`, `timestamp`, `data`, optional)
//! and the batch `{"events": [...], "client_info": {...}}`, decoded into
//! the ingest request. A public key must not write what a backend writes,
//! so only the light model is mapped; every other key of the event is
//! kept under `metadata.unknown_fields`, never dropped and never obeyed.
//!
//! | received | ingest request |
//! |---|---|
//! | `event_type`, `event_category`, `category`, `timestamp`, `data`, `user_id` | the same |
//! | `idempotency_key` (`message_id`, `messageId`) | the same: a retry stores nothing new |
//! | `anonymous_id` (`anonymousId`) | `actor.anonymous_id` |
//! | `session_id` (`sessionId`) | `object.session_id` |
//! | `page_url` (`pageUrl`) | `context.page_url` |
//! | `context` (object) | `context`, under what the server captured |
//! | `metadata` (object) | `metadata` |
//! | the batch's `client_info` | `context`, under each event's own context |
//! | the server's captured IP, `User-Agent`, `Referer` | `context.ip`, `context.user_agent`, `context.referer`; what the body claimed for them is kept in `metadata.client_reported` |
//! | `event_source` | always `frontend`; a different claim is kept in `metadata.client_reported` |
//! | `tenant_id` | the same (a tenant other than the key's is refused) |
//! | `writeKey` | taken out: it named the key |
//! | anything else | `metadata.unknown_fields` |
//!
//! Without `event_category` or `category` the event is `business`.

use serde_json::{Map, Value};

use crate::{ClientContext, UNMAPPED_KEY, keep, object_at};

/// A problem with a batch's wrapper, at a JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapperError {
    pub pointer: String,
    pub message: String,
}

/// A batch taken apart.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub events: Vec<Value>,
    pub client_info: Option<Map<String, Value>>,
    /// The wrapper's `writeKey`, when the key came in the body.
    pub write_key: Option<String>,
}

/// Takes `writeKey` out of a body object (a browser snippet may name its
/// key there instead of the query).
pub fn take_write_key(body: &mut Value) -> Option<String> {
    match body.as_object_mut()?.shift_remove("writeKey")? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// `{"events": [...], "client_info": {...}, "writeKey": "..."}` or a bare
/// array of events; every problem of the wrapper at once.
pub fn split_batch(body: Value) -> Result<Batch, Vec<WrapperError>> {
    let err = |pointer: &str, message: &str| WrapperError {
        pointer: pointer.into(),
        message: message.into(),
    };
    let mut m = match body {
        Value::Array(events) => {
            return Ok(Batch {
                events,
                client_info: None,
                write_key: None,
            });
        }
        Value::Object(m) => m,
        _ => {
            return Err(vec![err(
                "",
                "expected {\"events\": [...], \"client_info\": {...}} or an array of events",
            )]);
        }
    };
    let mut errors = Vec::new();
    let write_key = match m.shift_remove("writeKey") {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            errors.push(err("/writeKey", "expected a string"));
            None
        }
    };
    let events = match m.shift_remove("events") {
        Some(Value::Array(a)) => a,
        None => {
            errors.push(err("/events", "required: the array of events"));
            Vec::new()
        }
        Some(_) => {
            errors.push(err("/events", "expected an array of events"));
            Vec::new()
        }
    };
    let client_info = match m.shift_remove("client_info") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => {
            errors.push(err("/client_info", "expected an object"));
            None
        }
    };
    for key in m.keys() {
        errors.push(err(
            &format!("/{}", key.replace('~', "~0").replace('/', "~1")),
            "unknown key: a batch is {\"events\": [...], \"client_info\": {...}}",
        ));
    }
    if errors.is_empty() {
        Ok(Batch {
            events,
            client_info,
            write_key,
        })
    } else {
        Err(errors)
    }
}

/// One browser event as the ingest request. A value that is not an object
/// is returned as it is, for the core to refuse.
pub fn decode_event(
    event: Value,
    client_info: Option<&Map<String, Value>>,
    client: &ClientContext,
) -> Value {
    let Value::Object(sent) = event else {
        return event;
    };
    let mut out = Map::new();
    let mut reported = Map::new();
    let mut context = client_info.cloned().unwrap_or_default();
    let mut unknown = Map::new();
    let mut metadata = None;
    let mut own_context: Vec<String> = vec![];
    for (key, value) in sent {
        match key.as_str() {
            "event_type" | "event_category" | "category" | "timestamp" | "data" | "user_id"
            | "idempotency_key" | "message_id" | "messageId" | "tenant_id" => {
                out.insert(key, value);
            }
            "anonymous_id" | "anonymousId" => {
                keep(object_at(&mut out, "actor"), "anonymous_id".into(), value);
            }
            "session_id" | "sessionId" => {
                keep(object_at(&mut out, "object"), "session_id".into(), value);
            }
            "page_url" | "pageUrl" => {
                if own_context.iter().any(|k| k == "page_url") {
                    keep(&mut context, "page_url".into(), value);
                } else {
                    own_context.push("page_url".into());
                    context.insert("page_url".into(), value);
                }
            }
            "context" => match value {
                Value::Object(c) => {
                    // The event's own context wins over the batch's client_info.
                    for (k, v) in c {
                        if own_context.contains(&k) {
                            keep(&mut context, k, v);
                        } else {
                            own_context.push(k.clone());
                            context.insert(k, v);
                        }
                    }
                }
                other => {
                    unknown.insert(key, other);
                }
            },
            "metadata" => match value {
                Value::Object(m) => metadata = Some(m),
                other => {
                    unknown.insert(key, other);
                }
            },
            "event_source" if value != Value::String("frontend".into()) => {
                reported.insert(key, value);
            }
            "event_source" => {}
            _ => {
                unknown.insert(key, value);
            }
        }
    }
    // The server's view of the client wins over the body's claims.
    for (key, captured) in [
        ("ip", &client.ip),
        ("user_agent", &client.user_agent),
        ("referer", &client.referer),
    ] {
        let claimed = match key {
            "user_agent" => context
                .shift_remove("user_agent")
                .or_else(|| context.shift_remove("userAgent")),
            "referer" => context
                .shift_remove("referer")
                .or_else(|| context.shift_remove("referrer")),
            _ => context.shift_remove(key),
        };
        if let Some(claimed) = claimed
            && Some(&claimed) != captured.as_ref().map(|c| Value::String(c.clone())).as_ref()
        {
            reported.insert(key.to_string(), claimed);
        }
        if let Some(c) = captured {
            context.insert(key.to_string(), Value::String(c.clone()));
        }
    }
    out.insert("event_source".into(), "frontend".into());
    if !out.contains_key("category") && !out.contains_key("event_category") {
        out.insert("category".into(), "business".into());
    }
    if !context.is_empty() {
        object_at(&mut out, "context").extend(context);
    }
    if metadata.is_some() || !reported.is_empty() || !unknown.is_empty() {
        let meta = object_at(&mut out, "metadata");
        meta.extend(metadata.unwrap_or_default());
        for (key, value) in reported {
            keep(object_at(meta, "client_reported"), key, value);
        }
        for (key, value) in unknown {
            keep(object_at(meta, UNMAPPED_KEY), key, value);
        }
    }
    out.into()
}
