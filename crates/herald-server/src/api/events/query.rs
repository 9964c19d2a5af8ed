//! `GET /api/v1/events/{id}` and `POST /api/v1/events/query`: reading
//! stored events. A query body is the event filter
//! ([`herald_core::filter::EventFilter`]) plus this route's paging and
//! ordering keys, parsed straight into the store's [`EventQuery`], which
//! carries the filter as it is.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::error::type_name;
use herald_core::filter::{self, Parsed};
use herald_core::{ErrorKind, EventId, FieldError};
use herald_store::{Cursor, EventQuery, Order, Scope};
use serde_json::Value;

use super::field_error;
use super::response::{EventResponse, json_response};
use super::splice::push_events;
use crate::App;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::problem::ApiError;

/// The paging keys, for the unknown-filter message.
const PAGING_FIELDS: &str = "track_total, order, limit, offset, cursor";

/// Takes one key of the query body into `q` if it is a paging key
/// (`track_total`, `order`, `limit`, `offset`, `cursor`).
fn parse_paging(q: &mut EventQuery, key: &str, v: &Value, errors: &mut Vec<FieldError>) -> Parsed {
    let field = herald_core::error::pointer_push("", key);
    let f = field.as_str();
    let mut err = |kind, message: String| errors.push(field_error(f, kind, message));
    match key {
        "track_total" => match v.as_bool() {
            Some(b) => q.exact_total = b,
            None => err(
                ErrorKind::InvalidType,
                format!("expected true or false, got {}", type_name(v)),
            ),
        },
        "order" => match v.as_str() {
            Some("asc") => q.order = Order::Asc,
            Some("desc") => q.order = Order::Desc,
            _ => err(
                ErrorKind::InvalidValue,
                format!("expected `asc` or `desc`, got {v}"),
            ),
        },
        "limit" => q.limit = count(v, 1..=1000, &mut err).unwrap_or(EventQuery::DEFAULT_LIMIT),
        "offset" => q.offset = count(v, 0..=1_000_000, &mut err).unwrap_or(0),
        "cursor" => match v.as_str().map(Cursor::decode) {
            Some(Some(c)) => q.cursor = Some(c),
            _ if v.is_null() => {}
            _ => err(
                ErrorKind::InvalidValue,
                "not a cursor this server issued (use next_cursor from a previous page)".into(),
            ),
        },
        _ => return Parsed::Unknown,
    }
    Parsed::Filter
}

/// An integer in `range`.
fn count(
    v: &Value,
    range: std::ops::RangeInclusive<u64>,
    err: &mut impl FnMut(ErrorKind, String),
) -> Option<usize> {
    match v.as_u64() {
        Some(n) if range.contains(&n) => Some(n as usize),
        _ => {
            err(
                ErrorKind::InvalidValue,
                format!(
                    "expected an integer in {}..={}, got {v}",
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }
}

/// Parses a query body (the event filter and this route's paging keys)
/// into the store's query, naming every bad filter and paging key at once.
pub fn parse_query(value: Value) -> Result<EventQuery, ApiError> {
    let body = match value {
        Value::Object(body) => body,
        other => {
            return Err(ApiError::invalid(
                "a query is a JSON object of filters",
                vec![filter::not_an_object(&other)],
            ));
        }
    };
    let mut q = EventQuery::default();
    let mut errors = Vec::new();
    q.filter = filter::parse_with(
        &body,
        PAGING_FIELDS,
        |key, v, errors| parse_paging(&mut q, key, v, errors),
        &mut errors,
    );
    if q.cursor.is_some() && q.offset > 0 {
        errors.push(field_error(
            "/offset",
            ErrorKind::InvalidValue,
            "use either cursor or offset, not both",
        ));
    }
    if errors.is_empty() {
        Ok(q)
    } else {
        let n = errors.len();
        Err(ApiError::invalid(
            format!(
                "the query has {n} invalid filter{}",
                if n == 1 { "" } else { "s" }
            ),
            errors,
        ))
    }
}

pub async fn get(
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
    match app.store.get_event(&key.tenant_id, event_id).await? {
        Some(stored) => {
            let results = app
                .store
                .processing_results(&[event_id])
                .await?
                .remove(&event_id)
                .unwrap_or_default();
            Ok(json_response(
                StatusCode::OK,
                &EventResponse {
                    processing_results: &results,
                    ..EventResponse::stored(&stored)
                },
            ))
        }
        None => Err(not_found()),
    }
}

pub async fn query(
    State(app): State<App>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let value = body::read_json(&app.body_limits, BodyKind::Query, &headers, body).await?;
    let mut q = parse_query(value)?;
    // Ids are stored redacted (an email becomes `email_hash:<hash>`, a card
    // number is masked): look for them the way they were stored.
    let tenant = app.tenant_context(&key.tenant_id).await?;
    tenant.filter_as_stored(&mut q.filter);
    let page = app.store.query_events_json(&key.tenant_id, &q).await?;
    let mut out = String::with_capacity(
        page.events
            .iter()
            .map(|e| e.body.len() + 160)
            .sum::<usize>()
            + 256,
    );
    out.push_str("{\"events\":");
    let results = super::splice::results_of(&app.store, &page.events).await?;
    push_events(&mut out, &page.events, &results)?;
    let rest = serde_json::json!({
        "total": page.total,
        "total_relation": if page.total_exact { "eq" } else { "gte" },
        "has_more": page.has_more,
        "next_cursor": page.next_cursor,
        "limit": q.limit,
        "offset": q.offset,
    });
    out.push(',');
    out.push_str(rest.to_string().trim_start_matches('{'));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}
