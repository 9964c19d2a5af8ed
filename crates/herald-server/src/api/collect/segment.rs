//! Segment's HTTP Tracking API, so Segment's and RudderStack's SDKs work
//! with only the host changed: `/v1/{track,identify,page,screen,group,alias,batch}`,
//! the browser library's short paths (`/v1/t`, …, `/v1/b`), RudderStack's
//! `/v1/import` and `/beacon/v1/batch`. Answers are Segment's, because
//! the SDKs' retries depend on them: 200 when the request was taken (each
//! message stored, or rejected alone and counted in the answer); 400 only
//! for a body that is not JSON or is too large, and 401 for a missing or
//! unknown write key, both as `{"code", "message"}` (an SDK drops a 4xx
//! that has them and retries one that has not); 429 and 503 with
//! `Retry-After`, which SDKs retry. Messages are decoded by
//! `herald_collect::segment` and stored through the same path as every
//! other event.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use herald_collect::segment::{Received, decode_message, split_batch};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{
    Fate, Peer, WRITE_KEY_PARAMS, check_origin, client_addr, client_context, ingest,
    reported_ip_policy, resolve_write_key, write_key_secret,
};
use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::body;
use crate::http::params;
use crate::http::problem::ApiError;

/// An answer in Segment's error shape.
#[derive(Debug)]
pub struct SegmentError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u32>,
}

impl SegmentError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        SegmentError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<ApiError> for SegmentError {
    /// Herald's problems in Segment's codes: a size limit is Segment's 400.
    fn from(e: ApiError) -> Self {
        let (status, code) = match e.status.as_u16() {
            401 => (StatusCode::UNAUTHORIZED, "unauthorized"),
            403 => (StatusCode::FORBIDDEN, "forbidden"),
            400 | 413 | 415 => (StatusCode::BAD_REQUEST, "invalid_request"),
            429 => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            503 => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let mut message = e.detail.clone();
        if let Some(first) = e.errors.first() {
            message = format!("{message}: {} {}", first.field, first.message);
        }
        SegmentError {
            status,
            code,
            message,
            retry_after: e.retry_after,
        }
    }
}

impl IntoResponse for SegmentError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// What a route takes: one message of a type, or a batch.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    One(&'static str),
    Batch,
}

/// Every Segment-API route.
pub async fn handle(
    app: &App,
    slot: &AuditSlot,
    peer: Peer,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
    shape: Shape,
) -> Result<Response, SegmentError> {
    let received_at = OffsetDateTime::from_unix_timestamp_nanos(app.clock.now().unix_nanos())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (mut p, errors) = params::parse(&uri, WRITE_KEY_PARAMS);
    params::check(errors)?;
    let query_key = p.take("writeKey");
    let ip = client_addr(app, &peer, &headers);
    app.collect.limits.admit_ip(ip, app.clock.now())?;
    let limit = match shape {
        Shape::One(_) => app.config.segment_max_message_bytes,
        Shape::Batch => app.config.segment_max_batch_bytes,
    };
    let bytes = body::read_any_bytes(&headers, body, limit)
        .await
        .map_err(|_| {
            SegmentError::new(
                StatusCode::BAD_REQUEST,
                "request_too_large",
                format!("the body is over the limit of {limit} bytes"),
            )
        })?;
    let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        SegmentError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    let body_key = herald_collect::frontend::take_write_key(&mut value);
    let key = resolve_write_key(
        app,
        slot,
        write_key_secret(query_key.as_deref(), &headers, body_key.as_deref()),
    )
    .await?;
    check_origin(&key, &headers)?;
    app.collect.limits.admit_key(&key.key_id, app.clock.now())?;
    let client = client_context(app, &key, ip, &headers).await?;
    let keep_ip = reported_ip_policy(app, &key).await?;
    let (messages, batch) = match shape {
        Shape::One(_) => (vec![value], None),
        Shape::Batch => {
            let b = split_batch(value)
                .map_err(|m| SegmentError::new(StatusCode::BAD_REQUEST, "invalid_request", m))?;
            (b.messages.clone(), Some(b))
        }
    };
    let received = Received {
        received_at,
        route_type: match shape {
            Shape::One(t) => Some(t),
            Shape::Batch => None,
        },
        batch_sent_at: batch.as_ref().and_then(|b| b.sent_at.as_ref()),
        batch_context: batch.as_ref().and_then(|b| b.context.as_ref()),
        batch_rest: batch.as_ref().map(|b| &b.rest),
        from_browser: headers.contains_key(header::ORIGIN),
        client: &client,
        correct_clock: true,
        metadata_key: "segment",
    };
    // A message over the per-message limit is rejected alone (its
    // serialised size, as Segment measures each message of a batch).
    let max_message = app.config.segment_max_message_bytes;
    // Each message's bytes, kept to record it if it is rejected.
    let mut sent: Vec<Vec<u8>> = Vec::with_capacity(messages.len());
    let mut requests = Vec::new();
    let mut positions = Vec::new();
    // (index, problem body, the message when it is small enough to keep).
    let mut refused: Vec<(usize, Value, Option<usize>)> = Vec::new();
    for (i, m) in messages.into_iter().enumerate() {
        let bytes = serde_json::to_vec(&m).unwrap_or_default();
        if bytes.len() > max_message {
            refused.push((
                i,
                json!({ "title": "Payload too large", "status": 400,
                        "detail": format!("the message is {} bytes; the limit is {max_message}", bytes.len()) }),
                None,
            ));
            sent.push(Vec::new());
            continue;
        }
        sent.push(bytes);
        positions.push(i);
        requests.push(decode_message(m, &received, &*keep_ip));
    }
    let fates = if requests.is_empty() {
        Vec::new()
    } else {
        ingest(app, slot, &key, &headers, requests).await?
    };
    let mut accepted = 0;
    for (&i, fate) in positions.iter().zip(fates) {
        match fate {
            Fate::Stored(_) | Fate::Duplicate(_) => accepted += 1,
            Fate::Rejected(e) => refused.push((i, e.body(), Some(i))),
        }
    }
    let rejected = refused.len();
    slot.detail(format!("accepted {accepted}, rejected {rejected}"));
    if !refused.is_empty() {
        record_rejections(app, slot, &key, &headers, refused, &sent).await;
    }
    Ok((
        StatusCode::OK,
        Json(json!({ "success": true, "accepted": accepted, "rejected": rejected })),
    )
        .into_response())
}

