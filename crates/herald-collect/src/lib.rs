//! Collection formats, each a pure decoder from a received body to the
//! ingest request Herald's core already validates, normalises and redacts
//! (the JSON object `POST /api/v1/events/create` takes). No IO: the server
//! reads bodies, resolves write keys and stores; these modules only say
//! what an event of each format means in Herald's model, so they can be
//! property-tested for never panicking and never dropping a field.
//!
//! - [`frontend`]: the browser model of `POST /api/v1/events/frontend`.
//! - [`client`]: the client's address (trusted proxies, `X-Forwarded-For`)
//!   and what is kept of it.

pub mod client;
pub mod cloudevents;
pub mod frontend;
pub mod rudderstack;
pub mod segment;

use serde_json::{Map, Value};

/// Where a decoder keeps the keys of a received event it does not map,
/// inside the ingest request's `metadata`.
pub const UNMAPPED_KEY: &str = "unknown_fields";

/// What the server captured about the client that sent a request: put
/// into each event's `context`, over what the body claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientContext {
    /// The client's address as kept (see [`client::IpPolicy`]); `None`
    /// when the policy drops it.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
}

/// The object under `key` of `m`, made when missing; a non-object value
/// there is moved under `metadata.unknown_fields` first, so nothing is lost.
pub(crate) fn object_at<'m>(
    m: &'m mut Map<String, Value>,
    key: &str,
) -> &'m mut Map<String, Value> {
    if !matches!(m.get(key), Some(Value::Object(_)) | None) {
        let v = m.remove(key).unwrap_or(Value::Null);
        let meta = object_at(m, "metadata");
        object_at(meta, UNMAPPED_KEY).insert(key.to_string(), v);
    }
    match m
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(o) => o,
        _ => unreachable!("made an object above"),
    }
}

/// Inserts `value` under `key`, or, when the sender already used that key
/// for something else, under `key~2`, `key~3`, ...: nothing is dropped.
pub(crate) fn keep(m: &mut Map<String, Value>, key: String, value: Value) {
    if m.get(&key).is_none_or(|old| *old == value) {
        m.insert(key, value);
        return;
    }
    let mut n = 2;
    while m.contains_key(&format!("{key}~{n}")) {
        n += 1;
    }
    m.insert(format!("{key}~{n}"), value);
}
