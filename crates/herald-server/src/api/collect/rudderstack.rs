//! `POST /webhooks/rudderstack`: RudderStack's webhook destination. The
//! tenant is named by a `collect` write key (HTTP Basic user or
//! `?writeKey=`, as the destination can send); when the key has a webhook
//! secret the body must carry `X-Webhook-Signature: sha256=<hex
//! HMAC-SHA256 of the body>`, and a missing or bad one is a 401 and a
//! security audit record. One event or an array, decoded by
//! `herald_collect::rudderstack` and answered once stored: 200 with every
//! event stored (or a repeat), 207 when some were rejected.

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use herald_collect::rudderstack::{decode_event, events, signature_ok};
use herald_core::{ErrorKind, FieldError};
use serde_json::Value;
use time::OffsetDateTime;

use super::{
    Peer, WRITE_KEY_PARAMS, batch_answer, check_origin, client_addr, client_context, ingest,
    reported_ip_policy, resolve_write_key, write_key_secret,
};
use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::body::{self, BodyKind};
use crate::http::params;
use crate::http::problem::ApiError;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-webhook-signature";

pub async fn webhook(
    State(app): State<App>,
    Extension(slot): Extension<AuditSlot>,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (mut p, errors) = params::parse(&uri, WRITE_KEY_PARAMS);
    params::check(errors)?;
    let query_key = p.take("writeKey");
    let ip = client_addr(&app, &peer, &headers);
    app.collect.limits.admit_ip(ip, app.clock.now())?;
    let key = resolve_write_key(
        &app,
        &slot,
        write_key_secret(query_key.as_deref(), &headers, None),
    )
    .await?;
    check_origin(&key, &headers)?;
    app.collect.limits.admit_key(&key.key_id, app.clock.now())?;
    let bytes = body::read_collect_bytes(&app.body_limits, BodyKind::Batch, &headers, body).await?;
    if let Some(secret) = &key.collect.webhook_secret {
        let sent = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        if !signature_ok(secret.as_bytes(), &bytes, sent) {
            slot.security_violation(if sent.is_some() {
                "bad webhook signature"
            } else {
                "webhook without a signature"
            });
            return Err(ApiError::unauthorized(format!(
                "write key {} has a webhook secret: send `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body with it>`",
                key.key_id
            )));
        }
    }
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(
            "the body is not valid JSON",
            vec![FieldError {
                field: String::new(),
                message: herald_core::decode::json_error_message(&e),
                kind: ErrorKind::Syntax,
            }],
        )
    })?;
    let events = events(value);
    if events.is_empty() || events.len() > app.config.max_batch_events {
        return Err(ApiError::invalid(
            "the webhook holds no events, or more than max_batch_events",
            vec![FieldError {
                field: String::new(),
                message: format!("1 to {} events", app.config.max_batch_events),
                kind: ErrorKind::InvalidValue,
            }],
        ));
    }
    let client = client_context(&app, &key, ip, &headers).await?;
    let keep_ip = reported_ip_policy(&app, &key).await?;
    let received_at = OffsetDateTime::from_unix_timestamp_nanos(app.clock.now().unix_nanos())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let requests = events
        .into_iter()
        .map(|e| decode_event(e, received_at, &client, &*keep_ip))
        .collect();
    let fates = ingest(&app, &slot, &key, &headers, requests).await?;
    Ok(batch_answer(&slot, fates, StatusCode::OK))
}
