//! `/api/v1/events/processors`: what runs on stored events before they
//! are `processed`. Create (`POST`, scope `manage`; a `webhook`
//! processor's signing secret is shown once, in the 201), list (`GET`,
//! scope `read`, keyset paging), get, replace (`PUT`), delete, and toggle
//! (`PUT …/{id}/toggle?enabled=true|false`). A definition is checked by
//! `herald_workers::processors::check` (the worker's own check), and a
//! webhook's URL against the delivery network guard. The processing worker
//! reads processors from the store at each step, so a change applies to
//! every event whose job has not started.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use herald_core::error::pointer_push;
use herald_core::{ErrorKind, FieldError, TenantId};
use herald_store::{Processor, ProcessorSpec, Scope, StoreError};
use herald_workers::delivery::network::WebhookTarget;
use herald_workers::delivery::signature::WebhookSecret;
use herald_workers::processors::{self, ProcessorKind};
use serde_json::{Map, Value, json};

use crate::App;
use crate::api::subscriptions::input::check_target;
use crate::http::audit::AuditSlot;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;

/// The fields a processor body may carry.
const FIELDS: [&str; 9] = [
    "processor_name",
    "processor_type",
    "enabled",
    "priority",
    "filters",
    "config",
    "retry_policy",
    "critical",
    "webhook_secret",
];

/// The priority range.
const PRIORITY: std::ops::RangeInclusive<i64> = -1000..=1000;

/// A processor as the API answers it; `webhook_secret` only when given.
fn view(p: &Processor, secret: Option<&str>) -> Value {
    let mut out = json!({ "processor_id": p.processor_id });
    if let (Value::Object(out), Ok(Value::Object(spec))) = (&mut out, serde_json::to_value(&p.spec))
    {
        out.extend(spec);
        out.insert("created_at".into(), json!(p.created_at));
        out.insert("updated_at".into(), json!(p.updated_at));
        if let Some(secret) = secret {
            out.insert("webhook_secret".into(), json!(secret));
        }
    }
    out
}

fn error(field: &str, kind: ErrorKind, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
        kind,
    }
}

fn conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(why) => ApiError::conflict(format!(
            "{why}; choose another processor_name or change the existing processor"
        )),
        e => e.into(),
    }
}

fn not_found(id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::not_found(format!("no processor `{shown}` in this tenant"))
}

