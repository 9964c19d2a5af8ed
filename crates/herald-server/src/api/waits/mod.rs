//! `/api/v1/waits`: workflow waits as a resource. A workflow registers the
//! event it waits for (`POST`, scope `ingest`, like the events the same
//! worker sends), reads it back or long-polls it until it ends
//! (`GET …/{id}?wait=30`, scope `read`), lists them, and cancels one or
//! every open wait of a workflow instance (`DELETE`, scope `ingest`).
//! A wait ends exactly once: `resolved`, `timed_out` or `cancelled`. The
//! matcher, timeouts and callbacks are `herald-workers`' `waits`; a new
//! wait's lookback runs here, before the answer, so a `201` already says
//! `resolved` when an event stored shortly before matched.

pub mod input;
pub mod schemas;

use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use herald_core::TenantId;
use herald_store::{CancelOutcome, NewWait, Scope, Wait, WaitQuery, WaitStatus};
use serde_json::{Value, json};

use crate::App;
use crate::api::subscriptions::generate_secret;
use crate::http::audit::AuditSlot;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;

/// A wait as the API answers it; `webhook_secret` only when `secret` is
/// given (creation).
pub fn view(w: &Wait, secret: Option<&str>) -> Value {
    let event = w
        .event
        .as_deref()
        .and_then(|e| serde_json::from_str::<Value>(e).ok());
    let mut out = json!({
        "wait_id": w.wait_id,
        "workflow_instance_id": w.workflow_instance_id,
        "status": w.status.as_str(),
        "any_of": w.spec.any_of,
        "context": w.spec.context,
        "timeout_at": w.timeout_at,
        "lookback": w.spec.lookback_secs,
        "callback_url": w.callback_url,
        "created_at": w.created_at,
        "ended_at": w.ended_at,
        "event_id": w.event_id,
        "event": event,
    });
    if let Some(c) = &w.callback {
        out["callback"] = json!({
            "state": c.state,
            "attempts": c.attempts,
            "next_attempt_at": c.next_at,
            "last_status": c.last_status,
            "last_error": c.last_error,
        });
    }
    if let Some(secret) = secret {
        out["webhook_secret"] = json!(secret);
    }
    out
}

fn not_found(id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::not_found(format!("no wait `{shown}` in this tenant"))
}

