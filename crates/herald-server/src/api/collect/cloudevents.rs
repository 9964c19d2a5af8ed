//! `POST /api/v1/events/cloudevents` (scope `ingest`): CloudEvents 1.0 in
//! the HTTP binding's three modes: structured
//! (`application/cloudevents+json`), batched
//! (`application/cloudevents-batch+json`) and binary (`ce-*` headers, the
//! body is `data`). Decoded by `herald_collect::cloudevents` and stored
//! through the same path as the batch route; `source` + `id` deduplicate.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_collect::cloudevents::{AttributeError, decode, from_binary};
use herald_core::{ErrorKind, FieldError};
use herald_store::Scope;
use serde_json::{Value, json};

use super::{Fate, batch_answer, ingest};
use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::problem::ApiError;

fn attribute_problem(errors: Vec<AttributeError>) -> ApiError {
    ApiError::invalid(
        "the CloudEvent is invalid",
        errors
            .into_iter()
            .map(|e| FieldError {
                field: e.pointer,
                message: e.message,
                kind: ErrorKind::InvalidValue,
            })
            .collect(),
    )
}

fn not_json(e: &serde_json::Error) -> ApiError {
    ApiError::invalid(
        "the body is not valid JSON",
        vec![FieldError {
            field: String::new(),
            message: herald_core::decode::json_error_message(e),
            kind: ErrorKind::Syntax,
        }],
    )
}

pub async fn cloudevents(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Ingest)?.clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let essence = content_type
        .as_deref()
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let request = if headers.contains_key("ce-specversion") {
        let bytes = body::read_any_bytes(&headers, body, app.body_limits.event).await?;
        let attributes: Vec<(String, String)> = headers
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().strip_prefix("ce-")?;
                Some((name.to_string(), value.to_str().ok()?.to_string()))
            })
            .collect();
        from_binary(&attributes, content_type.as_deref(), &bytes).map_err(attribute_problem)?
    } else if essence == "application/cloudevents+json" {
        let bytes =
            body::read_json_bytes(&app.body_limits, BodyKind::Event, &headers, body).await?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| not_json(&e))?;
        decode(value, "").map_err(attribute_problem)?
    } else if essence == "application/cloudevents-batch+json" {
        return batch(&app, &slot, &key, &headers, body).await;
    } else {
        return Err(ApiError::unsupported_media_type(
            "send a CloudEvent as `Content-Type: application/cloudevents+json` (structured), an array as `application/cloudevents-batch+json` (batched), or its attributes as `ce-*` headers with the data as the body (binary)",
        ));
    };
    match ingest(&app, &slot, &key, &headers, vec![request])
        .await?
        .pop()
    {
        Some(Fate::Stored(id)) => {
            Ok((StatusCode::CREATED, Json(json!({ "event_id": id }))).into_response())
        }
        Some(Fate::Duplicate(id)) => {
            Ok((StatusCode::OK, Json(json!({ "event_id": id }))).into_response())
        }
        Some(Fate::Rejected(e)) => Err(e),
        None => Err(ApiError::internal("no fate for one event")),
    }
}

/// Batched mode: each event judged alone; 201 when all were stored (or
/// were repeats), 207 with `errors` per index otherwise.
async fn batch(
    app: &App,
    slot: &AuditSlot,
    key: &herald_store::ApiKey,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read_json_bytes(&app.body_limits, BodyKind::Batch, headers, body).await?;
    let events = match serde_json::from_slice::<Value>(&bytes).map_err(|e| not_json(&e))? {
        Value::Array(events) => events,
        _ => {
            return Err(ApiError::invalid(
                "a CloudEvents batch is a JSON array of events",
                vec![FieldError {
                    field: String::new(),
                    message: "expected an array".into(),
                    kind: ErrorKind::InvalidType,
                }],
            ));
        }
    };
    let max = app.config.max_batch_events;
    if events.is_empty() || events.len() > max {
        return Err(ApiError::invalid(
            "the batch holds no events, or more than max_batch_events",
            vec![FieldError {
                field: String::new(),
                message: format!("1 to {max} events"),
                kind: ErrorKind::InvalidValue,
            }],
        ));
    }
    let n = events.len();
    let mut decoded = Vec::with_capacity(n);
    let mut requests = Vec::new();
    for event in events {
        decoded.push(decode(event, "").map(|r| requests.push(r)));
    }
    let mut fates = ingest(app, slot, key, headers, requests).await?.into_iter();
    let mut all = Vec::with_capacity(n);
    for d in decoded {
        all.push(match d {
            Ok(()) => fates
                .next()
                .ok_or_else(|| ApiError::internal("fewer fates than events"))?,
            Err(e) => Fate::Rejected(attribute_problem(e)),
        });
    }
    Ok(batch_answer(slot, all, StatusCode::CREATED))
}
