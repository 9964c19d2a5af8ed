//! `/api/v1/events/*`: create, batch, get and query (seed 003 §3.1–3.2,
//! DESIGN.md §5). Ingest answers only after the store's commit; responses
//! carry seed 003's `EventResponse` fields beside the canonical ones.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::correlation::CorrelationKey;
use herald_core::decode::json_error_message;
use herald_core::error::{pointer_push, type_name};
use herald_core::{
    CanonicalEvent, Category, ErrorKind, EventCategory, EventId, EventSource, EventStatus,
    FieldError, FieldWarning, OutcomeStatus, Processed, ProcessingContext, TenantId, Timestamp,
    ValidationResult,
};
use herald_store::{
    AppendOutcome, Cursor, EventJson, EventQuery, NewEvent, Order, Scope, StoredEvent,
};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::App;
use crate::audit::AuditSlot;
use crate::auth::Principal;
use crate::body;
use crate::problem::ApiError;

/// Seed 003's `EventResponse` plus the canonical event.
#[derive(Debug, Serialize)]
pub struct EventResponse<'a> {
    #[serde(flatten)]
    pub event: &'a CanonicalEvent,
    /// Seed 003's top-level `user_id` (= `actor.user_id`); `null` when none.
    pub user_id: Option<&'a str>,
    /// Seed 003's answer always has `event_category`: `null` here when the
    /// event has none (the canonical event then leaves the key out).
    #[serde(
        rename = "event_category",
        skip_serializing_if = "std::ops::Not::not",
        serialize_with = "null"
    )]
    pub no_event_category: bool,
    /// Seed 003's `created_at` (= `processing_timestamp`).
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_ms: Option<f64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub warnings: &'a [FieldWarning],
}

impl<'a> EventResponse<'a> {
    pub fn new(event: &'a CanonicalEvent, warnings: &'a [FieldWarning]) -> Self {
        EventResponse {
            event,
            // As stored in the `user_id` column: empty means none.
            user_id: event.user_id().filter(|u| !u.is_empty()),
            no_event_category: event.event_category.is_none(),
            created_at: event.processing_timestamp,
            processed_at: None,
            processing_ms: None,
            warnings,
        }
    }

    pub fn stored(s: &'a StoredEvent) -> Self {
        EventResponse {
            processed_at: s.processed_at,
            processing_ms: s.processing_ms,
            ..Self::new(&s.event, &[])
        }
    }
}

fn null<S: serde::Serializer>(_: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// RFC 7240 `Prefer: return=minimal`: acknowledge with ids, not whole events
/// (a 1,000-event batch answer shrinks from ~1 MB to ~60 KB).
fn wants_minimal(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
        })
    })
}

fn minimal_applied(mut res: Response) -> Response {
    res.headers_mut().insert(
        "preference-applied",
        axum::http::HeaderValue::from_static("return=minimal"),
    );
    res
}

/// What the core needs to know about this request: tenant, its hasher,
/// receive time, and the W3C `traceparent` header.
static IDS: herald_core::UuidV7Ids = herald_core::UuidV7Ids::new();

fn processing_context<'a>(
    tenant_id: &'a TenantId,
    tenant: &'a crate::TenantContext,
    headers: &'a HeaderMap,
) -> ProcessingContext<'a> {
    ProcessingContext {
        tenant_id,
        email_hasher: &tenant.hasher,
        processing_timestamp: Timestamp::now(),
        ids: &IDS,
        traceparent: headers.get("traceparent").and_then(|v| v.to_str().ok()),
    }
}

/// Turns one event's rejection into the problem it answers with.
fn rejection(result: ValidationResult) -> ApiError {
    let n = result.errors.len();
    if result.is_too_large() {
        ApiError::too_large("the event is over a size limit", result.errors)
    } else {
        ApiError::invalid(
            format!(
                "the event has {n} invalid field{}",
                if n == 1 { "" } else { "s" }
            ),
            result.errors,
        )
    }
}

/// 403 and a security audit record when the body names a tenant other
/// than the key's.
fn check_body_tenant(
    slot: &AuditSlot,
    own: &TenantId,
    named: Option<&str>,
) -> Result<(), ApiError> {
    match named {
        Some(t) if t != own.as_str() => {
            let named: String = t.chars().take(64).collect();
            slot.security_violation(format!("body named tenant `{named}`"));
            Err(ApiError::forbidden(
                "the body's tenant_id is not the tenant of this API key",
            ))
        }
        _ => Ok(()),
    }
}

