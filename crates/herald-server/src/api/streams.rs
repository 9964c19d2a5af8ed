//! `GET /api/v1/events/stream/{stream_id}` and
//! `GET /api/v1/events/projections/{entity_type}/{entity_id}`: a stream's
//! events in version order with its facts, and the entity state folded
//! from them, now or as it was (`at_version`, `at`).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use herald_core::{StreamId, Timestamp};
use herald_store::{Direction, ProjectionAt, Scope, StreamRead};
use serde_json::json;

use super::events::push_events;
use crate::App;
use crate::http::auth::Principal;
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;

/// A stream page's default and largest size.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;

pub const STREAM_PARAMS: &[Param] = &[
    Param {
        name: "from_version",
        kind: ParamKind::Integer,
        description: "the first version read: forward the lowest (default 1), backward the highest (default the current version)",
    },
    Param {
        name: "limit",
        kind: ParamKind::Integer,
        description: "events per page, 1..=10000 (default 1000)",
    },
    Param {
        name: "direction",
        kind: ParamKind::String,
        description: "`forward` (default: ascending versions) or `backward` (descending)",
    },
    Param {
        name: "follow",
        kind: ParamKind::Boolean,
        description: "answer as Server-Sent Events, like GET /api/v1/events/tail: the stored events from from_version (default 1), then new ones as they commit; Last-Event-ID resumes",
    },
];

pub const PROJECTION_PARAMS: &[Param] = &[
    Param {
        name: "at_version",
        kind: ParamKind::Integer,
        description: "the state after the event with this version (time travel by version)",
    },
    Param {
        name: "at",
        kind: ParamKind::String,
        description: "RFC 3339 time: the state made of the events Herald had stored by then (their processing_timestamp), which later events never change",
    },
];

/// The stream id of a path, or the 400 saying the form.
fn stream_id(raw: &str, field: &str) -> Result<StreamId, ApiError> {
    StreamId::parse(raw).map_err(|e| {
        ApiError::invalid(
            format!(
                "`{}` is not a stream id",
                raw.chars().take(64).collect::<String>()
            ),
            vec![params::bad(field, e.0)],
        )
    })
}

fn not_found(stream: &StreamId) -> ApiError {
    ApiError::not_found(format!("stream `{stream}` has no events in this tenant"))
}

/// A positive integer parameter.
fn version_param(
    p: &params::Params,
    name: &str,
    errors: &mut Vec<herald_core::FieldError>,
) -> Option<u64> {
    let v = p.get(name)?;
    match v.parse::<u64>() {
        Ok(n) if n >= 1 && n <= i64::MAX as u64 => Some(n),
        _ => {
            errors.push(params::bad(name, "expected a version, an integer from 1"));
            None
        }
    }
}

