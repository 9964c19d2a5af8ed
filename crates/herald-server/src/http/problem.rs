//! The HTTP edge's one error type: every failure becomes an RFC 9457
//! `application/problem+json` body. Client errors carry a detail and, for
//! validation, every bad field; internal errors are an opaque 500 whose
//! cause is logged, never sent.

use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::FieldError;
use herald_store::StoreError;
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u32>,
    /// RFC 9457 extension members, beside the standard ones (a version
    /// conflict's `stream_id`, `expected_version`, `current_version`).
    /// Boxed: most problems have none, and every `Result` carries the size.
    pub extensions: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(flatten)]
    extensions: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            extensions: None,
        }
    }

    /// Adds an extension member to the problem body.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extensions
            .get_or_insert_default()
            .insert(key.to_string(), value.into());
        self
    }

    /// A 400. `errors` names every bad field, not just the first; an empty
    /// list is a bug at the call site, caught by the tests.
    /// A 400 saying how many problems `what` (`the subscription`, …) has,
    /// each named in `errors`.
    pub fn problems(what: &str, errors: Vec<FieldError>) -> Self {
        let n = errors.len();
        Self::invalid(
            format!("{what} has {n} problem{}", if n == 1 { "" } else { "s" }),
            errors,
        )
    }

    pub fn invalid(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        let detail = detail.into();
        debug_assert!(!errors.is_empty(), "a 400 without its bad fields: {detail}");
        ApiError {
            errors,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "validation",
                "Invalid input",
                detail,
            )
        }
    }

    pub fn too_large(detail: impl Into<String>, errors: Vec<FieldError>) -> Self {
        ApiError {
            errors,
            ..Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                "Payload too large",
                detail,
            )
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid API key",
            detail,
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            detail,
        )
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", "Conflict", detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        ApiError {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                detail,
            )
        }
    }

    /// A 429: a rate limit was reached; retry after `retry_after` seconds.
    pub fn too_many_requests(detail: impl Into<String>, retry_after: u32) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
                detail,
            )
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "an internal error occurred; it has been logged",
        )
    }

    /// The body as JSON, for callers that embed problems (batch items).
    pub fn body(&self) -> serde_json::Value {
        serde_json::to_value(self.problem()).unwrap_or_default()
    }

    fn problem(&self) -> Problem<'_> {
        Problem {
            kind: format!("urn:herald:problem:{}", self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
            extensions: self.extensions.as_deref(),
        }
    }
}

/// Carried by every problem answer, so the audit middleware (metrics,
/// self events) knows the error's kind without reading the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemType(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.problem()).unwrap_or_default();
        let mut res = (self.status, body).into_response();
        res.extensions_mut().insert(ProblemType(self.slug));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

impl From<PathRejection> for ApiError {
    /// Every path parameter names a resource; one that does not decode
    /// (`%FF`) names none, so it is a 404 like any unknown id.
    fn from(e: PathRejection) -> Self {
        ApiError::not_found(format!("no such resource: {}", e.body_text()))
    }
}

/// A store failure as the client sees it: a conflict's reason (the same
/// words on every backend, naming no database internals), otherwise a
/// generic body; the cause chain of a 5xx goes to the log only.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(reason) => ApiError::conflict(reason.to_string()),
            StoreError::Closed => ApiError::unavailable(
                "Herald is shutting down; retry against another instance or later",
            ),
            StoreError::Unavailable { .. } => {
                tracing::error!(cause = %herald_store::error_chain(&e), "store unavailable");
                ApiError::unavailable(
                    "the store could not commit or read; nothing from this request was stored; retry",
                )
            }
            StoreError::Invalid { .. } | StoreError::Corrupt { .. } => {
                ApiError::internal(herald_store::error_chain(&e))
            }
        }
    }
}
