//! The dead-letter queue: `GET /api/v1/dlq` lists the tenant's deliveries
//! given up on (filters, keyset paging) with their event, target
//! subscription, every attempt and the last error; `POST
//! /api/v1/dlq/redrive` re-queues some by id or by filter; `DELETE
//! /api/v1/dlq/{id}` discards one; `POST
//! …/subscriptions/{id}/recover` re-queues a subscription's dead letters of
//! a time window. A re-queued delivery is the same delivery: its
//! `webhook-id` stays, its retry schedule starts over, and the delivery
//! worker is woken so it goes out at once.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use herald_core::error::pointer_push;
use herald_core::{ErrorKind, FieldError, Timestamp};
use herald_store::{
    DeadLetter, DeadLetterFilter, DeadLetterQuery, DeadLetterSelection, ProcessingJob,
    ProcessorResult, ResultStatus, Scope,
};
use serde_json::{Map, Value, json};

use super::{attempt_view, delivery_view, require_subscription};
use crate::App;
use crate::api::events::EventResponse;
use crate::http::audit::AuditSlot;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;

/// The filter fields, as query parameters of the listing and as body
/// fields of a redrive.
pub const FILTER_FIELDS: [&str; 6] = [
    "subscription_id",
    "processor_id",
    "event_type",
    "start_time",
    "end_time",
    "error_class",
];

/// How many ids one redrive may name.
pub const MAX_REDRIVE_IDS: usize = 1000;

/// `GET /api/v1/dlq`'s parameters.
pub const LIST_PARAMS: &[Param] = &[
    Param {
        name: "subscription_id",
        kind: ParamKind::String,
        description: "only this subscription's dead letters",
    },
    Param {
        name: "processor_id",
        kind: ParamKind::String,
        description: "only events this processor failed on (processing dead letters)",
    },
    Param {
        name: "event_type",
        kind: ParamKind::String,
        description: "only those of events of this exact type",
    },
    Param {
        name: "start_time",
        kind: ParamKind::String,
        description: "RFC 3339 instant; those that died at or after it",
    },
    Param {
        name: "end_time",
        kind: ParamKind::String,
        description: "RFC 3339 instant; those that died before it",
    },
    Param {
        name: "error_class",
        kind: ParamKind::String,
        description: "only those whose last attempt failed so (http_5xx, http_4xx, timeout, connect, …)",
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

/// A filter field's text value: a non-empty string of at most 256 bytes.
fn text_field(name: &str, at: String, v: &Value, errors: &mut Vec<FieldError>) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
        Value::String(_) => {
            errors.push(FieldError {
                field: at,
                message: format!("{name} must be 1 to 256 bytes"),
                kind: ErrorKind::InvalidValue,
            });
            None
        }
        _ => {
            errors.push(FieldError {
                field: at,
                message: format!("{name} must be a string"),
                kind: ErrorKind::InvalidType,
            });
            None
        }
    }
}

fn time_field(at: String, v: &str, errors: &mut Vec<FieldError>) -> Option<Timestamp> {
    Timestamp::parse(v)
        .map_err(|message| {
            errors.push(FieldError {
                field: at,
                message,
                kind: ErrorKind::InvalidValue,
            })
        })
        .ok()
}

/// A filter from `(name, value)` pairs of [`FILTER_FIELDS`] (query
/// parameters or body fields), every bad one named in `errors`.
fn filter_of<'a>(
    given: impl Iterator<Item = (&'a str, &'a Value)>,
    errors: &mut Vec<FieldError>,
) -> DeadLetterFilter {
    let mut f = DeadLetterFilter::default();
    for (name, v) in given {
        let at = pointer_push("", name);
        match name {
            "start_time" | "end_time" => {
                let text = text_field(name, at.clone(), v, errors);
                let t = text.and_then(|s| time_field(at, &s, errors));
                if name == "start_time" {
                    f.died_from = t;
                } else {
                    f.died_before = t;
                }
            }
            _ => {
                let text = text_field(name, at, v, errors);
                match name {
                    "subscription_id" => f.subscription_id = text,
                    "processor_id" => f.processor_id = text,
                    "event_type" => f.event_type = text,
                    "error_class" => f.error_class = text,
                    // Callers pass only FILTER_FIELDS.
                    _ => {}
                }
            }
        }
    }
    if let (Some(from), Some(before)) = (f.died_from, f.died_before)
        && from.unix_nanos() >= before.unix_nanos()
    {
        errors.push(params::bad("end_time", "must be after start_time"));
    }
    f
}

