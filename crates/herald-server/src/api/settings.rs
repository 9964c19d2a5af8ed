//! `GET/PUT /api/v1/settings`: a tenant's settings. Today one:
//! `validation_mode`, `permissive` (default: event types without a
//! definition are accepted) or `strict` (refused). A change applies to the
//! next event this instance takes.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herald_core::error::type_name;
use herald_core::{ErrorKind, FieldError, ValidationMode};
use herald_store::{Scope, TenantSettings};
use serde_json::Value;

use crate::App;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::problem::ApiError;

const MODES: &str = "permissive, strict";

pub async fn get(State(app): State<App>, principal: Principal) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let ctx = app.tenant_context(&key.tenant_id).await?;
    Ok(Json(&ctx.settings).into_response())
}

/// Replaces the settings given; keys left out keep their value.
pub async fn put(
    State(app): State<App>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let value = body::read_json(&app.body_limits, BodyKind::Settings, &headers, body).await?;
    let m = match value {
        Value::Object(m) => m,
        other => {
            return Err(ApiError::invalid(
                "settings are a JSON object, like {\"validation_mode\": \"strict\"}",
                vec![FieldError {
                    field: String::new(),
                    message: format!("expected an object, got {}", type_name(&other)),
                    kind: ErrorKind::InvalidType,
                }],
            ));
        }
    };
    let mut errors = Vec::new();
    let mut mode = None;
    for (k, v) in &m {
        match (k.as_str(), v) {
            ("validation_mode", Value::String(s)) => match s.as_str() {
                "permissive" => mode = Some(ValidationMode::Permissive),
                "strict" => mode = Some(ValidationMode::Strict),
                _ => errors.push(FieldError {
                    field: "/validation_mode".into(),
                    message: format!("expected one of: {MODES}"),
                    kind: ErrorKind::InvalidValue,
                }),
            },
            ("validation_mode", other) => errors.push(FieldError {
                field: "/validation_mode".into(),
                message: format!("expected a string ({MODES}), got {}", type_name(other)),
                kind: ErrorKind::InvalidType,
            }),
            ("updated_at", _) => {}
            _ => errors.push(FieldError {
                field: herald_core::error::pointer_push("", k),
                message: "unknown setting; known: validation_mode".into(),
                kind: ErrorKind::InvalidValue,
            }),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid("bad settings", errors));
    }
    let tenant = key.tenant_id.clone();
    let store = app.store.clone();
    let now = app.clock.now();
    let saved = app
        .change_tenant(&key.tenant_id, |ctx| async move {
            let settings = TenantSettings {
                validation_mode: mode.unwrap_or(ctx.settings.validation_mode),
                updated_at: Some(now),
            };
            store.put_settings(&tenant, settings.clone()).await?;
            Ok(settings)
        })
        .await?;
    Ok(Json(saved).into_response())
}
