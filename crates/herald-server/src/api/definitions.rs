//! `/api/v1/event-definitions`: the registry's four functions over HTTP.
//! Register (`POST`), update as a new immutable version (`PUT`, with a
//! compatibility verdict; breaking changes need `?allow_breaking=true`), get
//! by id, type or pattern (`?version=N` for an older one), and list with
//! filters and paging. Every write rebuilds the tenant's registry snapshot,
//! so the next event is validated against it.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use herald_core::{Category, ErrorKind, EventSource, FieldError};
use herald_registry::{DefinitionFilter, Entry, EventDefinition, parse_input};
use herald_store::{Scope, StoreError};
use serde_json::{Map, Value, json};

use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::auth::{self, Principal};
use crate::http::body::{self, BodyKind};
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;

/// One definition version as the API answers it: the stored fields plus
/// `id`, `is_pattern`, every version number and the latest one.
pub fn view(d: &EventDefinition, versions: &[u32]) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(d.definition_id));
    if let Ok(Value::Object(fields)) = serde_json::to_value(d) {
        out.extend(fields);
    }
    out.insert("is_pattern".into(), json!(d.event_type.is_pattern()));
    out.insert("versions".into(), json!(versions));
    out.insert(
        "latest_version".into(),
        json!(versions.last().copied().unwrap_or(d.version)),
    );
    Value::Object(out)
}

fn entry_view(e: &Entry) -> Value {
    view(e.latest(), &e.versions())
}

fn invalid_definition(errors: Vec<FieldError>) -> ApiError {
    ApiError::problems("the definition", errors)
}

/// `POST /api/v1/event-definitions`: version 1 of a new definition.
pub async fn register(
    State(app): State<App>,
    principal: Principal,
    axum::extract::Extension(slot): axum::extract::Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let value = body::read_json(&app.body_limits, BodyKind::Definition, &headers, body).await?;
    let input = parse_input(&value, None).map_err(invalid_definition)?;
    let tenant = key.tenant_id.clone();
    let store = app.store.clone();
    let now = app.clock.now();
    let created = app
        .change_tenant(&key.tenant_id, |ctx| async move {
            if let Some(existing) = ctx
                .registry
                .by_type(input.event_type.as_str())
                .map(|e| e.latest())
                .filter(|d| !d.builtin)
            {
                return Err(ApiError::conflict(format!(
                    "`{}` already has definition {} (version {}); update it with PUT /api/v1/event-definitions/{}",
                    existing.event_type, existing.definition_id, existing.version, existing.definition_id
                )));
            }
            let id = format!("def_{}", auth::random_hex(8));
            let definition = input.into_definition(id, 1, now);
            store
                .insert_definition(&tenant, definition.clone())
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(why) => ApiError::conflict(format!(
                        "{why}; update the existing definition with PUT"
                    )),
                    e => e.into(),
                })?;
            Ok(definition)
        })
        .await?;
    slot.detail(format!(
        "registered {} v1 for `{}`",
        created.definition_id, created.event_type
    ));
    let mut res = (StatusCode::CREATED, Json(view(&created, &[1]))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "/api/v1/event-definitions/{}",
        created.definition_id
    )) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `PUT /api/v1/event-definitions/{id}`'s parameter.
pub const UPDATE_PARAMS: &[Param] = &[Param {
    name: "allow_breaking",
    kind: ParamKind::Boolean,
    description: "register a breaking change anyway (otherwise 409 with the reasons); true, false, 1, 0 or empty for true",
}];

