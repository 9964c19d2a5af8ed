//! A write key's collection settings: `allowed_origins` (which pages may
//! use it) and `webhook_secret` (which makes webhooks sent with it carry
//! a signature), given when the key is issued and replaced with
//! `PUT /api/v1/admin/tenants/{tenant_id}/keys/{key_id}/collect`.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use herald_core::{ErrorKind, FieldError, TenantId};
use herald_store::{ApiKey, KeyCollect};
use serde_json::{Map, Value, json};

use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::problem::ApiError;

/// Most origins one key may allow.
pub const MAX_ORIGINS: usize = 100;

fn error(field: &str, kind: ErrorKind, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
        kind,
    }
}

/// Why `origin` is not a serialized origin (`scheme://host[:port]`, no
/// path), or `None` when it is one or `*`.
fn origin_problem(origin: &str) -> Option<&'static str> {
    if origin == "*" {
        return None;
    }
    let Some((scheme, rest)) = origin.split_once("://") else {
        return Some(
            "expected an origin: `scheme://host[:port]` (https://shop.example), or `*` for any",
        );
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Some("the scheme is not valid");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '*']) || origin.len() > 300 {
        return Some(
            "an origin is `scheme://host[:port]` without path, query or wildcard (https://shop.example)",
        );
    }
    None
}

/// The collection settings of a key body (`allowed_origins`,
/// `webhook_secret`); each bad one named in `errors`.
pub fn parse_collect(m: &Map<String, Value>, errors: &mut Vec<FieldError>) -> KeyCollect {
    let allowed_origins = match m.get("allowed_origins") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.len() > MAX_ORIGINS => {
            errors.push(error(
                "/allowed_origins",
                ErrorKind::TooLarge,
                format!("at most {MAX_ORIGINS} origins"),
            ));
            None
        }
        Some(Value::Array(items)) => {
            let mut list = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let at = format!("/allowed_origins/{i}");
                match item.as_str().map(str::trim) {
                    Some(o) => match origin_problem(o) {
                        None => list.push(o.to_string()),
                        Some(why) => errors.push(error(&at, ErrorKind::InvalidValue, why)),
                    },
                    None => errors.push(error(&at, ErrorKind::InvalidType, "expected a string")),
                }
            }
            Some(list)
        }
        Some(_) => {
            errors.push(error(
                "/allowed_origins",
                ErrorKind::InvalidType,
                "expected an array of origins (`[\"https://shop.example\"]`, `[\"*\"]` for any) or null",
            ));
            None
        }
    };
    let webhook_secret = match m.get("webhook_secret") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if (16..=256).contains(&s.len()) => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.push(error(
                "/webhook_secret",
                ErrorKind::InvalidValue,
                "16 to 256 characters",
            ));
            None
        }
        Some(_) => {
            errors.push(error(
                "/webhook_secret",
                ErrorKind::InvalidType,
                "expected a string or null",
            ));
            None
        }
    };
    KeyCollect {
        allowed_origins,
        webhook_secret,
    }
}

/// The settings as answered: the secret never, only whether one is set.
pub fn describe(collect: &KeyCollect) -> Value {
    json!({
        "allowed_origins": collect.allowed_origins,
        "webhook_secret_set": collect.webhook_secret.is_some(),
    })
}

/// `PUT /api/v1/admin/tenants/{tenant_id}/keys/{key_id}/collect`: replaces
/// both settings (an absent one becomes unset).
pub async fn put(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path((tenant, key_id)) = path?;
    let tenant = TenantId::parse(tenant).map_err(|_| ApiError::not_found("no such tenant"))?;
    principal.require_admin_of(&tenant)?;
    let m = match body::read_json(&app.body_limits, BodyKind::Admin, &headers, body).await? {
        Value::Object(m) => m,
        _ => {
            return Err(ApiError::invalid(
                "expected a JSON object",
                vec![error("", ErrorKind::InvalidType, "expected an object")],
            ));
        }
    };
    let mut errors = Vec::new();
    for k in m.keys() {
        if !["allowed_origins", "webhook_secret"].contains(&k.as_str()) {
            errors.push(error(
                &herald_core::error::pointer_push("", k),
                ErrorKind::NotAllowed,
                "unknown key: the settings are `allowed_origins` and `webhook_secret`",
            ));
        }
    }
    let collect = parse_collect(&m, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            "the key's collection settings are invalid",
            errors,
        ));
    }
    if !app
        .store
        .set_key_collect(&tenant, &key_id, collect.clone())
        .await?
    {
        return Err(ApiError::not_found(format!(
            "no live key `{key_id}` in tenant `{tenant}`"
        )));
    }
    app.keys.evict(&key_id);
    slot.acted_on(&tenant);
    slot.detail(format!("set collection settings of key {key_id}"));
    let mut answer = describe(&collect);
    answer["key_id"] = json!(key_id);
    answer["tenant_id"] = json!(tenant);
    Ok(Json(answer).into_response())
}

/// For issuing: the settings of a new key's body, and its description.
pub fn describe_key(key: &ApiKey) -> Value {
    describe(&key.collect)
}
