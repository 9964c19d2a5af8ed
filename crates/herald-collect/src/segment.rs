//! Segment's HTTP Tracking API (`/v1/track`, `identify`, `page`,
//! `screen`, `group`, `alias`, `batch`; RudderStack's SDKs send the same
//! messages), one message decoded into the ingest request. Nothing is
//! dropped: what has no place in Herald's model is kept in `metadata`.
//!
//! | Segment | ingest request |
//! |---|---|
//! | `type` track | `event_type` = `event`, `event_category` `user_action` |
//! | `type` page / screen | `event_type` `page_viewed` / `screen_viewed`, `event_category` `page_view`; `name`, `category` in `data` |
//! | `type` identify | `event_type` `user_identified`, `event_category` `user_lifecycle` |
//! | `type` group | `event_type` `group_identified`, `event_category` `user_lifecycle`; `groupId` in `data.group_id` |
//! | `type` alias | `event_type` `user_aliased`, `event_category` `user_lifecycle`; `previousId` in `data.previous_id` |
//! | `properties` (track, page, screen) | `data.properties` |
//! | `traits` (identify, group) | `data.traits` |
//! | `userId` | `user_id` |
//! | `anonymousId` | `actor.anonymous_id` |
//! | `messageId` | `idempotency_key` (a retry stores nothing new) |
//! | `timestamp` / `originalTimestamp`, `sentAt` | `timestamp` = receivedAt − (sentAt − originalTimestamp), corrected for the device's clock; without `sentAt` as sent; all four kept in `metadata.segment` |
//! | `context` | `context` (`ip` as the IP policy keeps it; the request's address, `User-Agent` and `Referer` when the message has none) |
//! | `integrations` | `metadata.segment.integrations` |
//! | any other key (`channel`, `version`, `_metadata`, …) | `metadata.unknown_fields` |
//! | the request | `event_source` `frontend` when it came from a browser (an `Origin`, or `channel` `client`/`browser`/`mobile`), else `backend` |
//!
//! A message's own `receivedAt` (an upstream pipeline's) stays
//! `receivedAt` in that metadata, with Herald's as `heraldReceivedAt`.
//!
//! An unknown `type`: `event_type` = `segment.<type>`, `event_category`
//! absent, category `business`; a message without `type` uses the route's.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{ClientContext, UNMAPPED_KEY, keep, object_at};

/// The Segment message types and the short paths of the browser library.
pub const TYPES: [(&str, &str); 6] = [
    ("track", "t"),
    ("identify", "i"),
    ("page", "p"),
    ("screen", "s"),
    ("group", "g"),
    ("alias", "a"),
];

/// What the server knows of the request a message came in.
#[derive(Debug, Clone)]
pub struct Received<'a> {
    /// When Herald received it (RFC 3339).
    pub received_at: OffsetDateTime,
    /// The route's type (`/v1/track`: `track`), for a message without one.
    pub route_type: Option<&'a str>,
    /// The batch's `sentAt` and `context`, for messages without their own.
    pub batch_sent_at: Option<&'a Value>,
    pub batch_context: Option<&'a Map<String, Value>>,
    /// The batch wrapper's other keys, kept on each message.
    pub batch_rest: Option<&'a Map<String, Value>>,
    /// The request carried an `Origin`.
    pub from_browser: bool,
    pub client: &'a ClientContext,
    /// Correct the device's clock from `sentAt` (Segment's API, straight
    /// from the device); `false` for messages a pipeline already corrected
    /// (RudderStack's webhook: its `timestamp` is), kept as sent.
    pub correct_clock: bool,
    /// Where the format's own fields go in `metadata` (`segment`,
    /// `rudderstack`).
    pub metadata_key: &'static str,
}

fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()
}

/// `receivedAt − (sentAt − timestamp)`: the device's clock error removed.
pub fn corrected(
    timestamp: OffsetDateTime,
    sent_at: OffsetDateTime,
    received_at: OffsetDateTime,
) -> Option<OffsetDateTime> {
    received_at.checked_sub(sent_at - timestamp)
}

