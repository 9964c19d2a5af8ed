//! Webhook deliveries as the API shows them: every delivery of a
//! subscription (`GET …/subscriptions/{id}/deliveries`, paged) or of an
//! event (`GET /api/v1/events/{event_id}/deliveries`), each with every
//! attempt; and the dead-letter queue (`dead_letters`): list, redrive,
//! discard, and recover a subscription's window.

pub mod dead_letters;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use herald_core::{EventId, TenantId};
use herald_store::{Delivery, DeliveryAttempt, DeliveryState, DeliveryWithAttempts, Scope};
use serde_json::{Value, json};

use crate::App;
use crate::http::auth::Principal;
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;

/// One attempt as answered.
pub(crate) fn attempt_view(a: &DeliveryAttempt) -> Value {
    json!({
        "attempt": a.attempt,
        "at": a.at,
        "status_code": a.status,
        "duration_ms": a.duration_ms,
        "error_class": a.error_class,
        "response_snippet": a.response_snippet,
        "next_attempt_at": a.next_attempt_at,
    })
}

/// A delivery as answered, with every attempt at it. `next_attempt_at` is
/// `null` once nothing more is due (delivered or dead).
pub(crate) fn delivery_view(d: &Delivery, attempts: &[DeliveryAttempt]) -> Value {
    let waiting = matches!(d.state, DeliveryState::Pending | DeliveryState::InFlight);
    json!({
        "delivery_id": d.delivery_id,
        "subscription_id": d.subscription_id,
        "event_id": d.event_id.to_string(),
        "webhook_id": d.webhook_id,
        "replay_id": d.replay_id,
        "state": d.state.as_str(),
        "attempt_count": d.attempts,
        "next_attempt_at": waiting.then_some(d.next_attempt_at),
        "last_status": d.last_status,
        "last_error_class": d.last_error_class,
        "stream_id": d.stream_id,
        "stream_version": d.stream_version,
        "created_at": d.created_at,
        "updated_at": d.updated_at,
        "attempts": attempts.iter().map(attempt_view).collect::<Vec<_>>(),
    })
}

fn views(items: &[DeliveryWithAttempts]) -> Vec<Value> {
    items
        .iter()
        .map(|d| delivery_view(&d.delivery, &d.attempts))
        .collect()
}

pub(crate) fn subscription_not_found(id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::not_found(format!("no subscription `{shown}` in this tenant"))
}

/// 404 unless the tenant has the subscription.
pub(crate) async fn require_subscription(
    app: &App,
    tenant: &TenantId,
    id: &str,
) -> Result<(), ApiError> {
    match app.store.get_subscription(tenant, id).await? {
        Some(_) => Ok(()),
        None => Err(subscription_not_found(id)),
    }
}

/// `GET …/subscriptions/{subscription_id}/deliveries`'s parameters.
pub const SUBSCRIPTION_PARAMS: &[Param] = &[
    Param {
        name: "limit",
        kind: ParamKind::Integer,
        description: "page size, 1..=1000 (default 100)",
    },
    Param {
        name: "cursor",
        kind: ParamKind::String,
        description: "the next_cursor of the previous page",
    },
];

/// `GET /api/v1/events/subscriptions/{subscription_id}/deliveries`: the
/// subscription's deliveries in creation order, each with every attempt.
pub async fn of_subscription(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path(id) = path?;
    let (p, mut errors) = params::parse(&uri, SUBSCRIPTION_PARAMS);
    let limit = params::page_limit(&p, &mut errors);
    let after = params::page_cursor(&p, "dlv_", &mut errors);
    params::check(errors)?;
    require_subscription(&app, &key.tenant_id, &id).await?;
    let page = app
        .store
        .deliveries_of_subscription(&key.tenant_id, &id, limit, after)
        .await?;
    let items = views(&app.store.with_attempts(page.deliveries).await?);
    Ok(Json(json!({
        "deliveries": items,
        "count": items.len(),
        "has_more": page.next_cursor.is_some(),
        "next_cursor": page.next_cursor,
    }))
    .into_response())
}

/// `GET /api/v1/events/{event_id}/deliveries`: every delivery of the event
/// (one per subscription it matched, and one per replay), each with every
/// attempt.
pub async fn of_event(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path(id) = path?;
    let shown: String = id.chars().take(64).collect();
    let not_found = || ApiError::not_found(format!("no event `{shown}` in this tenant"));
    let Ok(event_id) = EventId::parse(&id) else {
        return Err(not_found());
    };
    if app
        .store
        .get_event(&key.tenant_id, event_id)
        .await?
        .is_none()
    {
        return Err(not_found());
    }
    let deliveries = app
        .store
        .deliveries_of_event(&key.tenant_id, event_id)
        .await?;
    let items = views(&app.store.with_attempts(deliveries).await?);
    Ok(Json(json!({ "deliveries": items, "count": items.len() })).into_response())
}
