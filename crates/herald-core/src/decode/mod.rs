//! Decoding of the one ingest request shape: the canonical event's fields,
//! plus the flat create-request spellings (`user_id` for `actor.user_id`,
//! `event_category`) and the aliases (`action`, `type`, `event`, `pattern`
//! for `event_type`; `message_id`, `messageId` for `idempotency_key`;
//! camelCase ids). Takes the request apart by key once (`fields.rs`: straight
//! from the bytes, or from a parsed value), reports every bad field (never
//! just the first), keeps unknown keys (top-level ones, and those of the
//! closed parts correlation, outcome and evidence) under
//! `metadata.unknown_fields` with a warning, and produces a typed
//! [`RawEvent`] that normalisation completes.

mod decoder;
mod fields;

use decoder::Decoder;

use serde_json::{Map, Value};

pub(crate) use fields::Body;
use fields::{FieldsMut, PartMut, Take};

use crate::error::{ErrorKind, FieldWarning, Findings, ValidationResult, pointer_push, type_name};
use crate::event::{Actor, Context, Correlation, Evidence, Extra, Github, Object, Outcome};
use crate::model::{
    Category, EventCategory, EventSource, EventType, OutcomeStatus, StreamId, truncate,
};
use crate::stream::ExpectedVersion;
use crate::timestamp::Timestamp;

/// Size limits applied while decoding; an event over `max_event_bytes` is
/// a `TooLarge` finding (413, stating the limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest encoded event, in bytes. Default 64 KiB.
    pub max_event_bytes: usize,
    /// Longest value of a named string field (ids, names, messages), in bytes.
    pub max_field_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_event_bytes: 64 * 1024,
            max_field_bytes: 4096,
        }
    }
}

/// Where unknown top-level keys are kept, inside `metadata`.
pub const UNKNOWN_FIELDS_KEY: &str = "unknown_fields";

/// The most arrays and objects JSON may nest, the event's own object
/// included: serde_json's recursion limit, for reading requests and for
/// reading stored events back alike.
pub const MAX_NESTING: usize = 127;

/// How deep an unknown top-level key's value may nest: it is stored two
/// levels further down (`/metadata/unknown_fields/<key>`), and must still
/// read back. A closed part's unknown key is kept one level deeper still
/// (`/metadata/unknown_fields/<part>/<key>`), so it may nest one level less.
const MAX_UNKNOWN_NESTING: usize = MAX_NESTING - 3;

/// An ingest request after decoding: aliases resolved, types checked,
/// defaults not yet applied.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub event_type: EventType,
    pub category: Category,
    pub event_category: Option<EventCategory>,
    pub event_source: Option<EventSource>,
    pub timestamp: Option<Timestamp>,
    /// A body `tenant_id`; the server rejects it when it differs from the
    /// key's tenant.
    pub tenant_id: Option<String>,
    pub actor: Actor,
    pub object: Object,
    pub correlation: Correlation,
    pub outcome: Option<Outcome>,
    pub evidence: Evidence,
    pub context: Context,
    pub environment_given: bool,
    pub data: Value,
    pub metadata: Extra,
    pub stream_id: Option<StreamId>,
    /// Optimistic concurrency for stream appends: the version the stream
    /// must be at, else the append is a conflict.
    pub expected_version: ExpectedVersion,
    pub idempotency_key: Option<String>,
    pub schema_version: Option<u32>,
    /// A W3C `traceparent` given in the body.
    pub traceparent: Option<String>,
}

const EVENT_TYPE_KEYS: [&str; 5] = ["event_type", "action", "type", "event", "pattern"];
const IDEMPOTENCY_KEYS: [&str; 3] = ["idempotency_key", "message_id", "messageId"];

/// Parses JSON bytes into a value, reporting size and syntax problems the
/// way every other field error is reported.
pub fn parse_json(bytes: &[u8], limits: &Limits) -> Result<Value, ValidationResult> {
    if bytes.len() > limits.max_event_bytes {
        return Err(too_large(bytes.len(), limits));
    }
    serde_json::from_slice(bytes).map_err(|e| unreadable(&e))
}

/// Reads JSON bytes straight into a [`Body`] (or the value, when it is not
/// an object), with the same findings as [`parse_json`].
pub(crate) fn parse_body(
    bytes: &[u8],
    limits: &Limits,
) -> Result<Result<Box<Body>, Value>, ValidationResult> {
    if bytes.len() > limits.max_event_bytes {
        return Err(too_large(bytes.len(), limits));
    }
    Body::from_slice(bytes).map_err(|e| unreadable(&e))
}