/// Each rejected message stored as a `herald.collect.rejected` event
/// (category `system`): the reason and the message as sent (through the
/// same redaction as every event), so the tenant can find what its SDKs
/// sent that was refused. A repeat of a rejected message (same
/// `messageId`) records nothing new. Best effort: the answer does not wait
/// on a failure here, which is logged.
async fn record_rejections(
    app: &App,
    slot: &AuditSlot,
    key: &herald_store::ApiKey,
    headers: &HeaderMap,
    refused: Vec<(usize, Value, Option<usize>)>,
    sent: &[Vec<u8>],
) {
    let records = refused
        .into_iter()
        .map(|(index, reason, kept)| {
            let message = kept
                .and_then(|i| serde_json::from_slice::<Value>(&sent[i]).ok())
                .unwrap_or(Value::Null);
            let mut record = json!({
                "event_type": REJECTED_TYPE,
                "category": "system",
                "event_source": "external_api",
                "data": { "format": "segment", "index": index, "reason": reason, "message": message },
            });
            if let Some(id) = message.get("messageId").and_then(Value::as_str) {
                record["idempotency_key"] = json!(format!("{REJECTED_TYPE}:{id}"));
            }
            record
        })
        .collect();
    match ingest(app, slot, key, headers, records).await {
        Ok(fates) => {
            let failed = fates
                .iter()
                .filter(|f| matches!(f, Fate::Rejected(_)))
                .count();
            if failed > 0 {
                tracing::warn!(failed, "rejected Segment messages could not be recorded");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e.detail, "rejected Segment messages could not be recorded")
        }
    }
}

/// The event type a rejected collection message is recorded as.
pub const REJECTED_TYPE: &str = "herald.collect.rejected";

macro_rules! segment_route {
    ($($name:ident => $shape:expr),+ $(,)?) => {$(
        pub async fn $name(
            State(app): State<App>,
            Extension(slot): Extension<AuditSlot>,
            peer: Peer,
            uri: Uri,
            headers: HeaderMap,
            body: Body,
        ) -> Result<Response, SegmentError> {
            handle(&app, &slot, peer, uri, headers, body, $shape).await
        }
    )+};
}

segment_route! {
    track => Shape::One("track"),
    identify => Shape::One("identify"),
    page => Shape::One("page"),
    screen => Shape::One("screen"),
    group => Shape::One("group"),
    alias => Shape::One("alias"),
    batch => Shape::Batch,
}
