//! `POST /api/v1/events/batch`: many events, each judged on its own; the
//! good ones are stored in one commit and each item answered (201, or 207
//! when some were rejected).

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herald_core::error::{pointer_push, type_name};
use herald_core::{ErrorKind, EventId};
use herald_store::{AppendOutcome, NewEvent, Scope};
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::response::{EventResponse, json_response, minimal_applied, wants_minimal};
use super::{
    check_body_tenant, field_error, not_json, processing_context, reject, version_conflict,
};
use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::problem::ApiError;

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
    let bytes = body::read_json_bytes(&app.body_limits, BodyKind::Batch, &headers, body).await?;
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
    let ctx = processing_context(&app, &key.tenant_id, &tenant, &headers);

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
            let failed = |e: ApiError| BatchItem {
                index,
                status: e.status.as_u16(),
                event_id: None,
                event: None,
                error: Some(e.body()),
            };
            match p.map(|i| (&outcomes[i], &warnings[i])) {
                Err(e) => {
                    n_bad += 1;
                    failed(e)
                }
                Ok((AppendOutcome::Stored(e), w)) => {
                    n_stored += 1;
                    BatchItem {
                        index,
                        status: 201,
                        event_id: Some(e.event_id),
                        event: (!minimal).then(|| EventResponse::new(e, w)),
                        error: None,
                    }
                }
                Ok((AppendOutcome::Duplicate(s), _)) => {
                    n_dup += 1;
                    BatchItem {
                        index,
                        status: 200,
                        event_id: Some(s.event.event_id),
                        event: (!minimal).then(|| EventResponse::stored(s)),
                        error: None,
                    }
                }
                Ok((
                    AppendOutcome::VersionConflict {
                        stream_id,
                        expected,
                        actual,
                    },
                    _,
                )) => {
                    n_bad += 1;
                    failed(version_conflict(stream_id, *expected, *actual))
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
