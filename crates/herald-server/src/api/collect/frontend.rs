//! `POST /api/v1/events/frontend` and `/frontend/batch`: events from
//! browsers with a write key, decoded by `herald_collect::frontend` and
//! stored like any other; `GET /api/v1/events/frontend/health`.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use herald_collect::frontend::{decode_event, split_batch, take_write_key};
use herald_core::{ErrorKind, FieldError};
use herald_store::ApiKey;
use serde_json::{Value, json};

use super::{
    Fate, Peer, WRITE_KEY_PARAMS, batch_answer, check_origin, client_addr, client_context, ingest,
    resolve_write_key, write_key_secret,
};
use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::body::{self, BodyKind};
use crate::http::params;
use crate::http::problem::ApiError;

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

/// The query's `writeKey`; every unknown parameter named (before the body
/// is read).
fn query_key(uri: &Uri) -> Result<Option<String>, ApiError> {
    let (mut p, errors) = params::parse(uri, WRITE_KEY_PARAMS);
    params::check(errors)?;
    Ok(p.take("writeKey"))
}

/// What every collection request does before its body is decoded: the
/// client's address and its rate limit, the body, the write key (query,
/// header or `body_key` of the parsed body), its origins and its rate.
struct Admitted {
    key: ApiKey,
    client: herald_collect::ClientContext,
}

async fn admit(
    app: &App,
    slot: &AuditSlot,
    peer: &Peer,
    query_key: Option<&str>,
    headers: &HeaderMap,
    body_key: Option<&str>,
) -> Result<Admitted, ApiError> {
    let secret = write_key_secret(query_key, headers, body_key);
    let key = resolve_write_key(app, slot, secret).await?;
    check_origin(&key, headers)?;
    app.collect.limits.admit_key(&key.key_id, app.clock.now())?;
    let ip = client_addr(app, peer, headers);
    let client = client_context(app, &key, ip, headers).await?;
    Ok(Admitted { key, client })
}

/// `POST /api/v1/events/frontend`: 201 `{"event_id"}`; 200 with the first
/// event's id for a repeated `idempotency_key`.
pub async fn create(
    State(app): State<App>,
    Extension(slot): Extension<AuditSlot>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query_key = query_key(&uri)?;
    app.collect
        .limits
        .admit_ip(client_addr(&app, &peer, &headers), app.clock.now())?;
    let bytes = body::read_collect_bytes(&app.body_limits, BodyKind::Event, &headers, body).await?;
    let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| not_json(&e))?;
    let body_key = take_write_key(&mut value);
    let Admitted { key, client } = admit(
        &app,
        &slot,
        &peer,
        query_key.as_deref(),
        &headers,
        body_key.as_deref(),
    )
    .await?;
    let request = decode_event(value, None, &client);
    let fate = ingest(&app, &slot, &key, &headers, vec![request])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("no fate for one event"))?;
    match fate {
        Fate::Stored(id) => {
            Ok((StatusCode::CREATED, Json(json!({ "event_id": id }))).into_response())
        }
        Fate::Duplicate(id) => {
            Ok((StatusCode::OK, Json(json!({ "event_id": id }))).into_response())
        }
        Fate::Rejected(e) => Err(e),
    }
}

/// `POST /api/v1/events/frontend/batch`: `{"events": [...], "client_info":
/// {...}}`; 201 when every event was stored (or was a repeat), 207 when
/// some were rejected: `count` stored, `event_ids` in request order (`null`
/// for a rejected one), `errors` per rejected index.
pub async fn batch(
    State(app): State<App>,
    Extension(slot): Extension<AuditSlot>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let query_key = query_key(&uri)?;
    app.collect
        .limits
        .admit_ip(client_addr(&app, &peer, &headers), app.clock.now())?;
    let bytes = body::read_collect_bytes(&app.body_limits, BodyKind::Batch, &headers, body).await?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| not_json(&e))?;
    let batch = split_batch(value).map_err(|errors| {
        ApiError::invalid(
            "the batch body is invalid",
            errors
                .into_iter()
                .map(|e| FieldError {
                    field: e.pointer,
                    message: e.message,
                    kind: ErrorKind::InvalidValue,
                })
                .collect(),
        )
    })?;
    let Admitted { key, client } = admit(
        &app,
        &slot,
        &peer,
        query_key.as_deref(),
        &headers,
        batch.write_key.as_deref(),
    )
    .await?;
    let n = batch.events.len();
    let max = app.config.max_batch_events;
    if n == 0 || n > max {
        let error = |message: String, kind| {
            vec![FieldError {
                field: "/events".into(),
                message,
                kind,
            }]
        };
        return Err(if n == 0 {
            ApiError::invalid(
                "the batch holds no events",
                error(
                    "expected at least one event".into(),
                    ErrorKind::InvalidValue,
                ),
            )
        } else {
            ApiError::too_large(
                format!("the batch holds {n} events; the limit is {max} per request"),
                error(format!("{n} events; at most {max}"), ErrorKind::TooLarge),
            )
        });
    }
    let requests = batch
        .events
        .into_iter()
        .map(|e| decode_event(e, batch.client_info.as_ref(), &client))
        .collect();
    let fates = ingest(&app, &slot, &key, &headers, requests).await?;
    Ok(batch_answer(&slot, fates, StatusCode::CREATED))
}

/// `GET /api/v1/events/frontend/health`, open: whether collection accepts
/// events (it does whenever the store answers) and the NATS connection.
pub async fn health(State(app): State<App>) -> Json<Value> {
    let nats = match &app.publisher {
        Some(p) => json!({ "configured": true, "connected": p.connected() }),
        None => json!({ "configured": false, "connected": false }),
    };
    Json(json!({
        "status": "ok",
        "collection": "accepting",
        "store": app.store.kind(),
        "nats": nats,
    }))
}
