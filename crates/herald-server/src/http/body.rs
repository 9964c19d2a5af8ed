//! Reading request bodies the way every JSON route needs: a size limit
//! that answers 413 with the limit, gzip/deflate decoding by
//! `Content-Encoding` (bounded, so a small bomb cannot expand without
//! limit), and 415 for bodies that are not JSON. Every JSON route reads
//! its body through [`read_json`] (or [`read_json_bytes`], for routes that
//! decode the bytes themselves), with the limit of its [`BodyKind`].

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use herald_core::decode::json_error_message;
use herald_core::{ErrorKind, FieldError};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::http::problem::ApiError;

/// What a JSON body is, which decides its size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// One event (`/events/create`).
    Event,
    /// A batch of events.
    Batch,
    /// An event query's filters.
    Query,
    /// An event definition (schema, examples and UI metadata included).
    Definition,
    /// A tenant's settings.
    Settings,
    /// An admin request (a tenant or a key: a few hundred bytes).
    Admin,
    /// A webhook subscription: configuration like a definition, so it
    /// shares `max_definition_bytes`.
    Subscription,
}

/// The size limit of each kind of JSON body, in bytes (after decompression).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    pub event: usize,
    pub batch: usize,
    pub query: usize,
    pub definition: usize,
    pub settings: usize,
    pub admin: usize,
}

impl BodyLimits {
    /// The configured limits (`max_event_bytes`, `max_batch_bytes`,
    /// `max_query_bytes`, `max_definition_bytes`, `max_settings_bytes`,
    /// `max_admin_bytes`).
    pub fn from_config(config: &Config) -> Self {
        BodyLimits {
            event: config.max_event_bytes,
            batch: config.max_batch_bytes,
            query: config.max_query_bytes,
            definition: config.max_definition_bytes,
            settings: config.max_settings_bytes,
            admin: config.max_admin_bytes,
        }
    }

    /// The limit of `kind`.
    pub fn of(&self, kind: BodyKind) -> usize {
        match kind {
            BodyKind::Event => self.event,
            BodyKind::Batch => self.batch,
            BodyKind::Query => self.query,
            BodyKind::Definition | BodyKind::Subscription => self.definition,
            BodyKind::Settings => self.settings,
            BodyKind::Admin => self.admin,
        }
    }
}

/// A JSON body's bytes, decompressed: 415 unless declared JSON, 413 over
/// the limit of `kind`. An event may run to twice its limit, so that its
/// 413 (from the processor) can say its real size; beyond that the 413
/// states the limit all the same.
pub async fn read_json_bytes(
    limits: &BodyLimits,
    kind: BodyKind,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    require_json(headers)?;
    let limit = limits.of(kind);
    let cap = match kind {
        BodyKind::Event => limit.saturating_mul(2),
        _ => limit,
    };
    read_with_slack(headers, body, limit, cap).await
}

/// A collection body's bytes, read as [`read_json_bytes`] does but also
/// taking `text/plain` (browsers send JSON so to avoid a preflight, and
/// `navigator.sendBeacon` does); gzip and deflate are decoded by
/// `Content-Encoding` whatever the `Content-Type` says.
pub async fn read_collect_bytes(
    limits: &BodyLimits,
    kind: BodyKind,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, ApiError> {
    let plain = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/plain"));
    if !plain {
        require_json(headers)?;
    }
    let limit = limits.of(kind);
    read_with_slack(headers, body, limit, limit).await
}

/// Any body's bytes up to `limit`, decompressed by `Content-Encoding`,
/// whatever its `Content-Type` (compatibility APIs whose SDKs send
/// anything); 413 beyond the limit, for the caller to translate.
pub async fn read_any_bytes(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    read_with_slack(headers, body, limit, limit).await
}

/// A JSON body parsed, read as [`read_json_bytes`] does. An empty query
/// is the query without filters (`{}`).
pub async fn read_json(
    limits: &BodyLimits,
    kind: BodyKind,
    headers: &HeaderMap,
    body: Body,
) -> Result<Value, ApiError> {
    let bytes = read_json_bytes(limits, kind, headers, body).await?;
    if kind == BodyKind::Query && bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let detail = match kind {
            BodyKind::Query => "the query is not valid JSON",
            BodyKind::Batch => "the batch is not valid JSON",
            _ => "the body is not valid JSON",
        };
        ApiError::invalid(
            detail,
            vec![FieldError {
                field: String::new(),
                message: json_error_message(&e),
                kind: ErrorKind::Syntax,
            }],
        )
    })
}

/// 415 unless the body is declared JSON (or not declared at all).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence == "application/json" || essence.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::unsupported_media_type(format!(
            "Content-Type `{essence}` is not accepted here; send `Content-Type: application/json`"
        )))
    }
}

/// The body's bytes, decompressed, at most `limit` bytes; lets through up
/// to `cap` (≥ `limit`) bytes so the caller can measure a body a little
/// over its limit and say how large it is; beyond `cap` the 413 still
/// states `limit`, the configured one.
async fn read_with_slack(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    cap: usize,
) -> Result<Bytes, ApiError> {
    let cap = cap.max(limit);
    let too_large = || {
        ApiError::too_large(
            format!("the request body is over the limit of {limit} bytes"),
            vec![FieldError {
                field: String::new(),
                message: format!("over the limit of {limit} bytes"),
                kind: ErrorKind::TooLarge,
            }],
        )
    };
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .unwrap_or_default();
    // Compressed input is read up to the same cap; decoding is capped too.
    let raw = axum::body::to_bytes(body, cap)
        .await
        .map_err(|_| too_large())?;
    let decoder: Box<dyn Read> = match encoding.as_str() {
        "" | "identity" => return Ok(raw),
        "gzip" | "x-gzip" => Box::new(flate2::read::GzDecoder::new(&raw[..])),
        "deflate" => Box::new(flate2::read::ZlibDecoder::new(&raw[..])),
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "Content-Encoding `{other}` is not supported; use gzip, deflate or none"
            )));
        }
    };
    let mut out = Vec::with_capacity(raw.len() * 4);
    let n = decoder
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::invalid(
                format!("the body is not valid {encoding}"),
                vec![FieldError {
                    field: String::new(),
                    message: format!(
                        "Content-Encoding is {encoding} but the body does not decode: {e}"
                    ),
                    kind: ErrorKind::Syntax,
                }],
            )
        })?;
    if n > cap {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}
