//! `/api/v1/events/subscriptions`: webhook subscriptions as a resource.
//! Create (`POST`, scope `manage`; the signing secret is shown once, in the
//! 201), list (`GET`, scope `read`; the enabled ones unless asked
//! otherwise, keyset paging), get, replace (`PUT`; the secret cannot be set
//! this way), delete (a real delete: nothing of it is left for a delivery
//! to start from), and rotate the secret (the previous one keeps signing
//! for `delivery_secret_overlap_secs`). Secrets are never listed, and an
//! answer never carries a previous secret, only until when it signs.
//! The delivery fan-out and worker (`herald-workers`) read subscriptions
//! from the store; the deliveries they make are listed by `api::deliveries`.

pub mod input;

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use herald_core::{FieldError, TenantId, Timestamp};
use herald_store::{Scope, SecretRotation, StoreError, Subscription, SubscriptionQuery};
use herald_workers::delivery::signature::WebhookSecret;
use serde_json::{Value, json};

use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;
use input::SecretField;

/// A subscription as the API answers it: its definition, id and times;
/// `previous_secret_valid_until` while a rotated-out secret still signs;
/// `webhook_secret` only when `secret` is given (creation and rotation).
fn view(s: &Subscription, now: Timestamp, secret: Option<&str>) -> Value {
    let mut out = json!({ "subscription_id": s.subscription_id });
    if let (Value::Object(out), Ok(Value::Object(spec))) = (&mut out, serde_json::to_value(&s.spec))
    {
        out.extend(spec);
        out.insert("created_at".into(), json!(s.created_at));
        out.insert("updated_at".into(), json!(s.updated_at));
        if let Some(until) = s
            .previous_secret_expires_at
            .filter(|until| s.previous_secret.is_some() && now.unix_nanos() < until.unix_nanos())
        {
            out.insert("previous_secret_valid_until".into(), json!(until));
        }
        if let Some(secret) = secret {
            out.insert("webhook_secret".into(), json!(secret));
        }
    }
    out
}

fn invalid(errors: Vec<FieldError>) -> ApiError {
    ApiError::problems("the subscription", errors)
}

fn conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(why) => ApiError::conflict(format!(
            "{why}; choose another subscriber_name or change the existing subscription"
        )),
        e => e.into(),
    }
}

fn not_found(id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::not_found(format!("no subscription `{shown}` in this tenant"))
}

/// A new signing secret from the operating system's random source.
pub(crate) fn generate_secret() -> WebhookSecret {
    let mut random = [0u8; 32];
    // A key issuer without randomness cannot go on.
    getrandom::fill(&mut random).expect("the operating system's random source failed");
    WebhookSecret::generate(random)
}

async fn read_input(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    secret_field: SecretField,
) -> Result<input::Input, ApiError> {
    let value = body::read_json(&app.body_limits, BodyKind::Subscription, headers, body).await?;
    // Checked when the configuration was loaded.
    let allowed = app.config.allowed_networks().unwrap_or_default();
    input::parse(&value, secret_field, &allowed)
        .await
        .map_err(invalid)
}

/// `POST /api/v1/events/subscriptions`.
pub async fn create(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let input = read_input(&app, &headers, body, SecretField::Allowed).await?;
    let now = app.clock.now();
    let secret = input.secret.unwrap_or_else(generate_secret).expose();
    // Ids sort by creation (UUIDv7), which is the listing's order.
    let id = format!("sub_{}", uuid::Uuid::from(app.ids.event_id(now)).simple());
    let subscription = Subscription {
        subscription_id: id,
        tenant_id: key.tenant_id.clone(),
        spec: input.spec,
        secret: secret.clone(),
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: now,
        updated_at: now,
    };
    app.store
        .insert_subscription(subscription.clone())
        .await
        .map_err(conflict)?;
    slot.detail(format!(
        "created {} `{}` → {}",
        subscription.subscription_id,
        subscription.spec.subscriber_name,
        subscription.spec.callback_url
    ));
    let mut res = (
        StatusCode::CREATED,
        Json(view(&subscription, now, Some(&secret))),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "/api/v1/events/subscriptions/{}",
        subscription.subscription_id
    )) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `GET /api/v1/events/subscriptions`'s parameters.
