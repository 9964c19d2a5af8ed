//! `POST /api/v1/events/replay` (scope `manage`) and
//! `GET /api/v1/events/replay/{replay_id}` (scope `read`): delivering
//! stored events again. A request selects events by `event_ids`, by
//! `stream_id`, or by `start_time` and `end_time` plus the event query's
//! filter fields (one parser for all: `herald_workers::replay::selection`),
//! names one `target_service` (a subscription id or name; default: every
//! enabled subscription), and may be a `dry_run`. A replay is stored and
//! answered 202 at once; the replay worker does the rest. A dry run is
//! counted here, synchronously, over at most [`DRY_RUN_BOUND`] events, with
//! the worker's own reader and matching, and stored as completed with
//! nothing delivered.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_core::TenantId;
use herald_core::correlation::CorrelationKey;
use herald_core::error::{ErrorKind, FieldError, type_name};
use herald_core::filter::{self, EventPart, Parsed};
use herald_store::{
    NewReplay, Replay, ReplayProgress, ReplayState, Scope, Subscription, SubscriptionQuery,
};
use herald_workers::replay::{self, ReplayWorker, selection};
use serde_json::{Map, Value, json};

use crate::App;
use crate::http::audit::AuditSlot;
use crate::http::auth::Principal;
use crate::http::body::{self, BodyKind};
use crate::http::problem::ApiError;

/// The most events a dry run reads before it answers with the counts so
/// far (`complete: false`).
pub const DRY_RUN_BOUND: usize = 10_000;

/// The request keys that are not the selection.
const OWN_FIELDS: &str = "target_service, dry_run";

fn bad(field: &str, kind: ErrorKind, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_string(),
        message: message.into(),
        kind,
    }
}

fn invalid(errors: Vec<FieldError>) -> ApiError {
    ApiError::problems("the replay request", errors)
}

/// Every subscription of the tenant (only the enabled ones when asked),
/// in creation order.
async fn subscriptions(
    app: &App,
    tenant: &TenantId,
    enabled: Option<bool>,
) -> Result<Vec<Subscription>, ApiError> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = app
            .store
            .list_subscriptions(
                tenant,
                &SubscriptionQuery {
                    enabled,
                    limit: 1000,
                    after,
                },
            )
            .await?;
        out.extend(page.subscriptions);
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

/// The subscription `target` names: its id, else its subscriber name.
async fn resolve(
    app: &App,
    tenant: &TenantId,
    target: &str,
) -> Result<Option<Subscription>, ApiError> {
    if let Some(s) = app.store.get_subscription(tenant, target).await? {
        return Ok(Some(s));
    }
    Ok(subscriptions(app, tenant, None)
        .await?
        .into_iter()
        .find(|s| s.spec.subscriber_name == target))
}

/// Identifiers are stored redacted (an email becomes `email_hash:<hash>`,
/// a card number is masked): the selection looks for them the way they
/// were stored, as the event query does. Rewrites the selection's
/// correlation keys and `actor`/`object`/`context`/`outcome` values.
fn as_stored(selection: &mut Map<String, Value>, stored: impl Fn(&str) -> String) {
    for (key, value) in selection.iter_mut() {
        if let Some(k) = CorrelationKey::parse(key) {
            if k != CorrelationKey::EmailHash
                && let Value::String(s) = value
            {
                *s = stored(s);
            }
        } else if let (Some(part), Value::Object(fields)) = (EventPart::parse(key), value) {
            for (sub, v) in fields.iter_mut() {
                let kept = matches!(
                    (part, sub.as_str()),
                    (EventPart::Outcome, "status")
                        | (EventPart::Context, "environment" | "service")
                        | (EventPart::Actor, "email_hash")
                );
                if !kept && let Value::String(s) = v {
                    *s = stored(s);
                }
            }
        }
    }
}

/// A replay as the API answers it.
fn view(r: &Replay) -> Value {
    json!({
        "replay_id": r.replay_id,
        "status_url": status_url(&r.replay_id),
        "state": r.state.as_str(),
        "dry_run": r.dry_run,
        "selection": r.selection,
        "target_subscriptions": r.targets,
        "events_scanned": r.progress.events_scanned,
        "events_matched": r.progress.events_matched,
        "deliveries_created": r.progress.deliveries_created,
        "error": r.error,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "completed_at": r.completed_at,
    })
}

fn status_url(replay_id: &str) -> String {
    format!("/api/v1/events/replay/{replay_id}")
}