/// The problem for an event the processor refused. A body naming another
/// tenant is a 403 (and a security record) whatever else is wrong with it,
/// so its `tenant_id` is read on its own here, off the happy path.
fn reject(slot: &AuditSlot, own: &TenantId, bytes: &[u8], result: ValidationResult) -> ApiError {
    #[derive(serde::Deserialize)]
    struct Named {
        tenant_id: Option<Value>,
    }
    let named = serde_json::from_slice::<Named>(bytes)
        .ok()
        .and_then(|n| match n.tenant_id {
            Some(Value::String(t)) => Some(t),
            _ => None,
        });
    match check_body_tenant(slot, own, named.as_deref()) {
        Err(forbidden) => forbidden,
        Ok(()) => rejection(result),
    }
}

pub async fn create(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Ingest)?;
    let _room = app.admission.admit(1).await?;
    body::require_json(&headers)?;
    // A little slack over the event limit so the 413 can say the real size;
    // beyond the slack it states the limit all the same.
    let limit = app.config.max_event_bytes;
    let bytes = body::read_with_slack(&headers, body, limit, limit.saturating_mul(2)).await?;
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let ctx = processing_context(&key.tenant_id, &tenant, &headers);
    let processed = tenant
        .processor
        .process_json(&bytes, &ctx)
        .map_err(|result| reject(&slot, &key.tenant_id, &bytes, result))?;
    check_body_tenant(&slot, &key.tenant_id, processed.body_tenant_id.as_deref())?;
    let Processed {
        event,
        warnings,
        expected_version,
        ..
    } = processed;
    let outcome = app
        .store
        .append(vec![NewEvent {
            event,
            expected_version,
        }])
        .await?
        .pop();
    app.after_commit();
    let minimal_create = wants_minimal(&headers);
    match outcome {
        Some(AppendOutcome::Stored(e)) if minimal_create => Ok(minimal_applied(json_response(
            StatusCode::CREATED,
            &serde_json::json!({"event_id": e.event_id, "status": e.status, "created_at": e.processing_timestamp}),
        ))),
        Some(AppendOutcome::Stored(e)) => Ok(json_response(
            StatusCode::CREATED,
            &EventResponse::new(&e, &warnings),
        )),
        Some(AppendOutcome::Duplicate(first)) => Ok(json_response(
            StatusCode::OK,
            &EventResponse::stored(&first),
        )),
        Some(AppendOutcome::VersionConflict {
            stream_id,
            expected,
            actual,
        }) => Err(ApiError::conflict(format!(
            "stream `{stream_id}` is at version {actual}, not the expected_version {expected}"
        ))),
        None => Err(ApiError::internal(
            "store returned no outcome for one event",
        )),
    }
}

fn field_error(field: &str, kind: ErrorKind, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
        kind,
    }
}

/// Malformed JSON, pointing at the position.
fn not_json(detail: &str, e: &serde_json::Error) -> ApiError {
    ApiError::invalid(
        detail,
        vec![field_error("", ErrorKind::Syntax, json_error_message(e))],
    )
}

