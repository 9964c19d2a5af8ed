//! The event filter language: which stored events a query, a statistic, a
//! replay or a subscription means, as one typed value ([`EventFilter`])
//! and its one parser from JSON, which names every bad field at once (as
//! JSON pointers). Paging and ordering are not filters: they belong to
//! whoever reads the events, and reach [`EventFilter::parse_field`] as
//! keys it does not know.
//!
//! All given filters must hold (AND); a list matches any of its values.
//! Values are as the sender wrote them: matching values the store keeps
//! redacted (emails, card numbers) is the caller's business.

use serde_json::{Map, Value};

use crate::correlation::CorrelationKey;
use crate::error::{ErrorKind, FieldError, pointer_push, type_name};
use crate::model::{Category, EventCategory, EventSource, EventStatus, OutcomeStatus};
use crate::timestamp::Timestamp;

mod matches;
#[cfg(test)]
mod tests;

pub use matches::InMemoryGap;

/// The part of an event a [`FieldFilter`] looks into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventPart {
    Actor,
    Object,
    Context,
    Outcome,
}

impl EventPart {
    pub const ALL: [EventPart; 4] = [
        EventPart::Actor,
        EventPart::Object,
        EventPart::Context,
        EventPart::Outcome,
    ];

    /// The part's key in the canonical event.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventPart::Actor => "actor",
            EventPart::Object => "object",
            EventPart::Context => "context",
            EventPart::Outcome => "outcome",
        }
    }

    pub fn parse(s: &str) -> Option<EventPart> {
        EventPart::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether the correlation key `key` is one of this part's own fields
    /// (so `actor.user_id` is the indexed key, `object.user_id` is not).
    fn holds_key(self, key: CorrelationKey) -> bool {
        let home = match key {
            CorrelationKey::UserId | CorrelationKey::EmailHash => "actor",
            CorrelationKey::TraceId | CorrelationKey::SpanId | CorrelationKey::CorrelationId => {
                "correlation"
            }
            _ => "object",
        };
        home == self.as_str()
    }
}

/// Equality on one key of a part that is not an indexed column
/// (`actor.role = "admin"`, `outcome.reason = "timeout"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldFilter {
    pub part: EventPart,
    pub key: String,
    pub value: String,
}

/// Which stored events are meant. Empty lists and `None`s do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    pub event_types: Vec<String>,
    pub event_sources: Vec<EventSource>,
    pub event_categories: Vec<EventCategory>,
    pub categories: Vec<Category>,
    pub statuses: Vec<EventStatus>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    /// Correlation keys (`trace_id`, `order_id`, `user_id`, ...) by value.
    pub keys: Vec<(CorrelationKey, String)>,
    /// `actor.*`, `object.*`, `context.*`, `outcome.*` on other keys.
    pub fields: Vec<FieldFilter>,
    pub outcome_status: Option<OutcomeStatus>,
    pub environment: Option<String>,
    pub service: Option<String>,
    pub stream_id: Option<String>,
    /// Full-text terms, all of which must occur (`q`).
    pub text: Option<String>,
}

/// Whether [`EventFilter::parse_field`] took a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A filter (well-formed or with its errors recorded).
    Filter,
    /// Not a filter: the caller's own key, or unknown.
    Unknown,
}

impl EventFilter {
    /// Every filter's name, for an unknown-key message.
    pub const FIELDS: &'static str = "user_id, event_type, event_types, event_source, event_sources, event_category, \
event_categories, category, categories, status, statuses, start_time, end_time, trace_id, span_id, correlation_id, \
request_id, order_id, session_id, ticket_id, email_hash, actor, object, context, outcome_status, outcome, environment, \
service, stream_id, q";

