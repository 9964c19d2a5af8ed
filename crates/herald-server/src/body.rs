//! Reading request bodies the way every JSON route needs: a size limit
//! that answers 413 with the limit, gzip/deflate decoding by
//! `Content-Encoding` (bounded, so a small bomb cannot expand without
//! limit), and 415 for bodies that are not JSON.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use herald_core::{ErrorKind, FieldError};

use crate::problem::ApiError;

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

/// The body's bytes, decompressed, at most `limit` bytes.
pub async fn read(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    read_with_slack(headers, body, limit, limit).await
}

/// Like [`read`], but lets through up to `cap` (≥ `limit`) bytes so the
/// caller can measure a body a little over its limit and say how large it
/// is; beyond `cap` the 413 still states `limit`, the configured one.
pub async fn read_with_slack(
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