/// A dead letter as answered: the delivery with its attempts, when it
/// died, its last error, its event and its target subscription (`null`
/// once deleted).
async fn view(
    app: &App,
    d: &DeadLetter,
    targets: &mut HashMap<String, Value>,
) -> Result<Value, ApiError> {
    let tenant = &d.delivery.tenant_id;
    let event = app
        .store
        .get_event(tenant, d.delivery.event_id)
        .await?
        .and_then(|e| serde_json::to_value(EventResponse::stored(&e)).ok());
    let id = &d.delivery.subscription_id;
    if !targets.contains_key(id) {
        let target = app.store.get_subscription(tenant, id).await?.map(|s| {
            json!({
                "subscription_id": s.subscription_id,
                "subscriber_name": s.spec.subscriber_name,
                "callback_url": s.spec.callback_url,
                "enabled": s.spec.enabled,
            })
        });
        targets.insert(id.clone(), target.unwrap_or(Value::Null));
    }
    let mut out = delivery_view(&d.delivery, &d.attempts);
    if let Value::Object(out) = &mut out {
        out.insert("event_type".into(), json!(d.event_type));
        out.insert("event_time".into(), json!(d.event_time));
        out.insert("died_at".into(), json!(d.died_at));
        out.insert(
            "last_error".into(),
            d.attempts.last().map_or(Value::Null, attempt_view),
        );
        out.insert("event".into(), event.unwrap_or(Value::Null));
        out.insert("subscription".into(), targets[id].clone());
    }
    Ok(out)
}

/// `GET /api/v1/dlq`: one page of the tenant's dead letters, oldest
/// delivery first.
pub async fn list(
    State(app): State<App>,
    principal: Principal,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let (p, mut errors) = params::parse(&uri, LIST_PARAMS);
    let given: Vec<(&str, Value)> = p
        .iter()
        .filter(|(name, _)| FILTER_FIELDS.contains(name))
        .map(|(name, v)| (name, Value::String(v.to_string())))
        .collect();
    let filter = filter_of(given.iter().map(|(n, v)| (*n, v)), &mut errors);
    let limit = params::page_limit(&p, &mut errors);
    let after = match p.get("cursor") {
        Some(c) if c.starts_with("pjb_") && c.len() <= 64 => Some(c.to_string()),
        _ => params::page_cursor(&p, "dlv_", &mut errors),
    };
    params::check(errors)?;
    // Ids order dead deliveries (`dlv_…`) before dead processing jobs
    // (`pjb_…`): a page takes deliveries first, then jobs.
    let in_jobs = after.as_deref().is_some_and(|a| a.starts_with("pjb_"));
    let mut items = Vec::new();
    let mut next_cursor = None;
    if filter.wants_deliveries() && !in_jobs {
        let page = app
            .store
            .dead_letters(
                &key.tenant_id,
                &DeadLetterQuery {
                    filter: filter.clone(),
                    limit,
                    after: after.clone(),
                },
            )
            .await?;
        let mut targets = HashMap::new();
        for d in &page.dead_letters {
            items.push(view(&app, d, &mut targets).await?);
        }
        next_cursor = page.next_cursor;
    }
    if next_cursor.is_none() && filter.wants_jobs() && items.len() < limit {
        let room = limit - items.len();
        let after = after.as_deref().filter(|_| in_jobs);
        let mut jobs = app
            .store
            .dead_processing_jobs(&key.tenant_id, &filter.for_jobs(), room + 1, after)
            .await?;
        if jobs.len() > room {
            jobs.truncate(room);
            next_cursor = jobs.last().map(|(j, _)| j.job_id.clone());
        }
        for (job, results) in &jobs {
            items.push(job_view(&app, job, results).await?);
        }
    }
    Ok(Json(json!({
        "dead_letters": items,
        "count": items.len(),
        "has_more": next_cursor.is_some(),
        "next_cursor": next_cursor,
    }))
    .into_response())
}