/// One message as the ingest request. `keep_ip` is the IP policy applied
/// to an address the message itself reports.
pub fn decode_message(
    message: Value,
    r: &Received<'_>,
    keep_ip: &dyn Fn(&str) -> Option<String>,
) -> Value {
    let Value::Object(sent) = message else {
        return message;
    };
    let mut out = Map::new();
    let mut data = Map::new();
    let mut segment = Map::new();
    let mut unknown = Map::new();
    let mut context = r.batch_context.cloned().unwrap_or_default();
    let mut kind: Option<Value> = None;
    let (mut timestamp, mut original, mut sent_at) = (None, None, None);
    let mut sent_received_at = None;
    for (key, value) in sent {
        match key.as_str() {
            "type" => kind = Some(value),
            "event" => {
                data.insert("event".into(), value);
            }
            "name" | "category" => {
                data.insert(key, value);
            }
            "properties" => {
                data.insert("properties".into(), value);
            }
            "traits" => {
                data.insert("traits".into(), value);
            }
            "groupId" => {
                data.insert("group_id".into(), value);
            }
            "previousId" => {
                data.insert("previous_id".into(), value);
            }
            "userId" => {
                out.insert("user_id".into(), value);
            }
            "anonymousId" => {
                object_at(&mut out, "actor").insert("anonymous_id".into(), value);
            }
            "messageId" => {
                out.insert("idempotency_key".into(), value);
            }
            "timestamp" => timestamp = Some(value),
            "originalTimestamp" => original = Some(value),
            "sentAt" => sent_at = Some(value),
            "receivedAt" => sent_received_at = Some(value),
            "context" => match value {
                Value::Object(c) => context.extend(c),
                other => {
                    unknown.insert(key, other);
                }
            },
            "integrations" => {
                segment.insert("integrations".into(), value);
            }
            "writeKey" => {}
            _ => {
                unknown.insert(key, value);
            }
        }
    }
    // The type names the event; `event` of a track is its name.
    let type_name = match &kind {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(_) => None,
        None => r.route_type,
    };
    if let Some(k) = &kind
        && !k.is_string()
    {
        unknown.insert("type".into(), k.clone());
    }
    let (event_type, event_category) = match type_name {
        Some("track") => match data.remove("event") {
            Some(Value::String(e)) => (Some(Value::String(e)), Some("user_action")),
            // Without a name the core refuses it, naming `/event_type`.
            Some(other) => {
                unknown.insert("event".into(), other);
                (None, Some("user_action"))
            }
            None => (None, Some("user_action")),
        },
        Some("page") => (Some(json!("page_viewed")), Some("page_view")),
        Some("screen") => (Some(json!("screen_viewed")), Some("page_view")),
        Some("identify") => (Some(json!("user_identified")), Some("user_lifecycle")),
        Some("group") => (Some(json!("group_identified")), Some("user_lifecycle")),
        Some("alias") => (Some(json!("user_aliased")), Some("user_lifecycle")),
        Some(other) => (Some(json!(format!("segment.{other}"))), None),
        None => (None, None),
    };
    if let Some(e) = data.remove("event") {
        // `event` on a message that is not a track: kept, not obeyed.
        unknown.insert("event".into(), e);
    }
    if let Some(t) = event_type {
        out.insert("event_type".into(), t);
    }
    match event_category {
        Some(c) => out.insert("event_category".into(), json!(c)),
        None => out.insert("category".into(), json!("business")),
    };
    if let Some(t) = type_name {
        segment.insert("type".into(), json!(t));
    }

    // Time: corrected for the device's clock when `sentAt` says how far off it is.
    let sent_at = sent_at.or_else(|| r.batch_sent_at.cloned());
    let device_time = if r.correct_clock {
        original.as_ref().or(timestamp.as_ref())
    } else {
        timestamp.as_ref().or(original.as_ref())
    };
    let fixed = match (
        device_time.and_then(parse_time),
        sent_at.as_ref().and_then(parse_time),
    ) {
        (Some(t), Some(s)) if r.correct_clock => corrected(t, s, r.received_at),
        _ => None,
    };
    match fixed {
        Some(f) => {
            out.insert(
                "timestamp".into(),
                json!(f.format(&Rfc3339).unwrap_or_default()),
            );
        }
        None => {
            if let Some(t) = device_time {
                out.insert("timestamp".into(), t.clone());
            }
        }
    }
    for (k, v) in [
        ("timestamp", timestamp),
        ("originalTimestamp", original),
        ("sentAt", sent_at),
    ] {
        if let Some(v) = v {
            segment.insert(k.into(), v);
        }
    }
    let ours = json!(r.received_at.format(&Rfc3339).unwrap_or_default());
    match sent_received_at {
        // When an upstream pipeline received it first (RudderStack), its
        // time stays `receivedAt` and Herald's is beside it.
        Some(theirs) => {
            segment.insert("receivedAt".into(), theirs);
            segment.insert("heraldReceivedAt".into(), ours);
        }
        None => {
            segment.insert("receivedAt".into(), ours);
        }
    }

    // Context: the message's own, then what the server saw of the request.
    let browser = r.from_browser
        || matches!(
            unknown.get("channel").and_then(Value::as_str),
            Some("client" | "browser" | "mobile")
        );
    match context.shift_remove("ip") {
        Some(Value::String(ip)) => {
            if let Some(kept) = keep_ip(&ip) {
                context.insert("ip".into(), json!(kept));
            }
        }
        Some(other) => {
            segment.insert("context_ip".into(), other);
        }
        None => {
            if let Some(ip) = &r.client.ip {
                context.insert("ip".into(), json!(ip));
            }
        }
    }
    if !context.contains_key("userAgent")
        && !context.contains_key("user_agent")
        && let Some(ua) = &r.client.user_agent
    {
        context.insert("user_agent".into(), json!(ua));
    }
    if !context.contains_key("referer")
        && !context.contains_key("referrer")
        && let Some(rf) = &r.client.referer
    {
        context.insert("referer".into(), json!(rf));
    }
    out.insert(
        "event_source".into(),
        json!(if browser { "frontend" } else { "backend" }),
    );
    if !context.is_empty() {
        object_at(&mut out, "context").extend(context);
    }
    if !data.is_empty() {
        out.insert("data".into(), Value::Object(data));
    }
    let meta = object_at(&mut out, "metadata");
    meta.insert(r.metadata_key.into(), Value::Object(segment));
    if let Some(rest) = r.batch_rest.filter(|m| !m.is_empty()) {
        unknown.insert("batch".into(), Value::Object(rest.clone()));
    }
    for (key, value) in unknown {
        keep(object_at(meta, UNMAPPED_KEY), key, value);
    }
    out.into()
}

