//! Tenants and keys (root creates tenants; root or the tenant's `manage` key
//! issues and revokes keys) and the audit trail's read side.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use herald_core::error::type_name;
use herald_core::{ErrorKind, FieldError, TenantId, Timestamp};
use herald_store::{ApiKey, AuditOutcome, AuditQuery, Scope, Tenant};
use serde_json::{Value, json};

use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::auth::{self, Principal};
use crate::http::body::{self, BodyKind};
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;

fn field_error(field: &str, kind: ErrorKind, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
        kind,
    }
}

/// The body as a JSON object, read with the same rules as every JSON
/// route: 415 unless JSON, gzip/deflate, 413 over the admin body limit.
async fn read_object(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    match body::read_json(&app.body_limits, BodyKind::Admin, headers, body).await? {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::invalid(
            "expected a JSON object",
            vec![field_error(
                "",
                ErrorKind::InvalidType,
                format!("expected an object, got {}", type_name(&other)),
            )],
        )),
    }
}

fn name_field(m: &serde_json::Map<String, Value>, errors: &mut Vec<FieldError>) -> String {
    match m.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => s.trim().to_string(),
        Some(Value::String(_)) => {
            errors.push(field_error(
                "/name",
                ErrorKind::InvalidValue,
                "1 to 200 characters",
            ));
            String::new()
        }
        None | Some(Value::Null) => {
            errors.push(field_error(
                "/name",
                ErrorKind::Missing,
                "required: a name people will recognise",
            ));
            String::new()
        }
        Some(_) => {
            errors.push(field_error(
                "/name",
                ErrorKind::InvalidType,
                "expected a string",
            ));
            String::new()
        }
    }
}

async fn issue_key(
    app: &App,
    tenant: &TenantId,
    name: String,
    scopes: Vec<Scope>,
    collect: herald_store::KeyCollect,
) -> Result<(ApiKey, String), ApiError> {
    let secret = auth::new_secret();
    let key = ApiKey {
        key_id: format!("key_{}", auth::random_hex(8)),
        tenant_id: tenant.clone(),
        name,
        scopes,
        secret_hash: auth::hash_secret(&secret),
        created_at: app.clock.now(),
        collect,
    };
    app.store.insert_key(key.clone()).await?;
    Ok((key, secret))
}

fn scope_names(scopes: &[Scope]) -> Vec<&'static str> {
    scopes.iter().map(|s| s.as_str()).collect()
}

/// `POST /api/v1/admin/tenants {name, tenant_id?}` → the tenant and its admin key.
pub async fn create_tenant(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !matches!(principal, Principal::Root) {
        return Err(ApiError::forbidden("creating tenants needs the root key"));
    }
    let m = read_object(&app, &headers, body).await?;
    let mut errors = Vec::new();
    let name = name_field(&m, &mut errors);
    let tenant_id = match m.get("tenant_id") {
        None | Some(Value::Null) => TenantId::parse(format!("ten_{}", auth::random_hex(8))).ok(),
        Some(Value::String(s)) => TenantId::parse(s.clone())
            .map_err(|e| errors.push(field_error("/tenant_id", ErrorKind::InvalidValue, e.0)))
            .ok(),
        Some(_) => {
            errors.push(field_error(
                "/tenant_id",
                ErrorKind::InvalidType,
                "expected a string",
            ));
            None
        }
    };
    let (Some(tenant_id), true) = (tenant_id, errors.is_empty()) else {
        return Err(ApiError::invalid("the tenant is invalid", errors));
    };
    let created_at = app.clock.now();
    app.store
        .create_tenant(Tenant {
            tenant_id: tenant_id.clone(),
            name: name.clone(),
            created_at,
        })
        .await?;
    let (key, secret) = issue_key(
        &app,
        &tenant_id,
        "admin".into(),
        Scope::ALL.to_vec(),
        Default::default(),
    )
    .await?;
    slot.acted_on(&tenant_id);
    slot.detail(format!("created tenant; admin key {}", key.key_id));
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "tenant_id": tenant_id, "name": name, "created_at": created_at,
            "api_key": secret, "key_id": key.key_id, "scopes": scope_names(&key.scopes),
        })),
    )
        .into_response())
}