    /// Parses an object of filters, naming every bad field (a pointer per
    /// field, `/status`, `/actor/role`, `/event_types/1`) and every unknown
    /// key at once.
    pub fn from_json(value: &Value) -> Result<EventFilter, Vec<FieldError>> {
        let body = match value {
            Value::Object(body) => body,
            other => return Err(vec![not_an_object(other)]),
        };
        let mut filter = EventFilter::default();
        let mut errors = Vec::new();
        for (key, value) in body {
            if filter.parse_field(key, value, &mut errors) == Parsed::Unknown {
                errors.push(unknown_filter(key, Self::FIELDS));
            }
        }
        filter.check(&mut errors);
        if errors.is_empty() {
            Ok(filter)
        } else {
            Err(errors)
        }
    }

    /// Parses one top-level key into the filter, recording what is wrong
    /// with its value in `errors`. A later key of the same filter adds to a
    /// list or replaces a single value.
    pub fn parse_field(&mut self, key: &str, v: &Value, errors: &mut Vec<FieldError>) -> Parsed {
        let field = pointer_push("", key);
        let f = field.as_str();
        match key {
            "event_type" | "event_types" => self.event_types.extend(strings(v, f, errors)),
            "event_source" | "event_sources" => self.event_sources.extend(enums(
                v,
                f,
                EventSource::parse,
                EventSource::allowed,
                errors,
            )),
            "event_category" | "event_categories" => self.event_categories.extend(enums(
                v,
                f,
                EventCategory::parse,
                EventCategory::allowed,
                errors,
            )),
            "category" | "categories" => {
                self.categories
                    .extend(enums(v, f, Category::parse, Category::allowed, errors))
            }
            "status" | "statuses" => self.statuses.extend(enums(
                v,
                f,
                EventStatus::parse,
                EventStatus::allowed,
                errors,
            )),
            "start_time" => self.start_time = time(v, f, errors),
            "end_time" => self.end_time = time(v, f, errors),
            "outcome_status" => {
                self.outcome_status =
                    enums(v, f, OutcomeStatus::parse, OutcomeStatus::allowed, errors).pop()
            }
            "environment" => self.environment = one(v, f, errors),
            "service" => self.service = one(v, f, errors),
            "stream_id" => self.stream_id = one(v, f, errors),
            "q" => self.text = one(v, f, errors),
            _ => match (EventPart::parse(key), CorrelationKey::parse(key)) {
                (Some(part), _) => self.parse_part(part, v, f, errors),
                (None, Some(k)) => {
                    if let Some(val) = one(v, f, errors) {
                        self.keys.push((k, val));
                    }
                }
                (None, None) => return Parsed::Unknown,
            },
        }
        Parsed::Filter
    }

    /// The checks across fields, once every key is parsed.
    pub fn check(&self, errors: &mut Vec<FieldError>) {
        if let (Some(s), Some(e)) = (self.start_time, self.end_time)
            && s.unix_nanos() > e.unix_nanos()
        {
            errors.push(error(
                "/start_time",
                ErrorKind::InvalidValue,
                "start_time is after end_time".into(),
            ));
        }
    }

    /// `actor: {...}`, `object: {...}`, `context: {...}`, `outcome: {...}`:
    /// each sub-key a correlation key of the part, a named field
    /// (`outcome.status`, `context.environment`), or any other key.
    fn parse_part(&mut self, part: EventPart, v: &Value, f: &str, errors: &mut Vec<FieldError>) {
        let Some(m) = v.as_object() else {
            if !v.is_null() {
                errors.push(error(
                    f,
                    ErrorKind::InvalidType,
                    format!(
                        "expected an object of key: value filters, got {}",
                        type_name(v)
                    ),
                ));
            }
            return;
        };
        for (sub, sv) in m {
            let sf = pointer_push(f, sub);
            let Some(val) = one(sv, &sf, errors) else {
                continue;
            };
            match (part, sub.as_str()) {
                (EventPart::Outcome, "status") => match OutcomeStatus::parse(&val) {
                    Some(s) => self.outcome_status = Some(s),
                    None => errors.push(error(
                        &sf,
                        ErrorKind::InvalidValue,
                        format!("expected one of: {}", OutcomeStatus::allowed()),
                    )),
                },
                (EventPart::Context, "environment") => self.environment = Some(val),
                (EventPart::Context, "service") => self.service = Some(val),
                (EventPart::Outcome, _) => self.push_field(part, sub, val),
                (_, _) => match CorrelationKey::parse(sub).filter(|k| part.holds_key(*k)) {
                    Some(k) => self.keys.push((k, val)),
                    None => self.push_field(part, sub, val),
                },
            }
        }
    }