/// A batch body (`{"batch": [...], "sentAt", "context", "writeKey"}`, or
/// RudderStack's import with the same shape) taken apart: the messages and
/// what applies to each. `Err` names what is wrong with the wrapper.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub messages: Vec<Value>,
    pub sent_at: Option<Value>,
    pub context: Option<Map<String, Value>>,
    /// The wrapper's other keys (`timestamp`, `metadata`, …), kept on each
    /// message under `metadata.unknown_fields.batch`.
    pub rest: Map<String, Value>,
}

pub fn split_batch(body: Value) -> Result<Batch, String> {
    let mut m = match body {
        Value::Object(m) => m,
        Value::Array(messages) => {
            return Ok(Batch {
                messages,
                sent_at: None,
                context: None,
                rest: Map::new(),
            });
        }
        _ => return Err("a batch is {\"batch\": [...]}".into()),
    };
    let messages = match m.shift_remove("batch") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err("`batch` must be an array of messages".into()),
        None => return Err("`batch` is required: the array of messages".into()),
    };
    m.shift_remove("writeKey");
    let sent_at = m.shift_remove("sentAt");
    let context = match m.shift_remove("context") {
        Some(Value::Object(c)) => Some(c),
        Some(other) => {
            m.insert("context".into(), other);
            None
        }
        None => None,
    };
    Ok(Batch {
        messages,
        sent_at,
        context,
        rest: m,
    })
}
