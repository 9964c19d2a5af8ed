//! `GET /api/v1/events/{id}` and `POST /api/v1/events/query`: reading
//! stored events. A query body is the event filter
//! ([`herald_core::filter::EventFilter`]) plus this route's paging and
//! ordering ([`Paging`]); [`store_query`] turns both into the store's query.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::correlation::CorrelationKey;
use herald_core::error::type_name;
use herald_core::filter::{self, EventFilter, Parsed};
use herald_core::{ErrorKind, EventId, FieldError};
use herald_store::{Cursor, EventQuery, Order, Scope};
use serde_json::Value;

use super::field_error;
use super::response::{EventResponse, json_response};
use super::splice::{decoded_response, splice_response};
use crate::App;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::problem::ApiError;

/// How a query pages and orders its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    pub order: Order,
    /// 1..=1000.
    pub limit: usize,
    pub offset: usize,
    /// Keyset position from a previous page's `next_cursor`.
    pub cursor: Option<Cursor>,
    /// Count every match for `total` (`track_total`).
    pub exact_total: bool,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            order: Order::default(),
            limit: 100,
            offset: 0,
            cursor: None,
            exact_total: false,
        }
    }
}

impl Paging {
    /// The paging keys, for the unknown-filter message.
    const FIELDS: &'static str = "track_total, order, limit, offset, cursor";

    /// Takes one key of the query body if it is a paging key.
    fn parse_field(&mut self, key: &str, v: &Value, errors: &mut Vec<FieldError>) -> Parsed {
        let field = herald_core::error::pointer_push("", key);
        let f = field.as_str();
        let mut err = |kind, message: String| errors.push(field_error(f, kind, message));
        match key {
            "track_total" => match v.as_bool() {
                Some(b) => self.exact_total = b,
                None => err(
                    ErrorKind::InvalidType,
                    format!("expected true or false, got {}", type_name(v)),
                ),
            },
            "order" => match v.as_str() {
                Some("asc") => self.order = Order::Asc,
                Some("desc") => self.order = Order::Desc,
                _ => err(
                    ErrorKind::InvalidValue,
                    format!("expected `asc` or `desc`, got {v}"),
                ),
            },
            "limit" => self.limit = count(v, 1..=1000, &mut err).unwrap_or(100),
            "offset" => self.offset = count(v, 0..=1_000_000, &mut err).unwrap_or(0),
            "cursor" => match v.as_str().map(Cursor::decode) {
                Some(Some(c)) => self.cursor = Some(c),
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

/// Parses a query body, naming every bad filter and paging key at once.
pub fn parse_query(value: Value) -> Result<(EventFilter, Paging), ApiError> {
    let body = match value {
        Value::Object(body) => body,
        other => {
            return Err(ApiError::invalid(
                "a query is a JSON object of filters",
                vec![filter::not_an_object(&other)],
            ));
        }
    };
    let mut paging = Paging::default();
    let mut errors = Vec::new();
    let filter = filter::parse_with(
        &body,
        Paging::FIELDS,
        |key, v, errors| paging.parse_field(key, v, errors),
        &mut errors,
    );
    if paging.cursor.is_some() && paging.offset > 0 {
        errors.push(field_error(
            "/offset",
            ErrorKind::InvalidValue,
            "use either cursor or offset, not both",
        ));
    }
    if errors.is_empty() {
        Ok((filter, paging))
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

/// The store's query for a filter and its paging.
pub fn store_query(filter: EventFilter, paging: Paging) -> EventQuery {
    EventQuery {
        event_types: filter.event_types,
        event_sources: filter.event_sources,
        event_categories: filter.event_categories,
        categories: filter.categories,
        statuses: filter.statuses,
        start_time: filter.start_time,
        end_time: filter.end_time,
        keys: filter.keys,
        json_fields: filter
            .fields
            .into_iter()
            .map(|f| (f.part.as_str().to_string(), f.key, f.value))
            .collect(),
        outcome_status: filter.outcome_status,
        environment: filter.environment,
        service: filter.service,
        stream_id: filter.stream_id,
        text: filter.text,
        order: paging.order,
        limit: paging.limit,
        offset: paging.offset,
        cursor: paging.cursor,
        exact_total: paging.exact_total,
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
        Some(stored) => Ok(json_response(
            StatusCode::OK,
            &EventResponse::stored(&stored),
        )),
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
    let (mut filter, paging) = parse_query(value)?;
    // Ids are stored redacted (an email becomes `email_hash:<hash>`, a card
    // number is masked): look for them the way they were stored.
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let stored = |v: &mut String| *v = tenant.processor.redaction.stored_text(v, &tenant.hasher);
    for (k, v) in &mut filter.keys {
        if *k != CorrelationKey::EmailHash {
            stored(v);
        }
    }
    for f in &mut filter.fields {
        stored(&mut f.value);
    }
    let q = store_query(filter, paging);
    let page = app.store.query_events_json(&key.tenant_id, &q).await?;
    let mut out = String::with_capacity(
        page.events
            .iter()
            .map(|e| e.body.len() + 160)
            .sum::<usize>()
            + 256,
    );
    out.push_str("{\"events\":[");
    for (i, row) in page.events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if !splice_response(&mut out, row) {
            out.push_str(&decoded_response(row)?);
        }
    }
    let rest = serde_json::json!({
        "total": page.total,
        "total_relation": if page.total_exact { "eq" } else { "gte" },
        "has_more": page.has_more,
        "next_cursor": page.next_cursor,
        "limit": q.limit,
        "offset": q.offset,
    });
    out.push_str("],");
    out.push_str(rest.to_string().trim_start_matches('{'));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response())
}
