//! A subscription's request body → a [`SubscriptionSpec`] (and, on
//! create, the secret the client chose), every bad field named at once as
//! a JSON pointer. The callback URL's host is resolved and each address
//! checked against the delivery network guard, so a webhook that could
//! reach a private address is refused when it is saved.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use herald_core::error::{pointer_push, type_name};
use herald_core::{ErrorKind, FieldError};
use herald_filter::{Filter, FilterError, Selector};
use herald_store::SubscriptionSpec;
use herald_workers::delivery::network::{AllowedNetworks, Refusal, TargetHost, WebhookTarget};
use herald_workers::delivery::schedule::RetryPolicy;
use herald_workers::delivery::signature::WebhookSecret;
use serde_json::{Map, Value};

/// The longest `subscriber_name`, in characters.
const MAX_NAME_CHARS: usize = 200;
/// How long resolving the callback URL's host may take when saving.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// The subscriber types Herald delivers to.
pub const SUBSCRIBER_TYPES: &[&str] = &["webhook"];
/// The delivery orders a subscription can ask for.
pub const ORDERINGS: &[&str] = &["none", "stream"];
/// How a delivery's body is written; the first is the default.
pub const PAYLOAD_FORMATS: &[&str] = &["json", "cloudevents"];
/// Header names a subscription cannot set: hop-by-hop headers, those that
/// describe the body or the connection, and those Herald's deliveries
/// carry themselves (`webhook-*`, `herald-*`, `traceparent`).
const RESERVED_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "traceparent",
];

/// Fields of the answer a client may send back unchanged (a GET's body
/// edited and PUT); they are ignored.
const READ_ONLY: &[&str] = &[
    "subscription_id",
    "created_at",
    "updated_at",
    "previous_secret_valid_until",
];

const FIELDS: &str = "subscriber_name, subscriber_type, event_types, event_sources, event_categories, \
callback_url, webhook_secret, retry_policy, filter, ordering, rate_limit, headers, enabled, payload_format";

/// Whether the body may carry `webhook_secret`: on create, not on PUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretField {
    Allowed,
    Refused,
}

/// A valid subscription body.
#[derive(Debug)]
pub struct Input {
    pub spec: SubscriptionSpec,
    /// The secret the client gave; `None`: generate one.
    pub secret: Option<WebhookSecret>,
}

/// Checks a `filter` expression on its own: it must compile as CEL over
/// the event (the error names its line and column).
pub fn check_filter(expr: &str) -> Result<(), FieldError> {
    Filter::compile(expr).map(|_| ()).map_err(|e| FieldError {
        field: "/filter".into(),
        kind: match e {
            FilterError::TooLong { .. } => ErrorKind::TooLarge,
            _ => ErrorKind::InvalidValue,
        },
        message: e.to_string(),
    })
}

fn error(field: &str, kind: ErrorKind, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
        kind,
    }
}

/// Parses and checks a subscription body: every field, then the callback
/// URL's addresses (resolved with the system resolver) against `allowed`.
pub async fn parse(
    body: &Value,
    secret_field: SecretField,
    allowed: &AllowedNetworks,
) -> Result<Input, Vec<FieldError>> {
    let (fields, mut errors) = parse_fields(body, secret_field);
    if let Some(target) = &fields.target
        && let Err(e) = check_target(target, allowed, "/callback_url").await
    {
        errors.push(e);
    }
    match fields.spec {
        Some(spec) if errors.is_empty() => Ok(Input {
            spec,
            secret: fields.secret,
        }),
        _ => Err(errors),
    }
}

/// The fields of a body, checked without IO; `spec` is `None` when any was
/// bad.
struct Fields {
    spec: Option<SubscriptionSpec>,
    secret: Option<WebhookSecret>,
    target: Option<WebhookTarget>,
}

