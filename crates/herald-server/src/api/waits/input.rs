//! A wait's request body → a [`NewWait`]'s parts, every bad field named at
//! once as a JSON pointer: the type patterns, each CEL filter compiled
//! over `event` and `wait` (its line and column on error), the timeout
//! (seconds from now or an RFC 3339 time, in the future and within the
//! configured maximum), the lookback, and the callback URL against the
//! delivery network guard.

use herald_core::error::{pointer_push, type_name};
use herald_core::{ErrorKind, FieldError, Timestamp};
use herald_filter::{Filter, FilterError};
use herald_registry::TypePattern;
use herald_store::{WaitAlternative, WaitSpec};
use herald_workers::delivery::network::{AllowedNetworks, WebhookTarget};
use herald_workers::delivery::signature::WebhookSecret;
use herald_workers::waits::index::WAIT_VARIABLE;
use serde_json::{Map, Value};

use crate::api::subscriptions::input::check_target;

/// The fields a wait's body may have.
const FIELDS: &str = "workflow_instance_id, event_type, filter, any_of, context, timeout, \
lookback, callback_url, webhook_secret";
/// The most alternatives one wait may list.
pub const MAX_ALTERNATIVES: usize = 20;
/// The longest `workflow_instance_id`, in characters.
const MAX_WORKFLOW_CHARS: usize = 200;

/// The limits a body is checked against (from the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_timeout_secs: u64,
    pub max_lookback_secs: u64,
}

/// A valid wait body.
#[derive(Debug)]
pub struct Input {
    pub workflow_instance_id: String,
    pub spec: WaitSpec,
    pub timeout_at: Timestamp,
    pub callback_url: Option<String>,
    /// The secret the client gave; `None` with a callback URL: generate one.
    pub secret: Option<WebhookSecret>,
}

fn error(field: &str, kind: ErrorKind, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
        kind,
    }
}

/// Parses and checks a wait body at `now`: every field, then the callback
/// URL's addresses against `allowed`.
pub async fn parse(
    body: &Value,
    now: Timestamp,
    limits: Limits,
    allowed: &AllowedNetworks,
) -> Result<Input, Vec<FieldError>> {
    let Value::Object(m) = body else {
        return Err(vec![error(
            "",
            ErrorKind::InvalidType,
            format!("expected a JSON object, got {}", type_name(body)),
        )]);
    };
    let mut errors = Vec::new();
    for key in m.keys() {
        if !FIELDS.split(", ").any(|f| f == key)
            && !["wait_id", "status", "created_at"].contains(&key.as_str())
        {
            errors.push(error(
                &pointer_push("", key),
                ErrorKind::InvalidValue,
                format!("unknown field; known fields: {FIELDS}"),
            ));
        }
    }
    let workflow = match m.get("workflow_instance_id") {
        None | Some(Value::Null) => {
            errors.push(error(
                "/workflow_instance_id",
                ErrorKind::Missing,
                "required",
            ));
            None
        }
        Some(Value::String(s))
            if !s.trim().is_empty() && s.chars().count() <= MAX_WORKFLOW_CHARS =>
        {
            Some(s.clone())
        }
        Some(Value::String(_)) => {
            errors.push(error(
                "/workflow_instance_id",
                ErrorKind::InvalidValue,
                format!("expected 1 to {MAX_WORKFLOW_CHARS} characters, not only spaces"),
            ));
            None
        }
        Some(other) => {
            errors.push(error(
                "/workflow_instance_id",
                ErrorKind::InvalidType,
                format!("expected a string, got {}", type_name(other)),
            ));
            None
        }
    };
    let any_of = alternatives(m, &mut errors);
    let context = m
        .get("context")
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    let timeout_at = timeout(m.get("timeout"), now, limits.max_timeout_secs, &mut errors);
    let lookback = lookback(m.get("lookback"), limits.max_lookback_secs, &mut errors);
    let target = match m.get("callback_url") {
        None | Some(Value::Null) => None,
        Some(Value::String(url)) => match WebhookTarget::parse(url) {
            Ok(t) => Some((url.clone(), t)),
            Err(e) => {
                errors.push(error(
                    "/callback_url",
                    ErrorKind::InvalidValue,
                    e.to_string(),
                ));
                None
            }
        },
        Some(other) => {
            errors.push(error(
                "/callback_url",
                ErrorKind::InvalidType,
                format!("expected an http or https URL, got {}", type_name(other)),
            ));
            None
        }
    };
    let secret = match m.get("webhook_secret") {
        None | Some(Value::Null) => None,
        Some(_) if !matches!(m.get("callback_url"), Some(Value::String(_))) => {
            errors.push(error(
                "/webhook_secret",
                ErrorKind::NotAllowed,
                "a webhook_secret signs the callback; give it with a callback_url",
            ));
            None
        }
        Some(Value::String(s)) => match WebhookSecret::parse(s) {
            Ok(secret) => Some(secret),
            Err(e) => {
                errors.push(error(
                    "/webhook_secret",
                    ErrorKind::InvalidValue,
                    e.to_string(),
                ));
                None
            }
        },
        Some(other) => {
            errors.push(error(
                "/webhook_secret",
                ErrorKind::InvalidType,
                format!("expected a whsec_ secret, got {}", type_name(other)),
            ));
            None
        }
    };
    if let Some((_, target)) = &target
        && let Err(e) = check_target(target, allowed, "/callback_url").await
    {
        errors.push(e);
    }
    match (workflow, any_of, timeout_at, lookback) {
        (Some(workflow_instance_id), Some(any_of), Some(timeout_at), Some(lookback_secs))
            if errors.is_empty() =>
        {
            Ok(Input {
                workflow_instance_id,
                spec: WaitSpec {
                    any_of,
                    context,
                    lookback_secs,
                },
                timeout_at,
                callback_url: target.map(|(url, _)| url),
                secret,
            })
        }
        _ => Err(errors),
    }
}

