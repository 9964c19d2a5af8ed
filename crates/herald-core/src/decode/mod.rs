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

mod fields;

use serde_json::{Map, Value};

pub(crate) use fields::Body;
use fields::{FieldsMut, PartMut, Take};

use crate::error::{ErrorKind, FieldWarning, Findings, ValidationResult, pointer_push, type_name};
use crate::event::{Actor, Context, Correlation, Evidence, Extra, Github, Object, Outcome};
use crate::model::{
    Category, EventCategory, EventSource, EventType, OutcomeStatus, StreamId, truncate,
};
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
    pub expected_version: Option<u64>,
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
    let expected_version = d.unsigned(&mut body.top(), "expected_version");
    if expected_version.is_some()
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

/// One walk's state: where findings go and the limits in force.
struct Decoder<'a> {
    f: &'a mut Findings,
    limits: &'a Limits,
    /// Keys no shape knows, by their path in the request (`["zz"]`,
    /// `["correlation", "zz"]`), kept under `metadata.unknown_fields` last.
    unknown: Vec<(Vec<String>, Value)>,
}

impl Decoder<'_> {
    /// A string under `key` of `map`, reported at `{base}/{key}`. `null`
    /// counts as absent.
    fn string_in(&mut self, map: &mut dyn Take, key: &str, base: &str) -> Option<String> {
        match map.take(key)? {
            Value::Null => None,
            Value::String(s) => self.checked_len(s, base, key),
            other => {
                self.f.error(
                    pointer_push(base, key),
                    ErrorKind::InvalidType,
                    format!("expected a string, got {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn string_field(&mut self, map: &mut dyn Take, key: &str, base: &str) -> Option<String> {
        self.string_in(map, key, base)
    }

    /// An identifier: a string, or an integer taken as its decimal text.
    fn id_field(&mut self, map: &mut dyn Take, key: &str, base: &str) -> Option<String> {
        match map.take(key)? {
            Value::Null => None,
            Value::String(s) => self.checked_len(s, base, key),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            other => {
                self.f.error(
                    pointer_push(base, key),
                    ErrorKind::InvalidType,
                    format!(
                        "expected a string (or an integer) identifier, got {}",
                        type_name(&other)
                    ),
                );
                None
            }
        }
    }

    /// Like `id_field`, trying camelCase aliases when the snake_case key is absent.
    fn id_aliased(&mut self, map: &mut dyn Take, keys: &[&str], base: &str) -> Option<String> {
        let mut found = None;
        for key in keys {
            if let Some(v) = self.id_field(map, key, base) {
                match &found {
                    None => found = Some(v),
                    Some(first) if *first != v => self.f.error(
                        pointer_push(base, key),
                        ErrorKind::InvalidValue,
                        format!(
                            "`{key}` is an alias of `{}` and disagrees with it; send one",
                            keys[0]
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        found
    }

    fn checked_len(&mut self, s: String, base: &str, key: &str) -> Option<String> {
        if s.len() > self.limits.max_field_bytes {
            self.f.error(
                pointer_push(base, key),
                ErrorKind::TooLarge,
                format!(
                    "{} bytes; this field holds at most {} bytes",
                    s.len(),
                    self.limits.max_field_bytes
                ),
            );
            return None;
        }
        Some(s)
    }

    /// The first of several alias keys that is present; a second alias with a
    /// different value is an error.
    fn aliased_string(
        &mut self,
        map: &mut dyn Take,
        keys: &[&'static str],
    ) -> Option<(&'static str, String)> {
        let mut found: Option<(&'static str, String)> = None;
        for &key in keys {
            if let Some(v) = self.string_in(map, key, "") {
                match &found {
                    None => found = Some((key, v)),
                    Some((first, existing)) if *existing != v => self.f.error(
                        pointer_push("", key),
                        ErrorKind::InvalidValue,
                        format!(
                            "`{key}` is an alias of `{first}` and disagrees with it (`{}` vs `{}`); send one",
                            truncate(&v, 64),
                            truncate(existing, 64)
                        ),
                    ),
                    Some(_) => {}
                }
            }
        }
        found
    }

    fn enum_field<T>(
        &mut self,
        map: &mut dyn Take,
        key: &str,
        parse: fn(&str) -> Option<T>,
        allowed: fn() -> String,
    ) -> Option<T> {
        let s = self.string_in(map, key, "")?;
        let parsed = parse(&s);
        if parsed.is_none() {
            self.f.error(
                pointer_push("", key),
                ErrorKind::InvalidValue,
                format!(
                    "`{}` is not allowed; expected one of: {}",
                    truncate(&s, 64),
                    allowed()
                ),
            );
        }
        parsed
    }

    fn unsigned(&mut self, map: &mut dyn Take, key: &str) -> Option<u64> {
        match map.take(key)? {
            Value::Null => None,
            Value::Number(n) if n.is_u64() => n.as_u64(),
            other => {
                self.f.error(
                    pointer_push("", key),
                    ErrorKind::InvalidType,
                    format!("expected a non-negative integer, got {}", describe(&other)),
                );
                None
            }
        }
    }

    /// A part that is a JSON object (or absent/null), reported at
    /// `pointer` otherwise.
    fn part<'p>(&mut self, v: Option<PartMut<'p>>, pointer: &str) -> Option<FieldsMut<'p>> {
        match v? {
            PartMut::Object(fields) => Some(fields),
            PartMut::Other(Value::Null) => None,
            PartMut::Other(other) => {
                self.f.error(
                    pointer,
                    ErrorKind::InvalidType,
                    format!("expected a JSON object, got {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A JSON object (or absent/null), reported at `pointer` otherwise.
    fn object_field(&mut self, v: Option<Value>, pointer: &str) -> Option<Map<String, Value>> {
        match v? {
            Value::Null => None,
            Value::Object(m) => Some(m),
            other => {
                self.f.error(
                    pointer,
                    ErrorKind::InvalidType,
                    format!("expected a JSON object, got {}", type_name(&other)),
                );
                None
            }
        }
    }

    fn actor(&mut self, v: Option<PartMut<'_>>) -> Actor {
        let Some(mut m) = self.part(v, "/actor") else {
            return Actor::default();
        };
        let b = "/actor";
        Actor {
            user_id: self.id_aliased(&mut m, &["user_id", "userId"], b),
            email_hash: self.string_in(&mut m, "email_hash", b),
            service_name: self.id_aliased(&mut m, &["service_name", "serviceName"], b),
            role: self.string_in(&mut m, "role", b),
            anonymous_id: self.id_aliased(&mut m, &["anonymous_id", "anonymousId"], b),
            extra: m.take_rest(),
        }
    }

    fn object(&mut self, v: Option<PartMut<'_>>) -> Object {
        let Some(mut m) = self.part(v, "/object") else {
            return Object::default();
        };
        let b = "/object";
        Object {
            order_id: self.id_aliased(&mut m, &["order_id", "orderId"], b),
            request_id: self.id_aliased(&mut m, &["request_id", "requestId"], b),
            session_id: self.id_aliased(&mut m, &["session_id", "sessionId"], b),
            ticket_id: self.id_aliased(&mut m, &["ticket_id", "ticketId"], b),
            resource_id: self.id_aliased(&mut m, &["resource_id", "resourceId"], b),
            extra: m.take_rest(),
        }
    }

    fn correlation(&mut self, v: Option<PartMut<'_>>) -> Correlation {
        let Some(mut m) = self.part(v, "/correlation") else {
            return Correlation::default();
        };
        let b = "/correlation";
        let c = Correlation {
            trace_id: self.id_aliased(&mut m, &["trace_id", "traceId"], b),
            span_id: self.id_aliased(&mut m, &["span_id", "spanId"], b),
            correlation_id: self.id_aliased(&mut m, &["correlation_id", "correlationId"], b),
            parent_event_id: self.id_aliased(&mut m, &["parent_event_id", "parentEventId"], b),
        };
        self.keep_rest(m.take_rest(), &["correlation"]);
        c
    }

    fn outcome(&mut self, v: Option<PartMut<'_>>) -> Option<Outcome> {
        let mut m = self.part(v, "/outcome")?;
        let b = "/outcome";
        let status = match self.string_in(&mut m, "status", b) {
            None => OutcomeStatus::Success,
            Some(s) => OutcomeStatus::parse(&s).unwrap_or_else(|| {
                self.f.error(
                    "/outcome/status",
                    ErrorKind::InvalidValue,
                    format!(
                        "`{}` is not allowed; expected one of: {}",
                        truncate(&s, 64),
                        OutcomeStatus::allowed()
                    ),
                );
                OutcomeStatus::Success
            }),
        };
        let o = Outcome {
            status,
            error_class: self.id_aliased(&mut m, &["error_class", "errorClass"], b),
            error_code: self.id_aliased(&mut m, &["error_code", "errorCode"], b),
            message: self.string_in(&mut m, "message", b),
        };
        self.keep_rest(m.take_rest(), &["outcome"]);
        Some(o)
    }

    fn evidence(&mut self, v: Option<PartMut<'_>>) -> Evidence {
        let Some(mut m) = self.part(v, "/evidence") else {
            return Evidence::default();
        };
        let b = "/evidence";
        let github = self
            .object_field(m.take("github"), "/evidence/github")
            .map(|mut g| {
                let gb = "/evidence/github";
                let gh = Github {
                    commit_sha: self.id_aliased(&mut g, &["commit_sha", "commitSha"], gb),
                    pr: self.id_field(&mut g, "pr", gb),
                    repository: self.string_in(&mut g, "repository", gb),
                };
                self.keep_rest(g, &["evidence", "github"]);
                gh
            });
        let raw_pointer = self.id_aliased(&mut m, &["raw_pointer", "raw_s3_pointer"], b);
        let trace_url = self.string_in(&mut m, "trace_url", b);
        let log_references = match m.take("log_references") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::String(s) => Some(s),
                    other => {
                        self.f.error(
                            format!("/evidence/log_references/{i}"),
                            ErrorKind::InvalidType,
                            format!("expected a string, got {}", type_name(&other)),
                        );
                        None
                    }
                })
                .collect(),
            Some(other) => {
                self.f.error(
                    "/evidence/log_references",
                    ErrorKind::InvalidType,
                    format!("expected an array of strings, got {}", type_name(&other)),
                );
                Vec::new()
            }
        };
        self.keep_rest(m.take_rest(), &["evidence"]);
        Evidence {
            github,
            raw_pointer,
            trace_url,
            log_references,
        }
    }

    fn context(&mut self, v: Option<PartMut<'_>>) -> (Context, bool) {
        let Some(mut m) = self.part(v, "/context") else {
            return (Context::default(), false);
        };
        let b = "/context";
        let environment = self.string_in(&mut m, "environment", b);
        if environment.as_deref() == Some("") {
            self.f.error(
                "/context/environment",
                ErrorKind::InvalidValue,
                "environment must not be empty",
            );
        }
        let given = environment.is_some();
        let c = Context {
            environment: environment
                .unwrap_or_else(|| crate::event::DEFAULT_ENVIRONMENT.to_string()),
            service: self.id_aliased(&mut m, &["service", "service_name"], b),
            endpoint: self.string_in(&mut m, "endpoint", b),
            version: self.id_field(&mut m, "version", b),
            ip: self.string_in(&mut m, "ip", b),
            user_agent: self.id_aliased(&mut m, &["user_agent", "userAgent"], b),
            referer: self.id_aliased(&mut m, &["referer", "referrer"], b),
            extra: m.take_rest(),
        };
        (c, given)
    }

    /// The keys a closed part (correlation, outcome, evidence, github) does
    /// not know: kept like unknown top-level keys, at their path.
    fn keep_rest(&mut self, rest: Map<String, Value>, part: &[&str]) {
        for (key, value) in rest {
            let mut path: Vec<String> = part.iter().map(|p| (*p).to_owned()).collect();
            path.push(key);
            self.unknown.push((path, value));
        }
    }

    /// Keeps every unknown key under `metadata.unknown_fields`, at the path
    /// it was sent at (`/zz` at `/metadata/unknown_fields/zz`,
    /// `/correlation/zz` at `/metadata/unknown_fields/correlation/zz`),
    /// with a warning saying where. Never over a value already there: the
    /// sender's own `metadata.unknown_fields` stays whole, and a key whose
    /// place is taken is kept under the first free `<key>_2`, `<key>_3`, ...
    fn keep_unknown(&mut self, metadata: &mut Extra, unknown: Vec<(Vec<String>, Value)>) {
        let root = match metadata.entry(UNKNOWN_FIELDS_KEY) {
            serde_json::map::Entry::Occupied(mut o) => {
                if !o.get().is_object() {
                    if nesting(o.get()) > MAX_UNKNOWN_NESTING {
                        self.f.error(
                            "/metadata/unknown_fields",
                            ErrorKind::InvalidValue,
                            too_deep_to_keep(
                                nesting(o.get()),
                                "/metadata/unknown_fields/_previous",
                                MAX_UNKNOWN_NESTING,
                            ),
                        );
                    }
                    let previous = o.insert(Value::Object(Map::new()));
                    o.get_mut()
                        .as_object_mut()
                        .map(|m| m.insert("_previous".into(), previous));
                }
                o.into_mut()
            }
            serde_json::map::Entry::Vacant(v) => v.insert(Value::Object(Map::new())),
        };
        let Value::Object(root) = root else {
            unreachable!("unknown_fields was made an object above")
        };
        for (path, value) in unknown {
            let sent_at = path.iter().fold(String::new(), |p, t| pointer_push(&p, t));
            // Above the value: the event, metadata, unknown_fields and every
            // step of the path but the last.
            let fits = MAX_NESTING - 2 - path.len();
            if nesting(&value) > fits {
                let wanted_at = format!("/metadata/unknown_fields{sent_at}");
                self.f.error(
                    sent_at,
                    ErrorKind::InvalidValue,
                    too_deep_to_keep(nesting(&value), &wanted_at, fits),
                );
                continue;
            }
            let mut at = &mut *root;
            let mut kept_at = String::from("/metadata/unknown_fields");
            // The first step of the path found taken, if any.
            let mut taken: Option<String> = None;
            let last = path.len() - 1;
            for (i, token) in path.into_iter().enumerate() {
                // An intermediate step may share an object already there; the
                // last must be a place of its own.
                let free = |v: &Value| i < last && v.is_object();
                let name = if at.get(&token).is_none_or(free) {
                    token
                } else {
                    taken.get_or_insert_with(|| pointer_push(&kept_at, &token));
                    (2..)
                        .map(|n| format!("{token}_{n}"))
                        .find(|k| at.get(k).is_none_or(free))
                        .expect("some suffix is free")
                };
                kept_at = pointer_push(&kept_at, &name);
                if i == last {
                    at.insert(name, value);
                    break;
                }
                at = at
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("an object, made or found");
            }
            let message = match taken {
                Some(taken) => format!("unknown field kept as {kept_at}, since {taken} was taken"),
                None => format!("unknown field kept as {kept_at}"),
            };
            self.f.warn(sent_at, message);
        }
    }
}

/// The arrays and objects nested in `v`, itself included (a scalar has 0).
fn nesting(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(nesting).max().unwrap_or(0),
        _ => 0,
    }
}

fn too_deep_to_keep(depth: usize, kept_at: &str, fits: usize) -> String {
    format!(
        "unknown field nested {depth} levels deep; kept as {kept_at} it would exceed \
         {MAX_NESTING} levels in the stored event, so at most {fits} fit \
         (send deep payloads under /data)"
    )
}

/// "a negative number", "string" and so on, for integer fields.
fn describe(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_i64() => format!("negative integer {n}"),
        Value::Number(n) => format!("non-integer number {n}"),
        other => type_name(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::json;
    use crate::{EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp};

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    fn process(body: &str) -> Result<crate::Processed, ValidationResult> {
        let tenant = TenantId::parse("t").unwrap();
        let hasher = EmailHasher::new(b"k");
        let ctx = ProcessingContext {
            tenant_id: &tenant,
            email_hasher: &hasher,
            processing_timestamp: Timestamp::parse("2025-12-30T10:00:00Z").unwrap(),
            ids: &crate::clock::SequentialIds::default(),
            traceparent: None,
        };
        EventProcessor::default().process_json(body.as_bytes(), &ctx)
    }

    #[test]
    fn nesting_beyond_the_limit_is_an_error() {
        let head = r#"{"event_type":"x.y","category":"system","data":"#;
        let ok = process(&format!("{head}{}}}", nested(MAX_NESTING - 1))).expect("127 levels");
        assert_eq!(
            json::decode(&json::encode(&ok.event)).unwrap(),
            ok.event,
            "reads back"
        );
        let r = process(&format!("{head}{}}}", nested(MAX_NESTING))).expect_err("128 levels");
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].kind, ErrorKind::InvalidValue);
        assert!(
            r.errors[0]
                .message
                .starts_with("nested more than 127 arrays and objects deep (at line 1, column"),
            "{}",
            r.errors[0].message
        );
    }

    #[test]
    fn unknown_fields_must_fit_where_they_are_kept() {
        let head = r#"{"event_type":"x.y","category":"system","zz":"#;
        let ok = process(&format!("{head}{}}}", nested(MAX_UNKNOWN_NESTING))).expect("fits");
        assert_eq!(
            json::decode(&json::encode(&ok.event)).unwrap(),
            ok.event,
            "reads back"
        );
        for levels in [MAX_UNKNOWN_NESTING + 1, MAX_NESTING - 1] {
            let r = process(&format!("{head}{}}}", nested(levels))).expect_err("too deep to keep");
            assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
            assert_eq!(r.errors[0].field, "/zz");
            assert!(
                r.errors[0].message.contains("/metadata/unknown_fields/zz"),
                "{}",
                r.errors[0].message
            );
        }
        // A non-object metadata.unknown_fields moves one level down too.
        let body = format!(
            r#"{{"event_type":"x.y","category":"system","other":1,"metadata":{{"unknown_fields":{}}}}}"#,
            nested(MAX_UNKNOWN_NESTING + 1)
        );
        let r = process(&body).expect_err("too deep to keep");
        assert_eq!(r.errors[0].field, "/metadata/unknown_fields");
        // A closed part's unknown key is kept one level deeper still.
        let part = |levels| {
            format!(
                r#"{{"event_type":"x.y","category":"system","correlation":{{"zz":{}}}}}"#,
                nested(levels)
            )
        };
        process(&part(MAX_UNKNOWN_NESTING - 1)).expect("fits");
        let r = process(&part(MAX_UNKNOWN_NESTING)).expect_err("too deep to keep");
        assert_eq!(r.errors[0].field, "/correlation/zz");
        assert!(
            r.errors[0]
                .message
                .contains("/metadata/unknown_fields/correlation/zz"),
            "{}",
            r.errors[0].message
        );
    }

    fn warning<'p>(p: &'p crate::Processed, field: &str) -> &'p str {
        let found: Vec<_> = p.warnings.iter().filter(|w| w.field == field).collect();
        assert_eq!(found.len(), 1, "{:?}", p.warnings);
        &found[0].message
    }

    #[test]
    fn unknown_keys_in_closed_parts_are_kept_with_a_warning() {
        let p = process(
            r#"{"event_type":"x.y","category":"system",
                "correlation":{"trace_id":"t1","baggage":{"k":"v"}},
                "outcome":{"status":"failure","error_code":"E1","retryable":true},
                "evidence":{"trace_url":"u","ticket":"JIRA-1","github":{"pr":"7","branch":"main"}}}"#,
        )
        .expect("kept, not refused");
        let e = &p.event;
        assert_eq!(e.correlation.trace_id.as_deref(), Some("t1"));
        assert_eq!(
            Value::Object(e.metadata.clone()),
            serde_json::json!({"unknown_fields": {
                "correlation": {"baggage": {"k": "v"}},
                "outcome": {"retryable": true},
                "evidence": {"github": {"branch": "main"}, "ticket": "JIRA-1"},
            }})
        );
        assert_eq!(
            warning(&p, "/correlation/baggage"),
            "unknown field kept as /metadata/unknown_fields/correlation/baggage"
        );
        assert_eq!(
            warning(&p, "/evidence/github/branch"),
            "unknown field kept as /metadata/unknown_fields/evidence/github/branch"
        );
    }

    #[test]
    fn unknown_keys_never_overwrite_what_the_sender_put_there() {
        let p = process(
            r#"{"event_type":"x.y","category":"system","plan":"new","plan_2":"newer",
                "correlation":{"zz":1},
                "metadata":{"unknown_fields":{"plan":"mine","correlation":"also mine"}}}"#,
        )
        .expect("valid");
        assert_eq!(
            Value::Object(p.event.metadata.clone()),
            serde_json::json!({"unknown_fields": {
                "plan": "mine", "correlation": "also mine",
                "correlation_2": {"zz": 1}, "plan_2": "new", "plan_2_2": "newer",
            }})
        );
        assert_eq!(
            warning(&p, "/plan"),
            "unknown field kept as /metadata/unknown_fields/plan_2, since /metadata/unknown_fields/plan was taken"
        );
        assert_eq!(
            warning(&p, "/plan_2"),
            "unknown field kept as /metadata/unknown_fields/plan_2_2, since /metadata/unknown_fields/plan_2 was taken"
        );
        assert_eq!(
            warning(&p, "/correlation/zz"),
            "unknown field kept as /metadata/unknown_fields/correlation_2/zz, since /metadata/unknown_fields/correlation was taken"
        );
    }

    #[test]
    fn an_explicit_category_wins_over_event_category_with_a_warning() {
        let p =
            process(r#"{"event_type":"x.y","category":"business","event_category":"security"}"#)
                .expect("valid");
        assert_eq!(p.event.category, Category::Business);
        assert_eq!(p.event.event_category, Some(EventCategory::Security));
        assert_eq!(
            warning(&p, "/event_category"),
            "event_category `security` belongs to category security, but category is `business`; \
             category business is used (send the category that event_category derives, or only one of them)"
        );
        // Agreeing, or only one of them: nothing to say.
        for body in [
            r#"{"event_type":"x.y","category":"business","event_category":"payment"}"#,
            r#"{"event_type":"x.y","event_category":"alert"}"#,
        ] {
            assert_eq!(process(body).expect("valid").warnings, vec![], "{body}");
        }
        // A bad category is not replaced by the derived one.
        let r =
            process(r#"{"event_type":"db_error","category":"finance","event_category":"order"}"#)
                .expect_err("bad category");
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.errors[0].field, "/category");
    }
}