/// A body checked field by field: the definition, and the secret if given.
async fn read_input(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    allow_secret: bool,
) -> Result<(ProcessorSpec, Option<WebhookSecret>), ApiError> {
    let value = body::read_json(&app.body_limits, BodyKind::Subscription, headers, body).await?;
    let mut errors = Vec::new();
    let Value::Object(m) = &value else {
        return Err(ApiError::problems(
            "the processor",
            vec![error(
                "",
                ErrorKind::InvalidType,
                "a processor is a JSON object",
            )],
        ));
    };
    for key in m.keys() {
        // What an answer adds is ignored, so an answer can be sent back.
        if !FIELDS.contains(&key.as_str())
            && !["processor_id", "created_at", "updated_at"].contains(&key.as_str())
        {
            errors.push(error(
                &pointer_push("", key),
                ErrorKind::InvalidValue,
                format!("unknown field; known fields: {}", FIELDS.join(", ")),
            ));
        }
    }
    let name = match m.get("processor_name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.push(error(
                "/processor_name",
                ErrorKind::InvalidValue,
                "1 to 128 bytes, not blank",
            ));
            None
        }
        Some(_) => {
            errors.push(error("/processor_name", ErrorKind::InvalidType, "a string"));
            None
        }
        None => {
            errors.push(error(
                "/processor_name",
                ErrorKind::Missing,
                "required, unique in the tenant",
            ));
            None
        }
    };
    let processor_type = match m.get("processor_type") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(error("/processor_type", ErrorKind::InvalidType, "a string"));
            None
        }
        None => {
            errors.push(error(
                "/processor_type",
                ErrorKind::Missing,
                format!("required; one of {}", processors::TYPES.join(", ")),
            ));
            None
        }
    };
    let flag = |name: &str, errors: &mut Vec<FieldError>, default: bool| match m.get(name) {
        None | Some(Value::Null) => default,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.push(error(
                &format!("/{name}"),
                ErrorKind::InvalidType,
                "true or false",
            ));
            default
        }
    };
    let enabled = flag("enabled", &mut errors, true);
    let critical = flag("critical", &mut errors, false);
    let priority = match m.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => match v.as_i64() {
            Some(p) if PRIORITY.contains(&p) => p,
            _ => {
                errors.push(error(
                    "/priority",
                    ErrorKind::InvalidValue,
                    format!(
                        "a whole number from {} to {}; higher runs first",
                        PRIORITY.start(),
                        PRIORITY.end()
                    ),
                ));
                0
            }
        },
    };
    let secret = match m.get("webhook_secret") {
        None | Some(Value::Null) => None,
        Some(_) if !allow_secret => {
            errors.push(error(
                "/webhook_secret",
                ErrorKind::NotAllowed,
                "a PUT cannot set the secret; it is kept from creation",
            ));
            None
        }
        Some(Value::String(s)) => match WebhookSecret::parse(s) {
            Ok(secret) => Some(secret),
            Err(e) => {
                errors.push(error(
                    "/webhook_secret",
                    ErrorKind::InvalidValue,
                    e.to_string(),
                ));
                None
            }
        },
        Some(_) => {
            errors.push(error(
                "/webhook_secret",
                ErrorKind::InvalidType,
                "a string `whsec_…`",
            ));
            None
        }
    };
    if secret.is_some() && processor_type.as_deref() != Some("webhook") {
        errors.push(error(
            "/webhook_secret",
            ErrorKind::NotAllowed,
            "only a webhook processor signs its calls",
        ));
    }
    let (Some(processor_name), Some(processor_type)) = (name, processor_type) else {
        return Err(ApiError::problems("the processor", errors));
    };
    let spec = ProcessorSpec {
        processor_name,
        processor_type,
        enabled,
        priority,
        filters: m
            .get("filters")
            .cloned()
            .unwrap_or(Value::Object(Map::new())),
        config: m
            .get("config")
            .cloned()
            .unwrap_or(Value::Object(Map::new())),
        retry_policy: m.get("retry_policy").cloned().unwrap_or(Value::Null),
        critical,
    };
    match processors::check(&spec) {
        Ok((_, ProcessorKind::Webhook(w), _)) => {
            // Checked when the configuration was loaded.
            let allowed = app.config.allowed_networks().unwrap_or_default();
            match WebhookTarget::parse(&w.url) {
                Ok(target) => {
                    if let Err(e) = check_target(&target, &allowed, "/config/url").await {
                        errors.push(e);
                    }
                }
                Err(e) => errors.push(error("/config/url", ErrorKind::InvalidValue, e.to_string())),
            }
        }
        Ok(_) => {}
        Err(e) => errors.extend(e),
    }
    if errors.is_empty() {
        Ok((spec, secret))
    } else {
        Err(ApiError::problems("the processor", errors))
    }
}

/// `POST /api/v1/events/processors`.
pub async fn create(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let (spec, secret) = read_input(&app, &headers, body, true).await?;
    let now = app.clock.now();
    let secret = (spec.processor_type == "webhook").then(|| {
        secret
            .unwrap_or_else(crate::api::subscriptions::generate_secret)
            .expose()
    });
    // Ids sort by creation (UUIDv7), which is the listing's order.
    let id = format!("prc_{}", uuid::Uuid::from(app.ids.event_id(now)).simple());
    let processor = Processor {
        processor_id: id,
        tenant_id: key.tenant_id.clone(),
        spec,
        secret: secret.clone(),
        created_at: now,
        updated_at: now,
    };
    app.store
        .insert_processor(processor.clone())
        .await
        .map_err(conflict)?;
    app.worker_wake.notify_one();
    slot.detail(format!(
        "created {} `{}` ({})",
        processor.processor_id, processor.spec.processor_name, processor.spec.processor_type
    ));
    let mut res = (
        StatusCode::CREATED,
        Json(view(&processor, secret.as_deref())),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "/api/v1/events/processors/{}",
        processor.processor_id
    )) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `GET /api/v1/events/processors`'s parameters.