/// The alternatives: `event_type` (+ `filter`) at the top, or `any_of`.
fn alternatives(
    m: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<WaitAlternative>> {
    let top = m.contains_key("event_type") || m.contains_key("filter");
    match (m.get("any_of"), top) {
        (Some(_), true) => {
            errors.push(error(
                "/any_of",
                ErrorKind::NotAllowed,
                "give event_type (and filter) or any_of, not both",
            ));
            None
        }
        (None | Some(Value::Null), _) => alternative(m, "", errors).map(|a| vec![a]),
        (Some(Value::Array(items)), false) => {
            if items.is_empty() || items.len() > MAX_ALTERNATIVES {
                errors.push(error(
                    "/any_of",
                    ErrorKind::InvalidValue,
                    format!("expected 1 to {MAX_ALTERNATIVES} alternatives"),
                ));
                return None;
            }
            let before = errors.len();
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("/any_of/{i}");
                match item {
                    Value::Object(alt) => {
                        for key in alt
                            .keys()
                            .filter(|k| !["event_type", "filter"].contains(&k.as_str()))
                        {
                            errors.push(error(
                                &pointer_push(&at, key),
                                ErrorKind::InvalidValue,
                                "unknown field; an alternative has event_type and filter",
                            ));
                        }
                        if let Some(a) = alternative(alt, &at, errors) {
                            out.push(a);
                        }
                    }
                    other => errors.push(error(
                        &at,
                        ErrorKind::InvalidType,
                        format!(
                            "expected an object with event_type and filter, got {}",
                            type_name(other)
                        ),
                    )),
                }
            }
            (errors.len() == before).then_some(out)
        }
        (Some(other), false) => {
            errors.push(error(
                "/any_of",
                ErrorKind::InvalidType,
                format!(
                    "expected an array of alternatives, got {}",
                    type_name(other)
                ),
            ));
            None
        }
    }
}

