//! `/api/v1/events/*`: create, batch, get and query. Ingest answers only
//! after the store's commit; responses carry the `EventResponse` fields
//! (`user_id`, `event_category`, `created_at`, ...) beside the canonical
//! ones. What create and batch share (the processing context, rejections, the
//! body's tenant check) is here.

mod batch;
mod create;
mod query;
mod response;
mod splice;

use axum::http::HeaderMap;
use herald_core::decode::json_error_message;
use herald_core::{
    ErrorKind, ExpectedVersion, FieldError, ProcessingContext, TenantId, ValidationResult,
};
use serde_json::Value;

pub use batch::batch;
pub use create::create;
pub use query::{get, parse_query, query};
pub use response::EventResponse;
pub(crate) use splice::{push_events, results_of};

use crate::App;
use crate::app::TenantContext;
use crate::http::audit::AuditSlot;
use crate::http::problem::ApiError;

/// What the core needs to know about this request: tenant, its hasher,
/// receive time, and the W3C `traceparent` header.
pub(crate) fn processing_context<'a>(
    app: &'a App,
    tenant_id: &'a TenantId,
    tenant: &'a TenantContext,
    headers: &'a HeaderMap,
) -> ProcessingContext<'a> {
    ProcessingContext {
        tenant_id,
        email_hasher: &tenant.hasher,
        processing_timestamp: app.clock.now(),
        ids: &*app.ids,
        traceparent: headers.get("traceparent").and_then(|v| v.to_str().ok()),
    }
}

/// The 409 of an append whose `expected_version` the stream did not meet,
/// with `stream_id`, `expected_version` and `current_version` as members
/// of the problem body so a client can decide without parsing the detail.
pub(crate) fn version_conflict(
    stream_id: &str,
    expected: ExpectedVersion,
    current: u64,
) -> ApiError {
    let wanted = match expected {
        ExpectedVersion::NoStream => "no events (expected_version \"no_stream\")".to_string(),
        ExpectedVersion::StreamExists => {
            "at least one event (expected_version \"stream_exists\")".to_string()
        }
        other => format!("version {other}"),
    };
    ApiError::conflict(format!(
        "stream `{stream_id}` is at version {current}, not at {wanted}; read the stream and retry with the current version"
    ))
    .with("stream_id", stream_id)
    .with("expected_version", expected.to_json())
    .with("current_version", current)
}

/// Turns one event's rejection into the problem it answers with.
pub(crate) fn rejection(result: ValidationResult) -> ApiError {
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
pub(crate) fn check_body_tenant(
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
pub(crate) fn reject(
    slot: &AuditSlot,
    own: &TenantId,
    bytes: &[u8],
    result: ValidationResult,
) -> ApiError {
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