pub async fn read(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path(raw) = path?;
    let (p, mut errors) = params::parse(&uri, STREAM_PARAMS);
    let stream = stream_id(&raw, "stream_id");
    let from_version = version_param(&p, "from_version", &mut errors);
    let limit = match p.get("limit").map(str::parse::<usize>) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => {
            errors.push(params::bad(
                "limit",
                format!("expected an integer in 1..={MAX_LIMIT}"),
            ));
            DEFAULT_LIMIT
        }
    };
    let direction = match p.get("direction") {
        None | Some("forward") => Direction::Forward,
        Some("backward") => Direction::Backward,
        Some(_) => {
            errors.push(params::bad("direction", "expected `forward` or `backward`"));
            Direction::Forward
        }
    };
    let follow = params::boolean("follow", p.get("follow"), &mut errors).unwrap_or(false);
    if follow && (p.get("limit").is_some() || p.get("direction").is_some()) {
        errors.push(params::bad(
            "follow",
            "a followed stream is read forward to its end and then live: leave out limit and direction",
        ));
    }
    let stream = match stream {
        Ok(s) => s,
        Err(mut e) => {
            e.errors.extend(errors);
            return Err(e);
        }
    };
    params::check(errors)?;
    if follow {
        let tenant = key.tenant_id.clone();
        return super::tail::follow_stream(
            app,
            tenant,
            stream.as_str(),
            from_version.unwrap_or(1),
            &headers,
        )
        .await;
    }
    let read = StreamRead {
        from_version: from_version.or(match direction {
            Direction::Forward => Some(1),
            Direction::Backward => None,
        }),
        limit,
        direction,
    };
    let Some(page) = app
        .store
        .read_stream(&key.tenant_id, stream.as_str(), read)
        .await?
    else {
        return Err(not_found(&stream));
    };
    let mut out = String::with_capacity(
        page.events
            .iter()
            .map(|e| e.body.len() + 160)
            .sum::<usize>()
            + 512,
    );
    let info = &page.info;
    let last = page.events.last().and_then(|_| {
        // The version after (or before) this page, for the next request.
        let n = page.events.len() as u64;
        let first = read
            .from_version
            .unwrap_or(info.current_version)
            .min(info.current_version.max(1));
        match direction {
            Direction::Forward => Some(first + n),
            Direction::Backward => first.checked_sub(n).filter(|v| *v >= 1),
        }
    });
    let head = json!({
        "stream_id": stream.as_str(),
        "entity_type": stream.entity_type(),
        "entity_id": stream.entity_id(),
        "current_version": info.current_version,
        "event_count": info.event_count,
        "first_event_at": info.first_event_at,
        "last_event_at": info.last_event_at,
        "direction": match direction { Direction::Forward => "forward", Direction::Backward => "backward" },
        "count": page.events.len(),
        "has_more": page.has_more,
        "next_version": if page.has_more { last } else { None },
    });
    out.push_str(head.to_string().trim_end_matches('}'));
    out.push_str(",\"events\":");
    let results = super::events::results_of(&app.store, &page.events).await?;
    push_events(&mut out, &page.events, &results)?;
    out.push('}');
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}

pub async fn projection(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path((entity_type, entity_id)) = path?;
    let (p, mut errors) = params::parse(&uri, PROJECTION_PARAMS);
    let at_version = version_param(&p, "at_version", &mut errors);
    let at = p.get("at").and_then(|v| match Timestamp::parse(v) {
        Ok(t) => Some(t),
        Err(e) => {
            errors.push(params::bad("at", format!("expected an RFC 3339 time: {e}")));
            None
        }
    });
    if p.get("at").is_some() && p.get("at_version").is_some() {
        errors.push(params::bad("at", "give at or at_version, not both"));
    }
    let stream = match stream_id(&format!("{entity_type}:{entity_id}"), "entity_type") {
        Ok(s) => s,
        Err(mut e) => {
            e.errors.extend(errors);
            return Err(e);
        }
    };
    params::check(errors)?;
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let rules = tenant
        .folds
        .with_snapshots(app.config.projection_snapshot_every);
    let projected = match (at_version, at) {
        (Some(v), _) => {
            app.store
                .project(
                    &key.tenant_id,
                    stream.as_str(),
                    ProjectionAt::Version(v),
                    &rules,
                )
                .await?
        }
        (None, Some(t)) => {
            app.store
                .project(
                    &key.tenant_id,
                    stream.as_str(),
                    ProjectionAt::Time(t),
                    &rules,
                )
                .await?
        }
        (None, None) => {
            app.projections
                .current(&app.store, &key.tenant_id, stream.as_str(), &rules)
                .await?
        }
    };
    let Some(p) = projected else {
        return Err(match (at_version, at) {
            (None, None) => not_found(&stream),
            _ => ApiError::not_found(format!(
                "stream `{stream}` had no events by then in this tenant"
            )),
        });
    };
    if let Some(v) = at_version
        && p.version < v
    {
        return Err(ApiError::not_found(format!(
            "stream `{stream}` is at version {}; there is no version {v} yet",
            p.version
        ))
        .with("current_version", p.version));
    }
    Ok(axum::Json(json!({
        "entity_type": stream.entity_type(),
        "entity_id": stream.entity_id(),
        "stream_id": stream.as_str(),
        "state": p.state,
        "version": p.version,
        "last_event_id": p.last_event_id,
        "updated_at": p.updated_at,
        "rules": rules.fingerprint,
    }))
    .into_response())
}