/// Splits `{"events": [...]}` or `[...]` into the items' raw JSON, with the
/// pointer to the array (`/events` or the whole body). A wrapper's
/// `tenant_id` goes to `check_tenant` before anything else is judged (a
/// body naming another tenant is a 403 whatever else is wrong with it);
/// other keys of the wrapper are refused rather than dropped.
fn split_batch(
    bytes: &[u8],
    check_tenant: impl FnOnce(Option<&str>) -> Result<(), ApiError>,
) -> Result<(Vec<&RawValue>, &'static str), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice::<Vec<&RawValue>>(bytes)
            .map(|items| (items, ""))
            .map_err(|e| not_json("the batch is not valid JSON", &e)),
        Some(b'{') => {
            let wrapper =
                serde_json::from_slice::<std::collections::BTreeMap<String, &RawValue>>(bytes)
                    .map_err(|e| not_json("the batch is not valid JSON", &e))?;
            let tenant = wrapper
                .get("tenant_id")
                .map(|t| serde_json::from_str::<Value>(t.get()));
            check_tenant(match &tenant {
                Some(Ok(Value::String(t))) => Some(t.as_str()),
                _ => None,
            })?;
            let mut errors = Vec::new();
            if let Some(Ok(v)) = &tenant
                && !v.is_string()
            {
                errors.push(field_error(
                    "/tenant_id",
                    ErrorKind::InvalidType,
                    format!("expected a string, got {}", type_name(v)),
                ));
            }
            for key in wrapper
                .keys()
                .filter(|k| !["events", "tenant_id"].contains(&k.as_str()))
            {
                errors.push(field_error(
                    &pointer_push("", key),
                    ErrorKind::NotAllowed,
                    "unknown key: a batch is {\"events\": [...]} (and optionally the key's `tenant_id`)",
                ));
            }
            let items = match wrapper.get("events") {
                None => {
                    errors.push(field_error(
                        "/events",
                        ErrorKind::Missing,
                        "required: the array of events",
                    ));
                    None
                }
                Some(events) => match serde_json::from_str::<Vec<&RawValue>>(events.get()) {
                    Ok(items) => Some(items),
                    Err(_) => {
                        let got = serde_json::from_str::<Value>(events.get())
                            .map_or("invalid JSON", |v| type_name(&v));
                        errors.push(field_error(
                            "/events",
                            ErrorKind::InvalidType,
                            format!("expected an array of events, got {got}"),
                        ));
                        None
                    }
                },
            };
            match items {
                Some(items) if errors.is_empty() => Ok((items, "/events")),
                _ => Err(ApiError::invalid("the batch body is invalid", errors)),
            }
        }
        _ => Err(ApiError::invalid(
            "a batch is {\"events\": [...]} or a JSON array of events",
            vec![field_error(
                "",
                ErrorKind::InvalidType,
                "expected a JSON object or array",
            )],
        )),
    }
}

#[derive(Debug, Serialize)]
struct BatchItem<'a> {
    index: usize,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<EventId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<EventResponse<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

pub async fn batch(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Ingest)?;
    body::require_json(&headers)?;
    let bytes = body::read(&headers, body, app.config.max_batch_bytes).await?;
    let minimal = wants_minimal(&headers);
    let (items, array) = split_batch(&bytes, |named| {
        check_body_tenant(&slot, &key.tenant_id, named)
    })?;
    if items.is_empty() {
        return Err(ApiError::invalid(
            "the batch holds no events",
            vec![field_error(
                array,
                ErrorKind::InvalidValue,
                "expected at least one event",
            )],
        ));
    }
    let max = app.config.max_batch_events;
    if items.len() > max {
        return Err(ApiError::too_large(
            format!(
                "the batch holds {} events; the limit is {max} per request",
                items.len()
            ),
            vec![field_error(
                array,
                ErrorKind::TooLarge,
                format!("{} events; at most {max}", items.len()),
            )],
        ));
    }
    let _room = app.admission.admit(items.len()).await?;
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let ctx = processing_context(&key.tenant_id, &tenant, &headers);

    // Each item on its own: bad ones are answered, good ones stored together.
    // `plan[i]` is the item's index into `accepted`, or its rejection.
    let mut plan: Vec<Result<usize, ApiError>> = Vec::with_capacity(items.len());
    let mut accepted = Vec::new();
    let mut warnings = Vec::new();
    for item in &items {
        let bytes = item.get().as_bytes();
        let checked = tenant
            .processor
            .process_json(bytes, &ctx)
            .map_err(|result| reject(&slot, &key.tenant_id, bytes, result))
            .and_then(|p| {
                check_body_tenant(&slot, &key.tenant_id, p.body_tenant_id.as_deref()).map(|()| p)
            });
        plan.push(checked.map(|p| {
            warnings.push(p.warnings);
            accepted.push(NewEvent {
                event: p.event,
                expected_version: p.expected_version,
            });
            accepted.len() - 1
        }));
    }
    let outcomes = app.store.append(accepted).await?;
    app.after_commit();
    if outcomes.len() != warnings.len() {
        return Err(ApiError::internal(
            "store returned a different number of outcomes",
        ));
    }

    let (mut n_stored, mut n_dup, mut n_bad) = (0, 0, 0);
    let results: Vec<BatchItem<'_>> = plan
        .into_iter()
        .enumerate()
        .map(|(index, p)| {
            let failed = |e: ApiError| BatchItem { index, status: e.status.as_u16(), event_id: None, event: None, error: Some(e.body()) };
            match p.map(|i| (&outcomes[i], &warnings[i])) {
                Err(e) => {
                    n_bad += 1;
                    failed(e)
                }
                Ok((AppendOutcome::Stored(e), w)) => {
                    n_stored += 1;
                    BatchItem { index, status: 201, event_id: Some(e.event_id), event: (!minimal).then(|| EventResponse::new(e, w)), error: None }
                }
                Ok((AppendOutcome::Duplicate(s), _)) => {
                    n_dup += 1;
                    BatchItem { index, status: 200, event_id: Some(s.event.event_id), event: (!minimal).then(|| EventResponse::stored(s)), error: None }
                }
                Ok((AppendOutcome::VersionConflict { stream_id, expected, actual }, _)) => {
                    n_bad += 1;
                    failed(ApiError::conflict(format!(
                        "stream `{stream_id}` is at version {actual}, not the expected_version {expected}"
                    )))
                }
            }
        })
        .collect();
    let status = if n_bad == 0 {
        StatusCode::CREATED
    } else {
        StatusCode::MULTI_STATUS
    };
    slot.detail(format!(
        "stored {n_stored}, duplicates {n_dup}, rejected {n_bad}"
    ));
    let res = json_response(
        status,
        &serde_json::json!({ "stored": n_stored, "duplicates": n_dup, "rejected": n_bad, "results": results }),
    );
    Ok(if minimal { minimal_applied(res) } else { res })
}