/// `POST /api/v1/events/replay`.
pub async fn create(
    State(app): State<App>,
    principal: Principal,
    Extension(slot): Extension<AuditSlot>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Manage)?;
    let value = body::read_json(&app.body_limits, BodyKind::Query, &headers, body).await?;
    let Value::Object(body) = value else {
        return Err(invalid(vec![filter::not_an_object(&value)]));
    };
    let mut errors = Vec::new();
    let mut target: Option<String> = None;
    let mut dry_run = false;
    let selection = selection::parse(
        &body,
        OWN_FIELDS,
        |k, v, errors| {
            match k {
                "target_service" => match v {
                    Value::String(s) if !s.is_empty() => target = Some(s.clone()),
                    Value::Null => {}
                    _ => errors.push(bad(
                        "/target_service",
                        ErrorKind::InvalidType,
                        format!("expected a subscription id or name, got {}", type_name(v)),
                    )),
                },
                "dry_run" => match v {
                    Value::Bool(b) => dry_run = *b,
                    Value::Null => {}
                    _ => errors.push(bad(
                        "/dry_run",
                        ErrorKind::InvalidType,
                        format!("expected true or false, got {}", type_name(v)),
                    )),
                },
                _ => return Parsed::Unknown,
            }
            Parsed::Filter
        },
        &mut errors,
    );
    let targets = match &target {
        Some(t) => match resolve(&app, &key.tenant_id, t).await? {
            Some(s) => vec![s],
            None => {
                let shown: String = t.chars().take(64).collect();
                errors.push(bad(
                    "/target_service",
                    ErrorKind::InvalidValue,
                    format!("no subscription with id or name `{shown}` in this tenant"),
                ));
                Vec::new()
            }
        },
        None => subscriptions(&app, &key.tenant_id, Some(true)).await?,
    };
    if !errors.is_empty() {
        return Err(invalid(errors));
    }
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let mut stored_selection = match selection.stored(&body) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    as_stored(&mut stored_selection, |v| {
        tenant.processor.redaction.stored_text(v, &tenant.hasher)
    });
    // Events committed from here on are the fan-out's, not the replay's.
    let until_seq = app.store.latest_seq().await?;
    let now = app.clock.now();
    let replay_id = format!("rpl_{}", uuid::Uuid::from(app.ids.event_id(now)).simple());
    let mut replay = Replay {
        replay_id: replay_id.clone(),
        tenant_id: key.tenant_id.clone(),
        selection: Value::Object(stored_selection),
        targets: targets.iter().map(|s| s.subscription_id.clone()).collect(),
        until_seq,
        dry_run,
        state: ReplayState::Pending,
        progress: ReplayProgress::default(),
        error: None,
        created_at: now,
        started_at: None,
        completed_at: None,
    };
    let mut answer = json!({
        "replay_id": replay_id,
        "status_url": status_url(&replay_id),
        "dry_run": dry_run,
        "target_subscriptions": replay.targets,
    });
    if dry_run {
        // Counted from the selection as stored, as the worker would read it.
        let scan = replay::parse_stored_selection(&replay).map_err(ApiError::internal)?;
        let counted = replay::dry_run(
            &app.store,
            &replay,
            &scan,
            &replay::targets_of(targets),
            ReplayWorker::DEFAULT_PAGE,
            DRY_RUN_BOUND,
            now,
        )
        .await?;
        replay.state = ReplayState::Completed;
        replay.progress = counted.progress;
        answer["events"] = json!(counted.progress.events_matched);
        answer["deliveries"] = json!(counted.progress.deliveries_created);
        answer["events_scanned"] = json!(counted.progress.events_scanned);
        answer["complete"] = json!(counted.complete);
        answer["bound"] = json!(DRY_RUN_BOUND);
    }
    answer["state"] = json!(replay.state.as_str());
    app.store
        .insert_replay(NewReplay {
            replay_id: replay.replay_id.clone(),
            tenant_id: replay.tenant_id.clone(),
            selection: replay.selection.clone(),
            targets: replay.targets.clone(),
            until_seq,
            dry_run,
            state: replay.state,
            progress: replay.progress,
            created_at: now,
        })
        .await?;
    if !dry_run {
        app.replay_wake.notify_one();
    }
    slot.detail(format!(
        "{} {replay_id} of {} to {} subscription{}",
        if dry_run { "dry-run replay" } else { "replay" },
        replay.selection,
        replay.targets.len(),
        if replay.targets.len() == 1 { "" } else { "s" }
    ));
    let mut res = (StatusCode::ACCEPTED, Json(answer)).into_response();
    if let Ok(v) = HeaderValue::from_str(&status_url(&replay_id)) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

/// `GET /api/v1/events/replay/{replay_id}`: the replay's state and counts.
pub async fn get(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let Path(id) = path?;
    match app.store.get_replay(&key.tenant_id, &id).await? {
        Some(r) => Ok(Json(view(&r)).into_response()),
        None => {
            let shown: String = id.chars().take(64).collect();
            Err(ApiError::not_found(format!(
                "no replay `{shown}` in this tenant"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_looked_for_as_stored_and_closed_values_are_kept() {
        let Value::Object(mut m) = json!({
            "user_id": "ada@example.com", "email_hash": "abc", "event_type": "x",
            "actor": {"role": "admin", "email_hash": "abc"},
            "context": {"environment": "prod", "region": "eu"},
            "outcome": {"status": "failure", "reason": "timeout"},
        }) else {
            unreachable!()
        };
        as_stored(&mut m, |s| format!("<{s}>"));
        assert_eq!(
            Value::Object(m),
            json!({
                "user_id": "<ada@example.com>", "email_hash": "abc", "event_type": "x",
                "actor": {"role": "<admin>", "email_hash": "abc"},
                "context": {"environment": "prod", "region": "<eu>"},
                "outcome": {"status": "failure", "reason": "<timeout>"},
            })
        );
    }
}