/// A dead processing job as answered: the event's id, type and event, its
/// attempts, when it died, the last error, and every processor's last
/// result on the event (the failed ones are why it died).
async fn job_view(
    app: &App,
    job: &ProcessingJob,
    results: &[ProcessorResult],
) -> Result<Value, ApiError> {
    let event = app
        .store
        .get_event(&job.tenant_id, job.event_id)
        .await?
        .and_then(|e| serde_json::to_value(EventResponse::stored(&e)).ok());
    Ok(json!({
        "dead_letter_id": job.job_id,
        "target": "processor",
        "event_id": job.event_id,
        "event_type": job.event_type,
        "state": job.state.as_str(),
        "attempts": job.attempts,
        "died_at": job.updated_at,
        "last_error": job.last_error,
        "failed_processors": results
            .iter()
            .filter(|r| r.status == ResultStatus::Failed)
            .map(|r| json!({ "processor_id": r.processor_id, "processor_name": r.processor_name, "error": r.error }))
            .collect::<Vec<_>>(),
        "processing_results": results,
        "event": event,
    }))
}

fn invalid(errors: Vec<FieldError>) -> ApiError {
    ApiError::problems("the request", errors)
}

fn object(value: &Value) -> Result<&Map<String, Value>, ApiError> {
    value.as_object().ok_or_else(|| {
        invalid(vec![FieldError {
            field: String::new(),
            message: "expected a JSON object".into(),
            kind: ErrorKind::InvalidType,
        }])
    })
}

/// A redrive body: `{"ids": [...]}` or filter fields, not both, not neither.
fn parse_redrive(value: &Value) -> Result<DeadLetterSelection, ApiError> {
    let body = object(value)?;
    let mut errors = Vec::new();
    for name in body.keys() {
        if name != "ids" && !FILTER_FIELDS.contains(&name.as_str()) {
            errors.push(FieldError {
                field: pointer_push("", name),
                message: format!("unknown field; known: ids, {}", FILTER_FIELDS.join(", ")),
                kind: ErrorKind::InvalidValue,
            });
        }
    }
    let filter_given = body.keys().any(|k| FILTER_FIELDS.contains(&k.as_str()));
    let filter = filter_of(
        body.iter()
            .filter(|(k, _)| FILTER_FIELDS.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v)),
        &mut errors,
    );
    let ids = body.get("ids").map(|v| match v {
        Value::Array(items) if items.is_empty() || items.len() > MAX_REDRIVE_IDS => {
            errors.push(FieldError {
                field: "/ids".into(),
                message: format!("give 1 to {MAX_REDRIVE_IDS} delivery ids"),
                kind: ErrorKind::InvalidValue,
            });
            Vec::new()
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                Value::String(s) if !s.is_empty() && s.len() <= 128 => Some(s.clone()),
                _ => {
                    errors.push(FieldError {
                        field: format!("/ids/{i}"),
                        message: "expected a delivery id (dlv_…)".into(),
                        kind: ErrorKind::InvalidValue,
                    });
                    None
                }
            })
            .collect(),
        _ => {
            errors.push(FieldError {
                field: "/ids".into(),
                message: "expected an array of delivery ids".into(),
                kind: ErrorKind::InvalidType,
            });
            Vec::new()
        }
    });
    let what = format!(
        "give `ids` (the dead letters' delivery ids) or at least one filter field ({})",
        FILTER_FIELDS.join(", ")
    );
    match (&ids, filter_given) {
        (Some(_), true) => errors.push(FieldError {
            field: String::new(),
            message: format!("{what}, not both"),
            kind: ErrorKind::InvalidValue,
        }),
        (None, false) => errors.push(FieldError {
            field: String::new(),
            message: what,
            kind: ErrorKind::Missing,
        }),
        _ => {}
    }
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    Ok(match ids {
        Some(ids) => DeadLetterSelection::Ids(ids),
        None => DeadLetterSelection::Matching(filter),
    })
}