pub async fn get(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path(id) = path?;
    let shown: String = id.chars().take(64).collect();
    let not_found = || ApiError::not_found(format!("no event `{shown}` in this tenant"));
    let Ok(event_id) = EventId::parse(&id) else {
        return Err(not_found());
    };
    match app.store.get_event(&key.tenant_id, event_id).await? {
        Some(stored) => Ok(json_response(
            StatusCode::OK,
            &EventResponse::stored(&stored),
        )),
        None => Err(not_found()),
    }
}

pub async fn query(
    State(app): State<App>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    body::require_json(&headers)?;
    let bytes = body::read(&headers, body, 64 * 1024).await?;
    let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Map::new())
    } else {
        serde_json::from_slice(&bytes).map_err(|e| not_json("the query is not valid JSON", &e))?
    };
    let mut q = parse_query(value)?;
    // Ids are stored redacted (an email becomes `email_hash:<hash>`, a card
    // number is masked): look for them the way they were stored.
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let stored = |v: &mut String| *v = tenant.processor.redaction.stored_text(v, &tenant.hasher);
    for (k, v) in &mut q.keys {
        if *k != CorrelationKey::EmailHash {
            stored(v);
        }
    }
    for (_, _, v) in &mut q.json_fields {
        stored(v);
    }
    let page = app.store.query_events_json(&key.tenant_id, &q).await?;
    let mut out = String::with_capacity(
        page.events
            .iter()
            .map(|e| e.body.len() + 160)
            .sum::<usize>()
            + 256,
    );
    out.push_str("{\"events\":[");
    for (i, row) in page.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if !splice_response(&mut out, row) {
            out.push_str(&decoded_response(row)?);
        }
    }
    let rest = serde_json::json!({
        "total": page.total,
        "total_relation": if page.total_exact { "eq" } else { "gte" },
        "has_more": page.has_more,
        "next_cursor": page.next_cursor,
        "limit": q.limit,
        "offset": q.offset,
    });
    out.push_str("],");
    out.push_str(rest.to_string().trim_start_matches('{'));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}

/// Appends seed 003's `EventResponse` for a stored row without decoding it:
/// the stored JSON minus its stale `status` (always its last field), then
/// the current status and the response's own fields, in the order
/// `EventResponse` serialises them. `false` (nothing appended) when the row
/// is not in that shape; the caller then decodes it.
fn splice_response(out: &mut String, row: &EventJson) -> bool {
    const STATUS: &str = ",\"status\":\"";
    const CREATED: &str = "\"processing_timestamp\":\"";
    let body = row.body.as_str();
    let Some(cut) = body.rfind(STATUS) else {
        return false;
    };
    let stale = &body[cut + STATUS.len()..];
    if !stale
        .strip_suffix("\"}")
        .is_some_and(|s| s.bytes().all(|b| b.is_ascii_lowercase()))
    {
        return false;
    }
    // Fields before `processing_timestamp` are scalars, so its first
    // occurrence is the top-level key.
    let Some((scalars, created)) = body.find(CREATED).and_then(|at| {
        let created = body[at + CREATED.len()..].split('"').next()?;
        Some((&body[..at], created))
    }) else {
        return false;
    };
    // An unescaped `"` cannot occur inside a JSON string, so this finds the
    // top-level key only.
    let has_event_category = scalars.contains(",\"event_category\":\"");
    out.push_str(&body[..cut]);
    out.push_str(STATUS);
    out.push_str(row.status.as_str());
    out.push('"');
    out.push_str(",\"user_id\":");
    match row.user_id.as_deref() {
        Some(u) => out.push_str(&json_text(u)),
        None => out.push_str("null"),
    }
    if !has_event_category {
        out.push_str(",\"event_category\":null");
    }
    out.push_str(",\"created_at\":\"");
    out.push_str(created);
    out.push('"');
    if let Some(p) = row.processed_at.as_deref() {
        out.push_str(",\"processed_at\":");
        out.push_str(&json_text(p));
    }
    if let Some(ms) = row.processing_ms {
        out.push_str(",\"processing_ms\":");
        out.push_str(&json_text(&ms));
    }
    out.push('}');
    true
}