/// The finding for bytes serde_json cannot read.
fn unreadable(e: &serde_json::Error) -> ValidationResult {
    let mut f = Findings::default();
    if e.to_string().starts_with("recursion limit exceeded") {
        f.error(
            "",
            ErrorKind::InvalidValue,
            format!(
                "nested more than {MAX_NESTING} arrays and objects deep (at line {}, column {}); flatten the event",
                e.line(),
                e.column()
            ),
        );
    } else {
        f.error("", ErrorKind::Syntax, json_error_message(e));
    }
    ValidationResult::from_parts(f.errors, f.warnings)
}

/// The finding for an event of `len` bytes over the limit.
pub fn too_large(len: usize, limits: &Limits) -> ValidationResult {
    let mut f = Findings::default();
    f.error(
        "",
        ErrorKind::TooLarge,
        format!(
            "event is {len} bytes; the limit is {} bytes ({} KiB)",
            limits.max_event_bytes,
            limits.max_event_bytes / 1024
        ),
    );
    ValidationResult::from_parts(f.errors, f.warnings)
}

/// "malformed JSON at line 3, column 7: …" for a serde_json error.
pub fn json_error_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // serde_json appends " at line L column C"; say it once, up front.
    let reason = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(r, _)| r);
    format!(
        "malformed JSON at line {}, column {}: {reason}",
        e.line(),
        e.column()
    )
}

/// Decodes one ingest request. On success also returns the warnings.
pub fn decode_event(
    value: Value,
    limits: &Limits,
) -> Result<(RawEvent, Vec<FieldWarning>), ValidationResult> {
    let (raw, f) = decode_lenient(value, limits);
    match raw {
        Some(raw) if f.errors.is_empty() => Ok((raw, f.warnings)),
        _ => Err(ValidationResult::from_parts(f.errors, f.warnings)),
    }
}

/// Decodes as far as the input allows: the event whenever its type and
/// category could be read (even with other fields in error, which are then
/// absent from it), so later checks can add their findings to the same
/// answer; and every finding.
pub(crate) fn decode_lenient(value: Value, limits: &Limits) -> (Option<RawEvent>, Findings) {
    decode_body(Body::from_value(value), limits)
}