/// `PUT /api/v1/event-definitions/{id}`: a new immutable version.
pub async fn update(
    State(app): State<App>,
    principal: Principal,
    axum::extract::Extension(slot): axum::extract::Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let Path(id) = path?;
    let (query, mut errors) = params::parse(&uri, UPDATE_PARAMS);
    let allow_breaking =
        params::boolean("allow_breaking", query.get("allow_breaking"), &mut errors)
            .unwrap_or(false);
    params::check(errors)?;
    let value = body::read_json(&app.body_limits, BodyKind::Definition, &headers, body).await?;
    let tenant = key.tenant_id.clone();
    let store = app.store.clone();
    let now = app.clock.now();
    let (next, versions) = app
        .change_tenant(&key.tenant_id, |ctx| async move {
            let shown: String = id.chars().take(64).collect();
            let entry = ctx
                .registry
                .by_id(&id)
                .ok_or_else(|| ApiError::not_found(format!("no event definition `{shown}` in this tenant")))?;
            let current = entry.latest();
            if current.builtin {
                return Err(ApiError::conflict(format!(
                    "`{}` is built in and read-only; register your own definition for it with POST /api/v1/event-definitions, which then takes its place",
                    current.event_type
                )));
            }
            let input = parse_input(&value, Some(&current.event_type)).map_err(invalid_definition)?;
            let next = current.next_version(input, now);
            if let Some(c) = next.compatibility.as_ref().filter(|c| c.is_breaking())
                && !allow_breaking
            {
                let reasons: Vec<FieldError> = c
                    .breaking_changes()
                    .map(|ch| FieldError {
                        field: ch.path.clone(),
                        message: ch.message.clone(),
                        kind: ErrorKind::NotAllowed,
                    })
                    .collect();
                let advice: String = c.advice().iter().map(|a| format!(" {a}.")).collect();
                return Err(ApiError {
                    errors: reasons,
                    ..ApiError::conflict(format!(
                        "version {} would be a breaking change from version {}: events the current version accepts would be refused; send ?allow_breaking=true to register it anyway.{advice}",
                        next.version, current.version
                    ))
                });
            }
            store
                .insert_definition(&tenant, next.clone())
                .await
                .map_err(|e| match e {
                    StoreError::Conflict(why) => ApiError::conflict(format!(
                        "{why}: the definition changed concurrently; fetch it and retry"
                    )),
                    e => e.into(),
                })?;
            let mut versions = entry.versions();
            versions.push(next.version);
            Ok((next, versions))
        })
        .await?;
    slot.detail(format!(
        "{} v{} ({})",
        next.definition_id,
        next.version,
        next.compatibility.as_ref().map_or("", |c| match c.level {
            herald_registry::Level::Identical => "identical",
            herald_registry::Level::Backward => "backward compatible",
            herald_registry::Level::Breaking => "breaking",
        })
    ));
    Ok((StatusCode::OK, Json(view(&next, &versions))).into_response())
}

/// `GET /api/v1/event-definitions/{id}`'s parameter.
pub const GET_PARAMS: &[Param] = &[Param {
    name: "version",
    kind: ParamKind::Integer,
    description: "an older version (1, 2, ...); the latest when absent",
}];