fn parse_fields(body: &Value, secret_field: SecretField) -> (Fields, Vec<FieldError>) {
    let mut errors = Vec::new();
    let none = Fields {
        spec: None,
        secret: None,
        target: None,
    };
    let Value::Object(m) = body else {
        errors.push(error(
            "",
            ErrorKind::InvalidType,
            format!("expected an object, got {}", type_name(body)),
        ));
        return (none, errors);
    };
    for k in m.keys() {
        let known = FIELDS.split(", ").any(|f| f == k) || READ_ONLY.contains(&k.as_str());
        if !known {
            errors.push(error(
                &pointer_push("", k),
                ErrorKind::InvalidValue,
                format!("unknown field; known: {FIELDS}"),
            ));
        }
    }
    let name = match m.get("subscriber_name") {
        None | Some(Value::Null) => {
            errors.push(error("/subscriber_name", ErrorKind::Missing, "required"));
            None
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(error(
                "/subscriber_name",
                ErrorKind::InvalidValue,
                "must not be empty",
            ));
            None
        }
        Some(Value::String(s))
            if s.chars().count() > MAX_NAME_CHARS || s.chars().any(char::is_control) =>
        {
            errors.push(error(
                "/subscriber_name",
                ErrorKind::InvalidValue,
                format!("at most {MAX_NAME_CHARS} characters, none of them control characters"),
            ));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            errors.push(error(
                "/subscriber_name",
                ErrorKind::InvalidType,
                format!("expected a string, got {}", type_name(other)),
            ));
            None
        }
    };
    let subscriber_type = one_of(m, "subscriber_type", SUBSCRIBER_TYPES, &mut errors);
    let ordering = one_of(m, "ordering", ORDERINGS, &mut errors);
    let payload_format = one_of(m, "payload_format", PAYLOAD_FORMATS, &mut errors);
    // Which events: the one selector parser subscriptions, processors and
    // waits share (type patterns, sources, categories, the CEL filter
    // compiled, with its line and column on error).
    let selector = Selector::from_json(body, "")
        .map_err(|e| errors.extend(e))
        .ok();
    let target = match m.get("callback_url") {
        None | Some(Value::Null) => {
            errors.push(error("/callback_url", ErrorKind::Missing, "required"));
            None
        }
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
    let secret = match (m.get("webhook_secret"), secret_field) {
        (None | Some(Value::Null), _) => None,
        (Some(_), SecretField::Refused) => {
            errors.push(error(
                "/webhook_secret",
                ErrorKind::NotAllowed,
                "a PUT cannot set the secret; rotate it with POST /api/v1/events/subscriptions/{subscription_id}/secret/rotate",
            ));
            None
        }
        (Some(Value::String(s)), SecretField::Allowed) => match WebhookSecret::parse(s) {
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
        (Some(other), SecretField::Allowed) => {
            errors.push(error(
                "/webhook_secret",
                ErrorKind::InvalidType,
                format!("expected a string `whsec_…`, got {}", type_name(other)),
            ));
            None
        }
    };
    let retry_policy = match m.get("retry_policy") {
        None | Some(Value::Null) => Some(RetryPolicy::default()),
        Some(v) => RetryPolicy::from_json(v, "/retry_policy")
            .map_err(|e| errors.extend(e))
            .ok(),
    };
    let rate_limit = match m.get("rate_limit") {
        None | Some(Value::Null) => Some(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(r) if r.is_finite() && r > 0.0 => Some(Some(r)),
            _ => {
                errors.push(error(
                    "/rate_limit",
                    ErrorKind::InvalidValue,
                    "deliveries per second: a positive number",
                ));
                None
            }
        },
        Some(other) => {
            errors.push(error(
                "/rate_limit",
                ErrorKind::InvalidType,
                format!(
                    "expected deliveries per second as a number, got {}",
                    type_name(other)
                ),
            ));
            None
        }
    };
    let headers = headers(m, &mut errors);
    let enabled = match m.get("enabled") {
        None | Some(Value::Null) => Some(true),
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            errors.push(error(
                "/enabled",
                ErrorKind::InvalidType,
                format!("expected true or false, got {}", type_name(other)),
            ));
            None
        }
    };
    let spec = (|| {
        Some(SubscriptionSpec {
            subscriber_name: name?,
            subscriber_type: subscriber_type?,
            event_types: selector
                .as_ref()?
                .event_types()
                .iter()
                .map(|p| p.as_str().to_string())
                .collect(),
            event_sources: selector
                .as_ref()?
                .event_sources()
                .iter()
                .map(|e| e.as_str().to_string())
                .collect(),
            event_categories: selector
                .as_ref()?
                .event_categories()
                .iter()
                .map(|c| c.as_str().to_string())
                .collect(),
            callback_url: target.as_ref()?.0.clone(),
            retry_policy: retry_policy?.to_json(),
            filter: selector.as_ref()?.filter().map(|f| f.source().to_string()),
            ordering: ordering?,
            rate_limit: rate_limit?,
            headers: headers?,
            enabled: enabled?,
            payload_format: payload_format?,
        })
    })();
    (
        Fields {
            spec,
            secret,
            target: target.map(|(_, t)| t),
        },
        errors,
    )
}

/// A string field from a closed set; its first value when absent.
fn one_of(
    m: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let at = pointer_push("", key);
    match m.get(key) {
        None | Some(Value::Null) => Some(allowed[0].to_string()),
        Some(Value::String(s)) if allowed.contains(&s.as_str()) => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.push(error(
                &at,
                ErrorKind::InvalidValue,
                format!("expected one of: {}", allowed.join(", ")),
            ));
            None
        }
        Some(other) => {
            errors.push(error(
                &at,
                ErrorKind::InvalidType,
                format!(
                    "expected a string ({}), got {}",
                    allowed.join(", "),
                    type_name(other)
                ),
            ));
            None
        }
    }
}