pub const LIST_PARAMS: &[Param] = &[
    Param {
        name: "enabled",
        kind: ParamKind::Boolean,
        description: "true (the default): the active subscriptions; false: the disabled ones",
    },
    Param {
        name: "all",
        kind: ParamKind::Boolean,
        description: "true: every subscription, enabled or not (not together with enabled)",
    },
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

/// `GET /api/v1/events/subscriptions`: the tenant's subscriptions in
/// creation order, without their secrets.
pub async fn list(
    State(app): State<App>,
    principal: Principal,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let (p, mut errors) = params::parse(&uri, LIST_PARAMS);
    let enabled = params::boolean("enabled", p.get("enabled"), &mut errors);
    let all = params::boolean("all", p.get("all"), &mut errors).unwrap_or(false);
    if all && enabled.is_some() {
        errors.push(params::bad(
            "all",
            "give enabled (true or false) or all=true, not both",
        ));
    }
    let limit = params::page_limit(&p, &mut errors);
    let after = params::page_cursor(&p, "sub_", &mut errors);
    params::check(errors)?;
    let query = SubscriptionQuery {
        enabled: if all {
            None
        } else {
            Some(enabled.unwrap_or(true))
        },
        limit,
        after,
    };
    let page = app.store.list_subscriptions(&key.tenant_id, &query).await?;
    let now = app.clock.now();
    let items: Vec<Value> = page
        .subscriptions
        .iter()
        .map(|s| view(s, now, None))
        .collect();
    Ok(Json(json!({
        "subscriptions": items,
        "count": items.len(),
        "has_more": page.next_cursor.is_some(),
        "next_cursor": page.next_cursor,
    }))
    .into_response())
}

async fn find(app: &App, tenant: &TenantId, id: &str) -> Result<Subscription, ApiError> {
    app.store
        .get_subscription(tenant, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// `GET /api/v1/events/subscriptions/{subscription_id}`.
pub async fn get(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path(id) = path?;
    let s = find(&app, &key.tenant_id, &id).await?;
    Ok(Json(view(&s, app.clock.now(), None)).into_response())
}

/// `PUT /api/v1/events/subscriptions/{subscription_id}`: replaces the
/// definition; fields left out take their defaults, as on create. The
/// secret stays (rotate it with `…/secret/rotate`).
pub async fn update(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let Path(id) = path?;
    let input = read_input(&app, &headers, body, SecretField::Refused).await?;
    let now = app.clock.now();
    let updated = app
        .store
        .update_subscription(&key.tenant_id, &id, input.spec, now)
        .await
        .map_err(conflict)?
        .ok_or_else(|| not_found(&id))?;
    slot.detail(format!(
        "replaced {} `{}`",
        updated.subscription_id, updated.spec.subscriber_name
    ));
    Ok(Json(view(&updated, now, None)).into_response())
}

/// `DELETE /api/v1/events/subscriptions/{subscription_id}`: 204, and the
/// subscription is gone.
pub async fn delete(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let Path(id) = path?;
    if !app.store.delete_subscription(&key.tenant_id, &id).await? {
        return Err(not_found(&id));
    }
    slot.detail(format!("deleted {id}"));
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/events/subscriptions/{subscription_id}/secret/rotate`: a
/// new generated secret, shown once; the previous one signs too until
/// `previous_secret_valid_until`.
pub async fn rotate(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let Path(id) = path?;
    let now = app.clock.now();
    let overlap = Duration::from_secs(app.config.delivery_secret_overlap_secs);
    let until = time::Duration::try_from(overlap)
        .ok()
        .and_then(|d| now.as_offset_date_time().checked_add(d))
        .map_or(now, Timestamp::from);
    let secret = generate_secret().expose();
    let rotated = app
        .store
        .rotate_subscription_secret(
            &key.tenant_id,
            &id,
            SecretRotation {
                secret: secret.clone(),
                previous_expires_at: until,
                now,
            },
        )
        .await?
        .ok_or_else(|| not_found(&id))?;
    slot.detail(format!(
        "rotated the secret of {}; the previous one signs until {until}",
        rotated.subscription_id
    ));
    Ok(Json(view(&rotated, now, Some(&secret))).into_response())
}