/// `GET /api/v1/event-definitions/{id_or_type}`: by id, by exact type or
/// pattern, or the definition that applies to a type; `?version=N`.
pub async fn get(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path(id) = path?;
    let (query, mut errors) = params::parse(&uri, GET_PARAMS);
    let version = match query.get("version").map(str::parse::<u32>) {
        None => None,
        Some(Ok(n)) if n > 0 => Some(n),
        Some(_) => {
            errors.push(params::bad("version", "expected a positive integer"));
            None
        }
    };
    params::check(errors)?;
    let ctx = app.tenant_context(&key.tenant_id).await?;
    let shown: String = id.chars().take(64).collect();
    let entry = ctx.registry.lookup(&id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no event definition with id, type or pattern `{shown}` in this tenant"
        ))
    })?;
    let versions = entry.versions();
    let definition = match version {
        None => entry.latest(),
        Some(v) => entry.version(v).ok_or_else(|| {
            ApiError::not_found(format!(
                "definition {} has no version {v}; its versions are: {}",
                entry.latest().definition_id,
                versions
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?,
    };
    Ok(Json(view(definition, &versions)).into_response())
}

/// `GET /api/v1/event-definitions`' filters and paging.
pub const LIST_PARAMS: &[Param] = &[
    Param {
        name: "category",
        kind: ParamKind::String,
        description: "business, system, delivery or security",
    },
    Param {
        name: "source",
        kind: ParamKind::String,
        description: "definitions this event_source may send (no allowed_sources means any)",
    },
    Param {
        name: "type_prefix",
        kind: ParamKind::String,
        description: "event types (or patterns) starting with this",
    },
    Param {
        name: "q",
        kind: ParamKind::String,
        description: "words that all appear in the type, name, description or ui (case-insensitive)",
    },
    Param {
        name: "builtin",
        kind: ParamKind::Boolean,
        description: "true: only the built-in types; false: only the tenant's own",
    },
    Param {
        name: "limit",
        kind: ParamKind::Integer,
        description: "1 to 1000 definitions, default 100",
    },
    Param {
        name: "offset",
        kind: ParamKind::Integer,
        description: "definitions to skip, default 0",
    },
];

/// `GET /api/v1/event-definitions`: latest versions, sorted by type.
pub async fn list(
    State(app): State<App>,
    principal: Principal,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let (query, mut errors) = params::parse(&uri, LIST_PARAMS);
    let mut bad = |field: &str, message: String| errors.push(params::bad(field, message));
    let mut filter = DefinitionFilter {
        limit: 100,
        ..Default::default()
    };
    for (k, v) in query.iter() {
        match k {
            "category" => match Category::parse(v) {
                Some(c) => filter.category = Some(c),
                None => bad(k, format!("expected one of: {}", Category::allowed())),
            },
            "source" => match EventSource::parse(v) {
                Some(s) => filter.source = Some(s),
                None => bad(k, format!("expected one of: {}", EventSource::allowed())),
            },
            "type_prefix" => filter.type_prefix = Some(v.to_string()),
            "q" => filter.text = Some(v.to_string()),
            "builtin" => match v {
                "true" => filter.builtin = Some(true),
                "false" => filter.builtin = Some(false),
                _ => bad(k, "expected true or false".into()),
            },
            "limit" => match v.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => filter.limit = n,
                _ => bad(k, "expected an integer in 1..=1000".into()),
            },
            "offset" => match v.parse::<usize>() {
                Ok(n) => filter.offset = n,
                _ => bad(k, "expected a non-negative integer".into()),
            },
            // `params::parse` let through only LIST_PARAMS.
            _ => {}
        }
    }
    params::check(errors)?;
    let ctx = app.tenant_context(&key.tenant_id).await?;
    let (page, total) = ctx.registry.list(&filter);
    let definitions: Vec<Value> = page.into_iter().map(|e| entry_view(e)).collect();
    Ok(Json(json!({
        "has_more": filter.offset + definitions.len() < total,
        "definitions": definitions,
        "total": total,
        "limit": filter.limit,
        "offset": filter.offset,
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key `view` adds must be one `parse_input` accepts, or a
    /// fetched definition cannot be sent back.
    #[test]
    fn every_version_as_answered_parses_back_to_the_same_definition() {
        let body = json!({
            "event_type": "order.*", "event_category": "order", "name": "Orders",
            "description": "d", "payload_schema": {"type": "object"},
            "allowed_sources": ["backend"], "examples": [{}], "ui": {"icon": "cart"}
        });
        let v1 = parse_input(&body, None).unwrap().into_definition(
            "def_1".into(),
            1,
            herald_core::Timestamp::now(),
        );
        let v2 = v1.next_version(
            parse_input(&body, None).unwrap(),
            herald_core::Timestamp::now(),
        );
        assert!(v2.compatibility.is_some());
        for (d, versions) in [(&v1, vec![1]), (&v2, vec![1, 2])] {
            let shown = view(d, &versions);
            let back = parse_input(&shown, Some(&d.event_type))
                .unwrap_or_else(|e| panic!("{shown} refused: {e:?}"))
                .into_definition(d.definition_id.clone(), d.version, d.updated_at);
            assert_eq!(
                (
                    back.payload_schema,
                    back.allowed_sources,
                    back.ui,
                    back.name
                ),
                (
                    d.payload_schema.clone(),
                    d.allowed_sources.clone(),
                    d.ui.clone(),
                    d.name.clone()
                )
            );
        }
    }
}