/// `headers`: an object of header names to string values.
fn headers(
    m: &Map<String, Value>,
    errors: &mut Vec<FieldError>,
) -> Option<BTreeMap<String, String>> {
    let object = match m.get("headers") {
        None | Some(Value::Null) => return Some(BTreeMap::new()),
        Some(Value::Object(o)) => o,
        Some(other) => {
            errors.push(error(
                "/headers",
                ErrorKind::InvalidType,
                format!(
                    "expected an object of header names to string values, got {}",
                    type_name(other)
                ),
            ));
            return None;
        }
    };
    let before = errors.len();
    let mut out = BTreeMap::new();
    for (name, value) in object {
        let at = pointer_push("/headers", name);
        let lower = name.to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(error(
                &at,
                ErrorKind::InvalidValue,
                "not a valid HTTP header name",
            ));
        } else if RESERVED_HEADERS.contains(&lower.as_str())
            || lower.starts_with("webhook-")
            || lower.starts_with("herald-")
        {
            errors.push(error(
                &at,
                ErrorKind::NotAllowed,
                "Herald sets this header itself (hop-by-hop, body, webhook-*, herald-* and traceparent headers cannot be overridden)",
            ));
        }
        match value {
            Value::String(v) if HeaderValue::from_str(v).is_ok() => {
                if out.insert(lower, v.clone()).is_some() {
                    errors.push(error(
                        &at,
                        ErrorKind::InvalidValue,
                        "the same header twice (names are case-insensitive)",
                    ));
                }
            }
            Value::String(_) => errors.push(error(
                &at,
                ErrorKind::InvalidValue,
                "not a valid header value (visible ASCII, spaces and tabs)",
            )),
            other => errors.push(error(
                &at,
                ErrorKind::InvalidType,
                format!("expected a string, got {}", type_name(other)),
            )),
        }
    }
    (errors.len() == before).then_some(out)
}

/// Resolves a webhook URL's host (a literal address as it is) and checks
/// every address it gives; a refusal names the field at `at`.
pub(crate) async fn check_target(
    target: &WebhookTarget,
    allowed: &AllowedNetworks,
    at: &str,
) -> Result<(), FieldError> {
    let addresses: Vec<IpAddr> = match &target.host {
        TargetHost::Address(ip) => vec![*ip],
        TargetHost::Name(name) => {
            match tokio::time::timeout(
                RESOLVE_TIMEOUT,
                tokio::net::lookup_host((name.as_str(), target.port)),
            )
            .await
            {
                Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
                Ok(Err(e)) => {
                    return Err(refused(
                        Refusal::Unresolved {
                            host: name.clone(),
                            reason: e.to_string(),
                        },
                        at,
                    ));
                }
                Err(_) => {
                    return Err(refused(
                        Refusal::Unresolved {
                            host: name.clone(),
                            reason: format!("no answer within {}s", RESOLVE_TIMEOUT.as_secs()),
                        },
                        at,
                    ));
                }
            }
        }
    };
    target
        .check(&addresses, allowed)
        .map(|_| ())
        .map_err(|r| refused(r, at))
}

fn refused(r: Refusal, at: &str) -> FieldError {
    let message = match &r {
        Refusal::NotPublic { .. } => format!(
            "{r} (the setting delivery_allowed_networks in herald.toml, or the --delivery-allowed-networks flag)"
        ),
        _ => r.to_string(),
    };
    error(at, ErrorKind::NotAllowed, message)
}

#[cfg(test)]
#[path = "input_tests.rs"]
mod tests;