/// [`decode_lenient`] of a body already taken apart.
pub(crate) fn decode_body(
    body: Result<Box<Body>, Value>,
    limits: &Limits,
) -> (Option<RawEvent>, Findings) {
    let mut f = Findings::default();
    let mut body = match body {
        Ok(body) => body,
        Err(value) => {
            f.error(
                "",
                ErrorKind::InvalidType,
                format!("an event is a JSON object, got {}", type_name(&value)),
            );
            return (None, f);
        }
    };
    let mut d = Decoder {
        f: &mut f,
        limits,
        unknown: Vec::new(),
    };

    let event_type = d
        .aliased_string(&mut body.top(), &EVENT_TYPE_KEYS)
        .and_then(|(key, s)| {
            EventType::parse(s)
                .map_err(|e| d.f.error(format!("/{key}"), ErrorKind::InvalidValue, e.0))
                .ok()
        });
    if event_type.is_none()
        && !d
            .f
            .errors
            .iter()
            .any(|e| EVENT_TYPE_KEYS.iter().any(|k| e.field == format!("/{k}")))
    {
        d.f.error(
            "/event_type",
            ErrorKind::Missing,
            "required: the event's name, like `payment_authorized` (aliases: action, type, event, pattern)",
        );
    }

    let event_category = d.enum_field(
        &mut body.top(),
        "event_category",
        EventCategory::parse,
        EventCategory::allowed,
    );
    let category_given = d.enum_field(
        &mut body.top(),
        "category",
        Category::parse,
        Category::allowed,
    );
    // Derived only when category is absent: a bad category is an error of
    // its own, not a cue to check the event under another category.
    let category_bad = d.f.errors.iter().any(|e| e.field == "/category");
    let category = match category_given {
        None if category_bad => None,
        given => given.or(event_category.map(EventCategory::category)),
    };
    if let (Some(given), Some(ec)) = (category_given, event_category)
        && ec.category() != given
    {
        d.f.warn(
            "/event_category",
            format!(
                "event_category `{ec}` belongs to category {}, but category is `{given}`; \
                 category {given} is used (send the category that event_category derives, or only one of them)",
                ec.category()
            ),
        );
    }
    if category.is_none()
        && !d
            .f
            .errors
            .iter()
            .any(|e| e.field == "/category" || e.field == "/event_category")
    {
        d.f.error(
            "/category",
            ErrorKind::Missing,
            format!(
                "required: one of {} (or give event_category, and category is derived from it)",
                Category::allowed()
            ),
        );
    }
    let event_source = d.enum_field(
        &mut body.top(),
        "event_source",
        EventSource::parse,
        EventSource::allowed,
    );

    let timestamp = match body.top().take("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Timestamp::parse(&s)
            .map_err(|e| d.f.error("/timestamp", ErrorKind::InvalidValue, e))
            .ok(),
        Some(other) => {
            d.f.error(
                "/timestamp",
                ErrorKind::InvalidType,
                format!(
                    "expected an RFC 3339 timestamp string like 2025-12-30T10:00:00Z, got {}",
                    type_name(&other)
                ),
            );
            None
        }
    };
    let tenant_id = d.string_field(&mut body.top(), "tenant_id", "");

    let mut actor = d.actor(body.part(fields::ACTOR));
    if let Some(user_id) = d.id_field(&mut body.top(), "user_id", "") {
        match &actor.user_id {
            Some(existing) if *existing != user_id => d.f.error(
                "/user_id",
                ErrorKind::InvalidValue,
                format!(
                    "user_id `{}` disagrees with actor.user_id `{}`; send one",
                    truncate(&user_id, 64),
                    truncate(existing, 64)
                ),
            ),
            _ => actor.user_id = Some(user_id),
        }
    }
    let object = d.object(body.part(fields::OBJECT));
    let correlation = d.correlation(body.part(fields::CORRELATION));
    let outcome = d.outcome(body.part(fields::OUTCOME));
    let evidence = d.evidence(body.part(fields::EVIDENCE));
    let (context, environment_given) = d.context(body.part(fields::CONTEXT));

    let data = match body.top().take("data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(v) => v,
    };
    let mut metadata = d
        .object_field(body.top().take("metadata"), "/metadata")
        .unwrap_or_default();

    let stream_id = d
        .string_field(&mut body.top(), "stream_id", "")
        .and_then(|s| {
            StreamId::parse(s)
                .map_err(|e| d.f.error("/stream_id", ErrorKind::InvalidValue, e.0))
                .ok()
        });
    let expected_version = match body.top().take("expected_version") {
        None => ExpectedVersion::Any,
        Some(v) => ExpectedVersion::parse(&v).unwrap_or_else(|message| {
            d.f.error("/expected_version", ErrorKind::InvalidType, message);
            ExpectedVersion::Any
        }),
    };
    if expected_version != ExpectedVersion::Any
        && stream_id.is_none()
        && !d.f.errors.iter().any(|e| e.field == "/stream_id")
    {
        d.f.error(
            "/expected_version",
            ErrorKind::InvalidValue,
            "expected_version needs a stream_id to apply to",
        );
    }
    let idempotency_key = d
        .aliased_string(&mut body.top(), &IDEMPOTENCY_KEYS)
        .map(|(_, s)| s);
    let schema_version =
        d.unsigned(&mut body.top(), "schema_version")
            .and_then(|v| match u32::try_from(v) {
                Ok(v) if v > 0 => Some(v),
                _ => {
                    d.f.error(
                        "/schema_version",
                        ErrorKind::InvalidValue,
                        "schema_version is a positive integer below 2^32",
                    );
                    None
                }
            });
    let traceparent = d.string_field(&mut body.top(), "traceparent", "");

    // Whatever is left is unknown: keep it, say so.
    debug_assert!(body.top().slots_taken(), "every known key is decoded");
    let top_rest = body.top().take_rest();
    d.unknown
        .extend(top_rest.into_iter().map(|(key, value)| (vec![key], value)));
    let unknown = std::mem::take(&mut d.unknown);
    if !unknown.is_empty() {
        d.keep_unknown(&mut metadata, unknown);
    }

    let raw = match (event_type, category) {
        (Some(event_type), Some(category)) => Some(RawEvent {
            event_type,
            category,
            event_category,
            event_source,
            timestamp,
            tenant_id,
            actor,
            object,
            correlation,
            outcome,
            evidence,
            context,
            environment_given,
            data,
            metadata,
            stream_id,
            expected_version,
            idempotency_key,
            schema_version,
            traceparent,
        }),
        _ => None,
    };
    (raw, f)
}

#[cfg(test)]
mod tests;
