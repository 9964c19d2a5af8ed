//! The answers of the event routes: the `EventResponse` fields beside the
//! canonical event, and RFC 7240's `Prefer: return=minimal`.

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::{CanonicalEvent, FieldWarning, Timestamp};
use herald_store::{ProcessorResult, StoredEvent};
use serde::Serialize;

/// The event answer: the canonical event plus the flat fields every answer
/// carries (`user_id`, `event_category`, `created_at`, processing results).
#[derive(Debug, Serialize)]
pub struct EventResponse<'a> {
    #[serde(flatten)]
    pub event: &'a CanonicalEvent,
    /// The top-level `user_id` (= `actor.user_id`); `null` when none.
    pub user_id: Option<&'a str>,
    /// The answer always has `event_category`: `null` here when the
    /// event has none (the canonical event then leaves the key out).
    #[serde(
        rename = "event_category",
        skip_serializing_if = "std::ops::Not::not",
        serialize_with = "null"
    )]
    pub no_event_category: bool,
    /// `created_at` (= `processing_timestamp`).
    pub created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processed_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_ms: Option<f64>,
    /// What each processor made of the event, highest priority first;
    /// left out when no processor ran on it.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub processing_results: &'a [ProcessorResult],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub warnings: &'a [FieldWarning],
}

impl<'a> EventResponse<'a> {
    pub fn new(event: &'a CanonicalEvent, warnings: &'a [FieldWarning]) -> Self {
        EventResponse {
            event,
            // As stored in the `user_id` column: empty means none.
            user_id: event.user_id().filter(|u| !u.is_empty()),
            no_event_category: event.event_category.is_none(),
            created_at: event.processing_timestamp,
            processed_at: None,
            processing_ms: None,
            processing_results: &[],
            warnings,
        }
    }

    pub fn stored(s: &'a StoredEvent) -> Self {
        EventResponse {
            processed_at: s.processed_at,
            processing_ms: s.processing_ms,
            ..Self::new(&s.event, &[])
        }
    }
}

fn null<S: serde::Serializer>(_: &bool, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_none()
}

pub(super) fn json_response(status: StatusCode, body: &impl Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// RFC 7240 `Prefer: return=minimal`: acknowledge with ids, not whole events
/// (a 1,000-event batch answer shrinks from ~1 MB to ~60 KB).
pub(super) fn wants_minimal(headers: &HeaderMap) -> bool {
    headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("return=minimal"))
        })
    })
}

pub(super) fn minimal_applied(mut res: Response) -> Response {
    res.headers_mut().insert(
        "preference-applied",
        axum::http::HeaderValue::from_static("return=minimal"),
    );
    res
}