/// `POST /api/v1/dlq/redrive`: re-queues the picked dead letters; answers
/// how many.
pub async fn redrive(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let value = body::read_json(&app.body_limits, BodyKind::Query, &headers, body).await?;
    let selection = parse_redrive(&value)?;
    let now = app.clock.now();
    let n = match &selection {
        DeadLetterSelection::Ids(ids) => {
            let (jobs, deliveries): (Vec<String>, Vec<String>) =
                ids.iter().cloned().partition(|id| id.starts_with("pjb_"));
            app.store
                .redrive_dead_letters(&key.tenant_id, &DeadLetterSelection::Ids(deliveries), now)
                .await?
                + app
                    .store
                    .redrive_processing_jobs(&key.tenant_id, Some(&jobs), &Default::default(), now)
                    .await?
        }
        DeadLetterSelection::Matching(f) => {
            let deliveries = if f.wants_deliveries() {
                app.store
                    .redrive_dead_letters(&key.tenant_id, &selection, now)
                    .await?
            } else {
                0
            };
            let jobs = if f.wants_jobs() {
                app.store
                    .redrive_processing_jobs(&key.tenant_id, None, &f.for_jobs(), now)
                    .await?
            } else {
                0
            };
            deliveries + jobs
        }
    };
    app.delivery_wake.notify_one();
    app.worker_wake.notify_one();
    slot.detail(match &selection {
        DeadLetterSelection::Ids(ids) => {
            format!("redrove {n} of {} dead letters named by id", ids.len())
        }
        DeadLetterSelection::Matching(f) => format!("redrove {n} dead letters matching {f:?}"),
    });
    Ok(Json(json!({ "redriven": n })).into_response())
}