/// `POST /api/v1/admin/tenants/{tenant_id}/keys {name, scopes}`.
pub async fn create_key(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Path(tenant) = path?;
    let tenant = TenantId::parse(tenant).map_err(|_| ApiError::not_found("no such tenant"))?;
    principal.require_admin_of(&tenant)?;
    if app.store.get_tenant(&tenant).await?.is_none() {
        return Err(ApiError::not_found(format!("no tenant `{tenant}`")));
    }
    let m = read_object(&app, &headers, body).await?;
    let mut errors = Vec::new();
    let name = name_field(&m, &mut errors);
    let allowed = Scope::ALL.map(|s| s.as_str()).join(", ");
    let mut scopes = Vec::new();
    match m.get("scopes") {
        Some(Value::Array(items)) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(Scope::parse) {
                    Some(s) if !scopes.contains(&s) => scopes.push(s),
                    Some(_) => {}
                    None => errors.push(field_error(
                        &format!("/scopes/{i}"),
                        ErrorKind::InvalidValue,
                        format!("expected one of: {allowed}"),
                    )),
                }
            }
        }
        _ => errors.push(field_error(
            "/scopes",
            ErrorKind::Missing,
            format!("required: a non-empty array of: {allowed}"),
        )),
    }
    let collect = super::collect::keys::parse_collect(&m, &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::invalid("the key is invalid", errors));
    }
    let (key, secret) = issue_key(&app, &tenant, name, scopes, collect).await?;
    slot.acted_on(&tenant);
    slot.detail(format!(
        "issued key {} ({})",
        key.key_id,
        scope_names(&key.scopes).join(", ")
    ));
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "key_id": key.key_id, "tenant_id": tenant, "name": key.name,
            "api_key": secret, "scopes": scope_names(&key.scopes), "created_at": key.created_at,
            "collect": super::collect::keys::describe_key(&key),
        })),
    )
        .into_response())
}

/// `DELETE /api/v1/admin/tenants/{tenant_id}/keys/{key_id}`.
pub async fn revoke_key(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((tenant, key_id)) = path?;
    let tenant = TenantId::parse(tenant).map_err(|_| ApiError::not_found("no such tenant"))?;
    principal.require_admin_of(&tenant)?;
    if app
        .store
        .revoke_key(&tenant, &key_id, app.clock.now())
        .await?
    {
        app.keys.evict(&key_id);
        slot.acted_on(&tenant);
        slot.detail(format!("revoked key {key_id}"));
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "no live key `{key_id}` in tenant `{tenant}`"
        )))
    }
}

/// `GET /api/v1/audit`'s filters.
pub const AUDIT_PARAMS: &[Param] = &[
    Param {
        name: "tenant_id",
        kind: ParamKind::String,
        description: "only this tenant's records (root key; a tenant key sees only its own)",
    },
    Param {
        name: "key_id",
        kind: ParamKind::String,
        description: "only requests made with this key (`root` for the operator)",
    },
    Param {
        name: "operation",
        kind: ParamKind::String,
        description: "method and route, e.g. `POST /api/v1/events/create`",
    },
    Param {
        name: "outcome",
        kind: ParamKind::String,
        description: "success, denied, rejected, error or security_violation",
    },
    Param {
        name: "start_time",
        kind: ParamKind::String,
        description: "RFC 3339 instant; records at or after it",
    },
    Param {
        name: "end_time",
        kind: ParamKind::String,
        description: "RFC 3339 instant; records at or before it",
    },
    Param {
        name: "limit",
        kind: ParamKind::Integer,
        description: "1 to 1000 records, default 100",
    },
    Param {
        name: "cursor",
        kind: ParamKind::String,
        description: "the previous page's `next_cursor`: the next (older) records",
    },
];

/// `GET /api/v1/audit`: a tenant's records with a `manage` key; any
/// tenant's (or all) with the root key.
pub async fn list_audit(
    State(app): State<App>,
    principal: Principal,
    uri: Uri,
) -> Result<Response, ApiError> {
    let (mut p, mut errors) = params::parse(&uri, AUDIT_PARAMS);
    let tenant_id = match &principal {
        Principal::Root => p.take("tenant_id"),
        Principal::Tenant(_) => {
            let key = principal.require(Scope::Manage)?;
            if p.get("tenant_id")
                .is_some_and(|t| t != key.tenant_id.as_str())
            {
                return Err(ApiError::forbidden(
                    "a tenant key reads only its own tenant's audit trail",
                ));
            }
            Some(key.tenant_id.to_string())
        }
    };
    let mut time = |name: &str| {
        p.get(name).and_then(|s| {
            Timestamp::parse(s)
                .map_err(|e| errors.push(params::bad(name, e)))
                .ok()
        })
    };
    let start_time = time("start_time");
    let end_time = time("end_time");
    let limit = match p.get("limit").map(|v| v.parse::<usize>()) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            errors.push(params::bad("limit", "expected an integer in 1..=1000"));
            100
        }
    };
    let before = match p.get("cursor").map(|v| v.parse::<i64>()) {
        None => None,
        Some(Ok(seq)) if seq > 0 => Some(seq),
        Some(_) => {
            errors.push(params::bad(
                "cursor",
                "expected the `next_cursor` of an earlier page",
            ));
            None
        }
    };
    let outcome = match p.take("outcome").map(|o| o.parse::<AuditOutcome>()) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(e)) => {
            errors.push(params::bad(
                "outcome",
                format!("expected one of {}", e.allowed.join(", ")),
            ));
            None
        }
    };
    params::check(errors)?;
    let page = app
        .store
        .query_audit(&AuditQuery {
            tenant_id,
            key_id: p.take("key_id"),
            operation: p.take("operation"),
            outcome,
            start_time,
            end_time,
            limit,
            before,
        })
        .await?;
    Ok(Json(json!({
        "records": page.records,
        "count": page.records.len(),
        "has_more": page.next_cursor.is_some(),
        "next_cursor": page.next_cursor.map(|seq| seq.to_string()),
    }))
    .into_response())
}