/// `POST /api/v1/waits`.
pub async fn create(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Ingest)?;
    let value = body::read_json(&app.body_limits, BodyKind::Subscription, &headers, body).await?;
    let now = app.clock.now();
    // Checked when the configuration was loaded.
    let allowed = app.config.allowed_networks().unwrap_or_default();
    let limits = input::Limits {
        max_timeout_secs: app.config.wait_max_timeout_secs,
        max_lookback_secs: app.config.wait_max_lookback_secs,
    };
    let input = input::parse(&value, now, limits, &allowed)
        .await
        .map_err(|e| ApiError::problems("the wait", e))?;
    let secret = input
        .callback_url
        .as_ref()
        .map(|_| input.secret.unwrap_or_else(generate_secret).expose());
    // Ids sort by creation (UUIDv7), which is the listing's order.
    let id = format!("wait_{}", uuid::Uuid::from(app.ids.event_id(now)).simple());
    let mut wait = app
        .store
        .insert_wait(NewWait {
            wait_id: id,
            tenant_id: key.tenant_id.clone(),
            workflow_instance_id: input.workflow_instance_id,
            spec: input.spec,
            timeout_at: input.timeout_at,
            callback_url: input.callback_url,
            webhook_secret: secret.clone(),
            created_at: now,
        })
        .await?;
    if let Some(found) = herald_workers::waits::look_back(&app.store, &wait, now).await? {
        if !app.store.resolve_waits(None, vec![found]).await?.is_empty() {
            app.wait_ended();
        }
        wait = app
            .store
            .get_wait(&key.tenant_id, &wait.wait_id)
            .await?
            .unwrap_or(wait);
    }
    slot.detail(format!(
        "created {} for {} ({})",
        wait.wait_id,
        wait.workflow_instance_id,
        wait.status.as_str()
    ));
    let mut res = (StatusCode::CREATED, Json(view(&wait, secret.as_deref()))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/waits/{}", wait.wait_id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `GET /api/v1/waits/{wait_id}`'s parameters.
pub const GET_PARAMS: &[Param] = &[Param {
    name: "wait",
    kind: ParamKind::Integer,
    description: "long poll: hold the request until the wait ends or this many seconds pass (0 ..= wait_long_poll_max_secs; default 0, answer at once)",
}];

/// `GET /api/v1/waits/{wait_id}`: the wait; with `?wait=N` once it has
/// ended or after N seconds, whichever comes first.
pub async fn get(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path(id) = path?;
    let (p, mut errors) = params::parse(&uri, GET_PARAMS);
    let max = app.config.wait_long_poll_max_secs;
    let hold = match p.get("wait").map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) if n <= max => n,
        Some(_) => {
            errors.push(params::bad(
                "wait",
                format!("expected whole seconds, 0 ..= {max}"),
            ));
            0
        }
    };
    params::check(errors)?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(hold);
    let poll = Duration::from_millis(app.config.wait_poll_ms);
    let mut ended = app.wait_ends.subscribe();
    loop {
        ended.borrow_and_update();
        let wait = app
            .store
            .get_wait(&key.tenant_id, &id)
            .await?
            .ok_or_else(|| not_found(&id))?;
        if wait.status != WaitStatus::Open || tokio::time::Instant::now() >= deadline {
            return Ok(Json(view(&wait, None)).into_response());
        }
        // A local end wakes at once; another instance's is seen on the poll.
        tokio::select! {
            _ = ended.changed() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// `GET /api/v1/waits`'s parameters.
pub const LIST_PARAMS: &[Param] = &[
    Param {
        name: "status",
        kind: ParamKind::String,
        description: "open, resolved, timed_out or cancelled",
    },
    Param {
        name: "workflow_instance_id",
        kind: ParamKind::String,
        description: "the waits of one workflow instance",
    },
    Param {
        name: "event_type",
        kind: ParamKind::String,
        description: "the waits with an alternative of exactly this type or pattern",
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

/// `GET /api/v1/waits`: the tenant's waits in creation order.
pub async fn list(
    State(app): State<App>,
    principal: Principal,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let (p, mut errors) = params::parse(&uri, LIST_PARAMS);
    let status = match p.get("status") {
        None => None,
        Some(s) => match WaitStatus::ALL.into_iter().find(|w| w.as_str() == s) {
            Some(w) => Some(w),
            None => {
                errors.push(params::bad(
                    "status",
                    "expected open, resolved, timed_out or cancelled",
                ));
                None
            }
        },
    };
    let limit = params::page_limit(&p, &mut errors);
    let after = params::page_cursor(&p, "wait_", &mut errors);
    params::check(errors)?;
    let query = WaitQuery {
        status,
        workflow_instance_id: p.get("workflow_instance_id").map(str::to_string),
        event_type: p.get("event_type").map(str::to_string),
        limit,
        after,
    };
    let page = app.store.list_waits(&key.tenant_id, &query).await?;
    let items: Vec<Value> = page.waits.iter().map(|w| view(w, None)).collect();
    Ok(Json(json!({
        "waits": items,
        "count": items.len(),
        "has_more": page.next_cursor.is_some(),
        "next_cursor": page.next_cursor,
    }))
    .into_response())
}

/// `DELETE /api/v1/waits/{wait_id}`: cancels an open wait (200 with it);
/// a 409 naming its end when it had already ended.
pub async fn cancel(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Ingest)?;
    let Path(id) = path?;
    match app
        .store
        .cancel_wait(&key.tenant_id, &id, app.clock.now())
        .await?
    {
        CancelOutcome::Cancelled(w) => {
            app.wait_ended();
            slot.detail(format!("cancelled {id}"));
            Ok(Json(view(&w, None)).into_response())
        }
        CancelOutcome::Ended(w) => Err(ApiError::conflict(format!(
            "wait `{id}` already ended: {}",
            w.status.as_str()
        ))
        .with("wait_status", w.status.as_str())),
        CancelOutcome::NotFound => Err(not_found(&id)),
    }
}

/// `DELETE /api/v1/waits`'s parameters.
pub const CANCEL_ALL_PARAMS: &[Param] = &[Param {
    name: "workflow_instance_id",
    kind: ParamKind::String,
    description: "required: the workflow instance whose open waits are cancelled",
}];

/// `DELETE /api/v1/waits?workflow_instance_id=…`: cancels every open wait
/// of one workflow instance; answers how many.
pub async fn cancel_all(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Ingest)?;
    let (p, mut errors) = params::parse(&uri, CANCEL_ALL_PARAMS);
    let workflow = match p.get("workflow_instance_id") {
        Some(w) if !w.is_empty() => Some(w.to_string()),
        _ => {
            errors.push(params::bad(
                "workflow_instance_id",
                "required: the workflow instance whose waits to cancel",
            ));
            None
        }
    };
    params::check(errors)?;
    let workflow = workflow.unwrap_or_default();
    let n = cancel_workflow(&app, &key.tenant_id, &workflow).await?;
    slot.detail(format!("cancelled {n} waits of {workflow}"));
    Ok(Json(json!({ "workflow_instance_id": workflow, "cancelled": n })).into_response())
}

async fn cancel_workflow(app: &App, tenant: &TenantId, workflow: &str) -> Result<usize, ApiError> {
    let n = app
        .store
        .cancel_workflow_waits(tenant, workflow, app.clock.now())
        .await?;
    if n > 0 {
        app.wait_ended();
    }
    Ok(n)
}