/// `DELETE /api/v1/dlq/{id}`: discards one dead letter with its attempts.
pub async fn discard(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let Path(id) = path?;
    let discarded = if id.starts_with("pjb_") {
        app.store
            .discard_processing_job(&key.tenant_id, &id)
            .await?
    } else {
        app.store.discard_dead_letter(&key.tenant_id, &id).await?
    };
    if !discarded {
        let shown: String = id.chars().take(64).collect();
        return Err(ApiError::not_found(format!(
            "no dead letter `{shown}` in this tenant"
        )));
    }
    slot.detail(format!("discarded dead letter {id}"));
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A recover body: `since` (required) and `until` (default `now`), RFC 3339.
fn parse_recover(value: &Value, now: Timestamp) -> Result<(Timestamp, Timestamp), ApiError> {
    let body = object(value)?;
    let mut errors = Vec::new();
    for name in body.keys() {
        if name != "since" && name != "until" {
            errors.push(FieldError {
                field: pointer_push("", name),
                message: "unknown field; known: since, until".into(),
                kind: ErrorKind::InvalidValue,
            });
        }
    }
    let mut time = |name: &str| {
        body.get(name).and_then(|v| {
            let at = pointer_push("", name);
            text_field(name, at.clone(), v, &mut errors)
                .and_then(|s| time_field(at, &s, &mut errors))
        })
    };
    let since = time("since");
    let until = time("until");
    if !body.contains_key("since") {
        errors.push(FieldError {
            field: "/since".into(),
            message: "give since: the RFC 3339 start of the window of deliveries to re-queue"
                .into(),
            kind: ErrorKind::Missing,
        });
    }
    let until = until.unwrap_or(now);
    if let Some(since) = since
        && since.unix_nanos() >= until.unix_nanos()
    {
        errors.push(FieldError {
            field: "/until".into(),
            message: "the window ends before it starts: until must be after since".into(),
            kind: ErrorKind::InvalidValue,
        });
    }
    match since {
        Some(since) if errors.is_empty() => Ok((since, until)),
        _ => Err(invalid(errors)),
    }
}

/// `POST /api/v1/events/subscriptions/{subscription_id}/recover`:
/// re-queues the subscription's deliveries that died in `[since, until)`;
/// answers how many.
pub async fn recover(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let Path(id) = path?;
    let value = body::read_json(&app.body_limits, BodyKind::Query, &headers, body).await?;
    let now = app.clock.now();
    let (since, until) = parse_recover(&value, now)?;
    require_subscription(&app, &key.tenant_id, &id).await?;
    let n = app
        .store
        .recover_deliveries(&key.tenant_id, &id, since, until, now)
        .await?;
    app.delivery_wake.notify_one();
    slot.detail(format!(
        "recovered {n} dead deliveries of {id} that died in [{since}, {until})"
    ));
    Ok(Json(json!({ "recovered": n, "since": since, "until": until })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields named, sorted (the body's key order is the map's).
    fn fields(e: ApiError) -> Vec<String> {
        let mut fields: Vec<String> = e.errors.into_iter().map(|e| e.field).collect();
        fields.sort();
        fields
    }

    #[test]
    fn a_redrive_takes_ids_or_filter_fields_and_names_every_bad_one() {
        assert_eq!(
            parse_redrive(&json!({"ids": ["dlv_1", "dlv_2"]})).unwrap(),
            DeadLetterSelection::Ids(vec!["dlv_1".into(), "dlv_2".into()])
        );
        let t = Timestamp::parse("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(
            parse_redrive(
                &json!({"subscription_id": "sub_1", "start_time": "2026-01-02T03:04:05Z"})
            )
            .unwrap(),
            DeadLetterSelection::Matching(DeadLetterFilter {
                subscription_id: Some("sub_1".into()),
                died_from: Some(t),
                ..Default::default()
            })
        );
        let neither = parse_redrive(&json!({})).unwrap_err();
        assert_eq!(neither.status, 400);
        assert!(
            neither.errors[0].message.contains("give `ids`"),
            "{neither:?}"
        );
        assert_eq!(
            fields(parse_redrive(&json!({"ids": ["dlv_1"], "event_type": "x"})).unwrap_err()),
            vec![""]
        );
        assert_eq!(
            fields(
                parse_redrive(&json!({"ids": ["dlv_1", 7, ""], "colour": 1, "start_time": "yesterday", "end_time": 5}))
                    .unwrap_err()
            ),
            vec!["", "/colour", "/end_time", "/ids/1", "/ids/2", "/start_time"]
        );
        assert_eq!(
            fields(parse_redrive(&json!({"ids": []})).unwrap_err()),
            vec!["/ids"]
        );
        assert_eq!(fields(parse_redrive(&json!([1])).unwrap_err()), vec![""]);
    }

    #[test]
    fn a_recover_needs_since_and_an_until_after_it() {
        let now = Timestamp::parse("2026-01-02T04:00:00Z").unwrap();
        let since = Timestamp::parse("2026-01-02T03:00:00Z").unwrap();
        assert_eq!(
            parse_recover(&json!({"since": "2026-01-02T03:00:00Z"}), now).unwrap(),
            (since, now)
        );
        assert_eq!(
            fields(parse_recover(&json!({}), now).unwrap_err()),
            vec!["/since"]
        );
        assert_eq!(
            fields(
                parse_recover(&json!({"since": "2026-01-02T05:00:00Z", "x": 1}), now).unwrap_err()
            ),
            vec!["/until", "/x"]
        );
        assert_eq!(
            fields(parse_recover(&json!({"since": "soon", "until": "later"}), now).unwrap_err()),
            vec!["/since", "/until"]
        );
    }
}
