//! `POST /api/v1/events/create`: one event, answered after its commit
//! (201; 200 with the first event for a repeated `idempotency_key`).

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use herald_core::Processed;
use herald_store::{AppendOutcome, NewEvent, Scope};

use super::response::{EventResponse, json_response, minimal_applied, wants_minimal};
use super::{check_body_tenant, processing_context, reject, version_conflict};
use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::problem::ApiError;

pub async fn create(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Ingest)?;
    let _room = app.admission.admit(1).await?;
    let bytes = body::read_json_bytes(&app.body_limits, BodyKind::Event, &headers, body).await?;
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let ctx = processing_context(&app, &key.tenant_id, &tenant, &headers);
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
        }) => Err(version_conflict(&stream_id, expected, actual)),
        None => Err(ApiError::internal(
            "store returned no outcome for one event",
        )),
    }
}