    fn push_field(&mut self, part: EventPart, key: &str, value: String) {
        self.fields.push(FieldFilter {
            part,
            key: key.to_string(),
            value,
        });
    }
}

/// The error for a body that is not an object of filters.
pub fn not_an_object(v: &Value) -> FieldError {
    error(
        "",
        ErrorKind::InvalidType,
        format!("expected an object of filters, got {}", type_name(v)),
    )
}

/// The error for a key that is no filter; `known` lists the keys that are.
pub fn unknown_filter(key: &str, known: &str) -> FieldError {
    error(
        &pointer_push("", key),
        ErrorKind::InvalidValue,
        format!("unknown filter; known filters: {known}"),
    )
}

/// Parses `body`'s keys as filters, handing each key the filter does not
/// know to `other` first (paging, ordering); a key neither takes is
/// unknown, and the message lists [`EventFilter::FIELDS`] then
/// `other_fields`. Errors come in the body's key order, then the filter's
/// own cross-field checks.
pub fn parse_with(
    body: &Map<String, Value>,
    other_fields: &str,
    mut other: impl FnMut(&str, &Value, &mut Vec<FieldError>) -> Parsed,
    errors: &mut Vec<FieldError>,
) -> EventFilter {
    let mut filter = EventFilter::default();
    let known = format!("{}, {other_fields}", EventFilter::FIELDS);
    for (key, value) in body {
        if filter.parse_field(key, value, errors) == Parsed::Unknown
            && other(key, value, errors) == Parsed::Unknown
        {
            errors.push(unknown_filter(key, &known));
        }
    }
    filter.check(errors);
    filter
}

fn error(field: &str, kind: ErrorKind, message: String) -> FieldError {
    FieldError {
        field: field.to_string(),
        message,
        kind,
    }
}

/// A string or a list of strings.
fn strings(v: &Value, field: &str, errors: &mut Vec<FieldError>) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) => Some(s.clone()),
                other => {
                    errors.push(error(
                        &format!("{field}/{i}"),
                        ErrorKind::InvalidType,
                        format!("expected a string, got {}", type_name(other)),
                    ));
                    None
                }
            })
            .collect(),
        other => {
            errors.push(error(
                field,
                ErrorKind::InvalidType,
                format!(
                    "expected a string or an array of strings, got {}",
                    type_name(other)
                ),
            ));
            Vec::new()
        }
    }
}

/// A value of a closed set, or a list of them.
fn enums<T>(
    v: &Value,
    field: &str,
    parse: fn(&str) -> Option<T>,
    allowed: fn() -> String,
    errors: &mut Vec<FieldError>,
) -> Vec<T> {
    strings(v, field, errors)
        .into_iter()
        .filter_map(|s| {
            let p = parse(&s);
            if p.is_none() {
                errors.push(error(
                    field,
                    ErrorKind::InvalidValue,
                    format!("`{s}` is not allowed; expected one of: {}", allowed()),
                ));
            }
            p
        })
        .collect()
}

/// One string (an integer is taken as its digits).
fn one(v: &Value, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        other => {
            errors.push(error(
                field,
                ErrorKind::InvalidType,
                format!("expected a string, got {}", type_name(other)),
            ));
            None
        }
    }
}

/// An RFC 3339 time.
fn time(v: &Value, field: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    let s = one(v, field, errors)?;
    Timestamp::parse(&s)
        .map_err(|e| errors.push(error(field, ErrorKind::InvalidValue, e)))
        .ok()
}