pub const LIST_PARAMS: &[Param] = &[
    Param {
        name: "enabled",
        kind: ParamKind::Boolean,
        description: "only enabled (true) or disabled (false) processors; all when left out",
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

/// `GET /api/v1/events/processors`: the tenant's processors in creation
/// order (the order they run in is by `priority`, highest first).
pub async fn list(
    State(app): State<App>,
    principal: Principal,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let (p, mut errors) = params::parse(&uri, LIST_PARAMS);
    let enabled = params::boolean("enabled", p.get("enabled"), &mut errors);
    let limit = params::page_limit(&p, &mut errors);
    let after = params::page_cursor(&p, "prc_", &mut errors);
    params::check(errors)?;
    let page = app
        .store
        .list_processors(&key.tenant_id, enabled, limit, after)
        .await?;
    let items: Vec<Value> = page.processors.iter().map(|p| view(p, None)).collect();
    Ok(Json(json!({
        "processors": items,
        "count": items.len(),
        "has_more": page.next_cursor.is_some(),
        "next_cursor": page.next_cursor,
    }))
    .into_response())
}

async fn find(app: &App, tenant: &TenantId, id: &str) -> Result<Processor, ApiError> {
    app.store
        .get_processor(tenant, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// `GET /api/v1/events/processors/{processor_id}`.
pub async fn get(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path(id) = path?;
    let p = find(&app, &key.tenant_id, &id).await?;
    Ok(Json(view(&p, None)).into_response())
}

/// `PUT /api/v1/events/processors/{processor_id}`: replaces the definition
/// (fields left out take their defaults, as on create); the secret stays.
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
    let current = find(&app, &key.tenant_id, &id).await?;
    let (spec, _) = read_input(&app, &headers, body, false).await?;
    if spec.processor_type != current.spec.processor_type {
        return Err(ApiError::problems(
            "the processor",
            vec![error(
                "/processor_type",
                ErrorKind::NotAllowed,
                format!(
                    "a processor keeps its type (`{}`); create a new one for another type",
                    current.spec.processor_type
                ),
            )],
        ));
    }
    let updated = app
        .store
        .update_processor(&key.tenant_id, &id, spec, app.clock.now())
        .await
        .map_err(conflict)?
        .ok_or_else(|| not_found(&id))?;
    app.worker_wake.notify_one();
    slot.detail(format!(
        "replaced {} `{}`",
        updated.processor_id, updated.spec.processor_name
    ));
    Ok(Json(view(&updated, None)).into_response())
}

/// `PUT /api/v1/events/processors/{processor_id}/toggle`'s parameter.
pub const TOGGLE_PARAMS: &[Param] = &[Param {
    name: "enabled",
    kind: ParamKind::Boolean,
    description: "true to turn the processor on, false to turn it off (required)",
}];

/// `PUT /api/v1/events/processors/{processor_id}/toggle?enabled={bool}`:
/// turns a processor on or off; events whose job has not started are run
/// without a processor turned off.
pub async fn toggle(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let Path(id) = path?;
    let (p, mut errors) = params::parse(&uri, TOGGLE_PARAMS);
    let enabled = params::boolean("enabled", p.get("enabled"), &mut errors);
    if enabled.is_none() && errors.is_empty() {
        errors.push(params::bad("enabled", "required: true or false"));
    }
    params::check(errors)?;
    let enabled = enabled.unwrap_or(true);
    let updated = app
        .store
        .set_processor_enabled(&key.tenant_id, &id, enabled, app.clock.now())
        .await?
        .ok_or_else(|| not_found(&id))?;
    app.worker_wake.notify_one();
    slot.detail(format!(
        "{} {} `{}`",
        if enabled { "enabled" } else { "disabled" },
        updated.processor_id,
        updated.spec.processor_name
    ));
    Ok(Json(view(&updated, None)).into_response())
}

/// `DELETE /api/v1/events/processors/{processor_id}`: 204; events whose job
/// has not started are run without it.
pub async fn delete(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let Path(id) = path?;
    if !app.store.delete_processor(&key.tenant_id, &id).await? {
        return Err(not_found(&id));
    }
    slot.detail(format!("deleted {id}"));
    Ok(StatusCode::NO_CONTENT.into_response())
}