/// JSON text of a scalar, exactly as serde_json writes it inside a struct.
fn json_text<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The slow path: decode the row and serialise its `EventResponse`.
fn decoded_response(row: &EventJson) -> Result<String, ApiError> {
    let mut event =
        herald_core::codec::json::decode(row.body.as_bytes()).map_err(ApiError::internal)?;
    event.status = row.status;
    let processed_at = row
        .processed_at
        .as_deref()
        .map(Timestamp::parse)
        .transpose()
        .map_err(ApiError::internal)?;
    let stored = StoredEvent {
        event,
        processed_at,
        processing_ms: row.processing_ms,
    };
    serde_json::to_string(&EventResponse::stored(&stored)).map_err(ApiError::internal)
}

/// The query filters this route knows, for the unknown-filter message.
const QUERY_FIELDS: &str = "user_id, event_type, event_types, event_source, event_sources, event_category, \
event_categories, category, categories, status, statuses, start_time, end_time, trace_id, span_id, correlation_id, \
request_id, order_id, session_id, ticket_id, email_hash, actor, object, context, outcome_status, outcome, environment, \
service, stream_id, q, track_total, order, limit, offset, cursor";

/// Parses a query body, naming every bad filter at once.
pub fn parse_query(value: Value) -> Result<EventQuery, ApiError> {
    let mut errors = Vec::new();
    let mut err = |field: &str, kind: ErrorKind, message: String| {
        errors.push(FieldError {
            field: field.to_string(),
            message,
            kind,
        })
    };
    let body = match value {
        Value::Object(body) => body,
        other => {
            return Err(ApiError::invalid(
                "a query is a JSON object of filters",
                vec![field_error(
                    "",
                    ErrorKind::InvalidType,
                    format!("expected an object of filters, got {}", type_name(&other)),
                )],
            ));
        }
    };
    let mut q = EventQuery {
        limit: 100,
        ..Default::default()
    };

    fn strings(
        v: &Value,
        field: &str,
        err: &mut dyn FnMut(&str, ErrorKind, String),
    ) -> Vec<String> {
        match v {
            Value::Null => Vec::new(),
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match item {
                    Value::String(s) => Some(s.clone()),
                    other => {
                        err(
                            &format!("{field}/{i}"),
                            ErrorKind::InvalidType,
                            format!("expected a string, got {}", type_name(other)),
                        );
                        None
                    }
                })
                .collect(),
            other => {
                err(
                    field,
                    ErrorKind::InvalidType,
                    format!(
                        "expected a string or an array of strings, got {}",
                        type_name(other)
                    ),
                );
                Vec::new()
            }
        }
    }
    fn enums<T>(
        v: &Value,
        field: &str,
        parse: fn(&str) -> Option<T>,
        allowed: fn() -> String,
        err: &mut dyn FnMut(&str, ErrorKind, String),
    ) -> Vec<T> {
        strings(v, field, err)
            .into_iter()
            .filter_map(|s| {
                let p = parse(&s);
                if p.is_none() {
                    err(
                        field,
                        ErrorKind::InvalidValue,
                        format!("`{s}` is not allowed; expected one of: {}", allowed()),
                    );
                }
                p
            })
            .collect()
    }
    fn one(v: &Value, field: &str, err: &mut dyn FnMut(&str, ErrorKind, String)) -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            other => {
                err(
                    field,
                    ErrorKind::InvalidType,
                    format!("expected a string, got {}", type_name(other)),
                );
                None
            }
        }
    }
    fn time(
        v: &Value,
        field: &str,
        err: &mut dyn FnMut(&str, ErrorKind, String),
    ) -> Option<Timestamp> {
        let s = one(v, field, err)?;
        Timestamp::parse(&s)
            .map_err(|e| err(field, ErrorKind::InvalidValue, e))
            .ok()
    }
    fn count(
        v: &Value,
        field: &str,
        range: std::ops::RangeInclusive<u64>,
        err: &mut dyn FnMut(&str, ErrorKind, String),
    ) -> Option<usize> {
        match v.as_u64() {
            Some(n) if range.contains(&n) => Some(n as usize),
            _ => {
                err(
                    field,
                    ErrorKind::InvalidValue,
                    format!(
                        "expected an integer in {}..={}, got {v}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    for (k, v) in &body {
        let field = pointer_push("", k);
        let f = field.as_str();
        match k.as_str() {
            "event_type" | "event_types" => q.event_types.extend(strings(v, f, &mut err)),
            "event_source" | "event_sources" => q.event_sources.extend(enums(
                v,
                f,
                EventSource::parse,
                EventSource::allowed,
                &mut err,
            )),
            "event_category" | "event_categories" => q.event_categories.extend(enums(
                v,
                f,
                EventCategory::parse,
                EventCategory::allowed,
                &mut err,
            )),
            "category" | "categories" => {
                q.categories
                    .extend(enums(v, f, Category::parse, Category::allowed, &mut err))
            }
            "status" | "statuses" => q.statuses.extend(enums(
                v,
                f,
                EventStatus::parse,
                EventStatus::allowed,
                &mut err,
            )),
            "start_time" => q.start_time = time(v, f, &mut err),
            "end_time" => q.end_time = time(v, f, &mut err),
            "outcome_status" => {
                q.outcome_status =
                    enums(v, f, OutcomeStatus::parse, OutcomeStatus::allowed, &mut err).pop()
            }
            "environment" => q.environment = one(v, f, &mut err),
            "service" => q.service = one(v, f, &mut err),
            "stream_id" => q.stream_id = one(v, f, &mut err),
            "q" => q.text = one(v, f, &mut err),
            "track_total" => match v.as_bool() {
                Some(b) => q.exact_total = b,
                None => err(
                    f,
                    ErrorKind::InvalidType,
                    format!("expected true or false, got {}", type_name(v)),
                ),
            },
            "order" => match v.as_str() {
                Some("asc") => q.order = Order::Asc,
                Some("desc") => q.order = Order::Desc,
                _ => err(
                    f,
                    ErrorKind::InvalidValue,
                    format!("expected `asc` or `desc`, got {v}"),
                ),
            },
            "limit" => q.limit = count(v, f, 1..=1000, &mut err).unwrap_or(100),
            "offset" => q.offset = count(v, f, 0..=1_000_000, &mut err).unwrap_or(0),
            "cursor" => match v.as_str().map(Cursor::decode) {
                Some(Some(c)) => q.cursor = Some(c),
                _ if v.is_null() => {}
                _ => err(
                    f,
                    ErrorKind::InvalidValue,
                    "not a cursor this server issued (use next_cursor from a previous page)".into(),
                ),
            },
            "outcome" | "actor" | "object" | "context" => {
                let Some(m) = v.as_object() else {
                    if !v.is_null() {
                        err(
                            f,
                            ErrorKind::InvalidType,
                            format!(
                                "expected an object of key: value filters, got {}",
                                type_name(v)
                            ),
                        );
                    }
                    continue;
                };
                for (sub, sv) in m {
                    let sf = pointer_push(f, sub);
                    let Some(val) = one(sv, &sf, &mut err) else {
                        continue;
                    };
                    match (k.as_str(), sub.as_str()) {
                        ("outcome", "status") => match OutcomeStatus::parse(&val) {
                            Some(s) => q.outcome_status = Some(s),
                            None => err(
                                &sf,
                                ErrorKind::InvalidValue,
                                format!("expected one of: {}", OutcomeStatus::allowed()),
                            ),
                        },
                        ("outcome", _) => q.json_fields.push(("outcome".into(), sub.clone(), val)),
                        ("context", "environment") => q.environment = Some(val),
                        ("context", "service") => q.service = Some(val),
                        (part, _) => {
                            match CorrelationKey::parse(sub).filter(|key| key_part(*key) == part) {
                                Some(key) => q.keys.push((key, val)),
                                None => q.json_fields.push((part.to_string(), sub.clone(), val)),
                            }
                        }
                    }
                }
            }
            other => match CorrelationKey::parse(other) {
                Some(key) => {
                    if let Some(val) = one(v, f, &mut err) {
                        q.keys.push((key, val));
                    }
                }
                None => err(
                    f,
                    ErrorKind::InvalidValue,
                    format!("unknown filter; known filters: {QUERY_FIELDS}"),
                ),
            },
        }
    }
    if let (Some(s), Some(e)) = (q.start_time, q.end_time)
        && s.unix_nanos() > e.unix_nanos()
    {
        err(
            "/start_time",
            ErrorKind::InvalidValue,
            "start_time is after end_time".into(),
        );
    }
    if q.cursor.is_some() && q.offset > 0 {
        err(
            "/offset",
            ErrorKind::InvalidValue,
            "use either cursor or offset, not both".into(),
        );
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        let n = errors.len();
        Err(ApiError::invalid(
            format!(
                "the query has {n} invalid filter{}",
                if n == 1 { "" } else { "s" }
            ),
            errors,
        ))
    }
}

/// Which part of the event a correlation key lives in.
fn key_part(k: CorrelationKey) -> &'static str {
    match k {
        CorrelationKey::UserId | CorrelationKey::EmailHash => "actor",
        CorrelationKey::TraceId | CorrelationKey::SpanId | CorrelationKey::CorrelationId => {
            "correlation"
        }
        _ => "object",
    }
}

#[cfg(test)]
mod tests {
    use herald_core::{
        EmailHasher, EventProcessor, EventStatus, ProcessingContext, TenantId, Timestamp,
    };
    use herald_store::{EventJson, StoredEvent};

    use super::*;

    /// The spliced answer is byte-for-byte what serialising the decoded
    /// event gives, for rows with and without the optional parts.
    #[test]
    fn spliced_rows_equal_the_decoded_response_exactly() {
        let tenant = TenantId::parse("acme").unwrap();
        let hasher = EmailHasher::new(b"k");
        let ctx = ProcessingContext {
            tenant_id: &tenant,
            email_hasher: &hasher,
            processing_timestamp: Timestamp::now(),
            ids: &herald_core::SequentialIds::default(),
            traceparent: None,
        };
        let bodies = [
            serde_json::json!({"event_type": "a", "category": "system"}),
            serde_json::json!({"event_type": "b", "category": "business", "user_id": "u-\"quoted\"\n", "data": {"status": "x", "processing_timestamp": "nope"},
                               "metadata": {"k": "\",\"status\":\"pending\"}"}, "idempotency_key": "k1", "schema_version": 3}),
            serde_json::json!({"event_type": "c", "category": "security", "actor": {"user_id": ""}, "stream_id": "order:1"}),
            serde_json::json!({"event_type": "d", "event_category": "order", "data": {"event_category": null}}),
        ];
        for body in bodies {
            let event = EventProcessor::default()
                .process_value(body, &ctx)
                .unwrap()
                .event;
            for (status, processed_at, processing_ms) in [
                (EventStatus::Pending, None, None),
                (EventStatus::Processed, Some(Timestamp::now()), Some(0.0123)),
                (EventStatus::Failed, Some(Timestamp::now()), Some(12.0)),
            ] {
                let row = EventJson {
                    body: String::from_utf8(herald_core::codec::json::encode(&event)).unwrap(),
                    status,
                    user_id: event.actor.user_id.clone().filter(|u| !u.is_empty()),
                    processed_at: processed_at.map(|t| t.to_string()),
                    processing_ms,
                };
                let mut spliced = String::new();
                assert!(splice_response(&mut spliced, &row));
                let mut decoded = event.clone();
                decoded.status = status;
                let want = serde_json::to_string(&EventResponse::stored(&StoredEvent {
                    event: decoded,
                    processed_at,
                    processing_ms,
                }))
                .unwrap();
                assert_eq!(spliced, want);
                assert_eq!(decoded_response(&row).unwrap(), want);
            }
        }
        // A body not in the expected shape is left to the slow path.
        let odd = EventJson {
            body: "{\"a\":1}".into(),
            status: EventStatus::Pending,
            user_id: None,
            processed_at: None,
            processing_ms: None,
        };
        assert!(!splice_response(&mut String::new(), &odd));
    }
}