/// One alternative at `at`: its type pattern and its filter compiled.
fn alternative(
    m: &Map<String, Value>,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<WaitAlternative> {
    let type_at = format!("{at}/event_type");
    let event_type = match m.get("event_type") {
        None | Some(Value::Null) => {
            errors.push(error(
                &type_at,
                ErrorKind::Missing,
                "required: an event type or a pattern (order.*, order.>)",
            ));
            None
        }
        Some(Value::String(s)) => match TypePattern::parse(s) {
            Ok(_) => Some(s.clone()),
            Err(e) => {
                errors.push(error(&type_at, ErrorKind::InvalidValue, e));
                None
            }
        },
        Some(other) => {
            errors.push(error(
                &type_at,
                ErrorKind::InvalidType,
                format!("expected a string, got {}", type_name(other)),
            ));
            None
        }
    };
    let filter_at = format!("{at}/filter");
    let filter = match m.get("filter") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(src)) => match Filter::compile_with(src, &[WAIT_VARIABLE]) {
            Ok(_) => Ok(Some(src.clone())),
            Err(e) => {
                errors.push(error(
                    &filter_at,
                    match e {
                        FilterError::TooLong { .. } => ErrorKind::TooLarge,
                        _ => ErrorKind::InvalidValue,
                    },
                    match e {
                        FilterError::UnknownVariable { name, line, column } => format!(
                            "line {line}, column {column}: unknown variable `{name}`; a wait's filter reads the event as `event` and the wait as `wait` (wait.context)"
                        ),
                        e => e.to_string(),
                    },
                ));
                Err(())
            }
        },
        Some(other) => {
            errors.push(error(
                &filter_at,
                ErrorKind::InvalidType,
                format!(
                    "expected a CEL expression as a string, got {}",
                    type_name(other)
                ),
            ));
            Err(())
        }
    };
    Some(WaitAlternative {
        event_type: event_type?,
        filter: filter.ok()?,
    })
}

/// `timeout`: seconds from `now` (a positive number) or an RFC 3339 time
/// after `now`; within `max_secs` either way.
fn timeout(
    v: Option<&Value>,
    now: Timestamp,
    max_secs: u64,
    errors: &mut Vec<FieldError>,
) -> Option<Timestamp> {
    let bad = |errors: &mut Vec<FieldError>, kind, message: String| {
        errors.push(error("/timeout", kind, message));
        None
    };
    let now_us = now.unix_micros();
    let at_us = match v {
        None | Some(Value::Null) => {
            return bad(
                errors,
                ErrorKind::Missing,
                "required: seconds from now, or an RFC 3339 time".into(),
            );
        }
        Some(Value::Number(n)) => match n.as_f64() {
            Some(secs) if secs > 0.0 && secs <= max_secs as f64 => {
                now_us.saturating_add((secs * 1_000_000.0) as i64)
            }
            Some(secs) if secs <= 0.0 => {
                return bad(
                    errors,
                    ErrorKind::InvalidValue,
                    format!("{secs} seconds: a timeout must be positive"),
                );
            }
            _ => {
                return bad(
                    errors,
                    ErrorKind::InvalidValue,
                    format!("at most {max_secs} seconds (wait_max_timeout_secs)"),
                );
            }
        },
        Some(Value::String(s)) => match Timestamp::parse(s) {
            Ok(at) if at.unix_micros() <= now_us => {
                return bad(
                    errors,
                    ErrorKind::InvalidValue,
                    format!("{s} is not in the future"),
                );
            }
            Ok(at) if at.unix_micros() - now_us > (max_secs as i64).saturating_mul(1_000_000) => {
                return bad(
                    errors,
                    ErrorKind::InvalidValue,
                    format!("{s} is more than {max_secs} seconds away (wait_max_timeout_secs)"),
                );
            }
            Ok(at) => at.unix_micros(),
            Err(e) => {
                return bad(
                    errors,
                    ErrorKind::InvalidValue,
                    format!("not an RFC 3339 time: {e}"),
                );
            }
        },
        Some(other) => {
            return bad(
                errors,
                ErrorKind::InvalidType,
                format!(
                    "expected seconds (a number) or an RFC 3339 time (a string), got {}",
                    type_name(other)
                ),
            );
        }
    };
    Timestamp::from_parts(
        at_us.div_euclid(1_000_000),
        (at_us.rem_euclid(1_000_000) * 1_000) as u32,
        0,
    )
    .ok()
}

/// `lookback`: whole seconds, 0 (the default) up to `max_secs`.
fn lookback(v: Option<&Value>, max_secs: u64, errors: &mut Vec<FieldError>) -> Option<u64> {
    match v {
        None | Some(Value::Null) => Some(0),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(secs) if secs <= max_secs => Some(secs),
            _ => {
                errors.push(error(
                    "/lookback",
                    ErrorKind::InvalidValue,
                    format!("expected whole seconds, 0 to {max_secs} (wait_max_lookback_secs)"),
                ));
                None
            }
        },
        Some(other) => {
            errors.push(error(
                "/lookback",
                ErrorKind::InvalidType,
                format!(
                    "expected whole seconds (a number), got {}",
                    type_name(other)
                ),
            ));
            None
        }
    }
}
