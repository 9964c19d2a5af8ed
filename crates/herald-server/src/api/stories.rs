//! `GET /api/v1/stories/{key}/{value}` and `GET /api/v1/events/{event_id}/story`:
//! the correlated timeline behind a key value or an event (the store's
//! `Store::story`): every event sharing the key, expanded breadth-first
//! through the other keys of the events found, within `depth` and `limit`
//! (both reported, with whether the walk was cut by them), each event with
//! the key value that linked it, its depth and its evidence links, grouped
//! by category. Identity keys (`session_id`, `user_id`, `email_hash`) met
//! beyond the start are listed, not walked, unless `follow_identities`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use herald_core::correlation::CorrelationKey;
use herald_core::filter::EventFilter;
use herald_core::{Category, EventId};
use herald_store::{Scope, Story, StoryEvent, StoryOrigin, StoryRequest};
use serde_json::{Map, Value, json};

use super::events::EventResponse;
use crate::App;
use crate::http::auth::Principal;
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;

pub const DEFAULT_DEPTH: u32 = 3;
pub const MAX_DEPTH: u32 = 5;
pub const DEFAULT_LIMIT: usize = 200;
pub const MAX_LIMIT: usize = 1000;

pub const STORY_PARAMS: &[Param] = &[
    Param {
        name: "depth",
        kind: ParamKind::Integer,
        description: "the deepest level walked, 0..=5 (default 3): 0 is the events of the starting keys, n+1 the events sharing a key value with level n",
    },
    Param {
        name: "limit",
        kind: ParamKind::Integer,
        description: "the most events in the story, 1..=1000 (default 200); a key value with more events than the room left is cut (its newest kept) and listed in truncated",
    },
    Param {
        name: "follow_identities",
        kind: ParamKind::Boolean,
        description: "also walk through identity keys (session_id, user_id, email_hash) met beyond the start (default false: they are listed in not_followed)",
    },
];

/// The bounds of a request, every bad parameter named.
fn bounds(uri: &Uri, errors: &mut Vec<herald_core::FieldError>) -> (u32, usize, bool) {
    let (p, parse_errors) = params::parse(uri, STORY_PARAMS);
    errors.extend(parse_errors);
    let depth = match p.get("depth").map(str::parse::<u32>) {
        None => DEFAULT_DEPTH,
        Some(Ok(n)) if n <= MAX_DEPTH => n,
        Some(_) => {
            errors.push(params::bad(
                "depth",
                format!("expected an integer in 0..={MAX_DEPTH}"),
            ));
            DEFAULT_DEPTH
        }
    };
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
    let follow =
        params::boolean("follow_identities", p.get("follow_identities"), errors).unwrap_or(false);
    (depth, limit, follow)
}

fn allowed_keys() -> String {
    CorrelationKey::STORY
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `GET /api/v1/stories/{key}/{value}`.
pub async fn by_key(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let api_key = principal.require(Scope::Read)?;
    let Path((key, value)) = path?;
    let mut errors = Vec::new();
    let parsed = CorrelationKey::parse(&key).filter(|k| CorrelationKey::STORY.contains(k));
    if parsed.is_none() {
        errors.push(params::bad(
            "key",
            format!(
                "`{}` is not a story key; allowed: {}",
                key.chars().take(64).collect::<String>(),
                allowed_keys()
            ),
        ));
    }
    if value.is_empty() {
        errors.push(params::bad("value", "expected a key value, not empty"));
    }
    let (depth, limit, follow) = bounds(&uri, &mut errors);
    let key = match parsed {
        Some(k) if errors.is_empty() => k,
        // A bad key is one of the errors.
        _ => {
            let n = errors.len();
            return Err(ApiError::invalid(
                format!("{n} bad parameter{}", if n == 1 { "" } else { "s" }),
                errors,
            ));
        }
    };
    // Ids are stored redacted (an email becomes a hash, a card number is
    // masked): look for the value the way it was stored.
    let tenant = app.tenant_context(&api_key.tenant_id).await?;
    let mut as_filter = EventFilter {
        keys: vec![(key, value.clone())],
        ..Default::default()
    };
    tenant.filter_as_stored(&mut as_filter);
    let stored = as_filter.keys.pop().map_or(value.clone(), |(_, v)| v);
    let req = StoryRequest {
        origin: StoryOrigin::Key(key, stored),
        max_depth: depth,
        limit,
        follow_identities: follow,
    };
    let story = app
        .store
        .story(&api_key.tenant_id, &req)
        .await?
        .filter(|s| !s.events.is_empty())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no event carries {} `{}` in this tenant",
                key.as_str(),
                value.chars().take(64).collect::<String>()
            ))
        })?;
    Ok(answer(
        json!({ "key": key.as_str(), "value": value }),
        &req,
        &story,
    ))
}

/// `GET /api/v1/events/{event_id}/story`.
pub async fn by_event(
    State(app): State<App>,
    principal: Principal,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let api_key = principal.require(Scope::Read)?;
    let Path(id) = path?;
    let mut errors = Vec::new();
    let (depth, limit, follow) = bounds(&uri, &mut errors);
    params::check(errors)?;
    let shown: String = id.chars().take(64).collect();
    let not_found = || ApiError::not_found(format!("no event `{shown}` in this tenant"));
    let Ok(event_id) = EventId::parse(&id) else {
        return Err(not_found());
    };
    let req = StoryRequest {
        origin: StoryOrigin::Event(event_id),
        max_depth: depth,
        limit,
        follow_identities: follow,
    };
    let story = app
        .store
        .story(&api_key.tenant_id, &req)
        .await?
        .ok_or_else(not_found)?;
    Ok(answer(json!({ "event_id": event_id }), &req, &story))
}

/// The answer's JSON: the walk's account, then the timeline and its
/// grouping.
fn answer(origin: Value, req: &StoryRequest, story: &Story) -> Response {
    let kv = |k: CorrelationKey, v: &str| json!({ "key": k.as_str(), "value": v });
    let deepest = story.events.iter().map(|e| e.depth).max().unwrap_or(0);
    let mut by_category = Map::new();
    for c in Category::ALL.iter().copied() {
        let ids: Vec<Value> = story
            .events
            .iter()
            .filter(|e| e.event.event.category == c)
            .map(|e| json!(e.event.event.event_id))
            .collect();
        by_category.insert(
            c.as_str().to_string(),
            json!({ "count": ids.len(), "event_ids": ids }),
        );
    }
    let timeline: Vec<Value> = story.events.iter().map(entry).collect();
    let body = json!({
        "origin": origin,
        "seeds": story.seeds.iter().map(|s| kv(s.key, &s.value)).collect::<Vec<_>>(),
        "depth": { "limit": req.max_depth, "reached": story.depth_reached, "deepest": deepest },
        "size": { "limit": req.limit, "reached": story.size_reached, "count": story.events.len() },
        "identity_keys": {
            "keys": CorrelationKey::STORY.iter().filter(|k| k.is_identity()).map(|k| k.as_str()).collect::<Vec<_>>(),
            "followed": req.follow_identities,
        },
        "first_at": story.events.first().map(|e| e.event.event.timestamp),
        "last_at": story.events.last().map(|e| e.event.event.timestamp),
        "timeline": timeline,
        "by_category": by_category,
        "followed": story.lookups.iter().map(|l| json!({
            "key": l.key_value.key.as_str(), "value": l.key_value.value, "depth": l.depth,
            "read": l.read, "truncated": l.truncated,
        })).collect::<Vec<_>>(),
        "truncated": story.truncated().map(|l| json!({
            "key": l.key_value.key.as_str(), "value": l.key_value.value, "depth": l.depth,
        })).collect::<Vec<_>>(),
        "not_followed": story.not_followed.iter().map(|n| json!({
            "key": n.key_value.key.as_str(), "value": n.key_value.value, "depth": n.depth,
            "reason": n.reason.as_str(),
        })).collect::<Vec<_>>(),
    });
    axum::Json(body).into_response()
}

/// One timeline entry: where the event sits in the story, its evidence
/// links, and the event as `GET /api/v1/events/{id}` answers it (without
/// processing results).
fn entry(e: &StoryEvent) -> Value {
    let ev = &e.event.event;
    json!({
        "event_id": ev.event_id,
        "timestamp": ev.timestamp,
        "event_type": ev.event_type.as_str(),
        "category": ev.category.as_str(),
        "outcome_status": ev.outcome.status.as_str(),
        "depth": e.depth,
        "linked_by": e.linked_by.as_ref().map(|l| json!({ "key": l.key.as_str(), "value": l.value })),
        "via_event_id": e.via,
        "links": links(ev),
        "event": EventResponse::stored(&e.event),
    })
}

/// The event's evidence and causation as a flat list of `{rel, value}`.
fn links(ev: &herald_core::CanonicalEvent) -> Vec<Value> {
    let mut out = Vec::new();
    let mut push = |rel: &str, v: Option<&String>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push(json!({ "rel": rel, "value": v }));
        }
    };
    push("parent_event", ev.correlation.parent_event_id.as_ref());
    if let Some(g) = &ev.evidence.github {
        push("github_commit", g.commit_sha.as_ref());
        push("github_pr", g.pr.as_ref());
        push("github_repository", g.repository.as_ref());
    }
    push("trace_url", ev.evidence.trace_url.as_ref());
    push("raw_pointer", ev.evidence.raw_pointer.as_ref());
    for l in &ev.evidence.log_references {
        push("log_reference", Some(l));
    }
    out
}

/// The `rel` values of `links`, for the document.
pub const LINK_RELS: [&str; 7] = [
    "parent_event",
    "github_commit",
    "github_pr",
    "github_repository",
    "trace_url",
    "raw_pointer",
    "log_reference",
];

/// The OpenAPI schemas of the story answer.
pub fn schemas() -> Value {
    let s = |t: &str| json!({ "type": t });
    let keys: Vec<&str> = CorrelationKey::STORY.iter().map(|k| k.as_str()).collect();
    let key = json!({ "type": "string", "enum": keys });
    let key_value = json!({ "type": "object", "required": ["key", "value"], "properties": { "key": key, "value": s("string") } });
    let date_time = json!({ "type": "string", "format": "date-time" });
    let category_group = json!({ "type": "object", "required": ["count", "event_ids"], "properties": {
        "count": s("integer"), "event_ids": { "type": "array", "items": s("string") } } });
    let by_category: Map<String, Value> = Category::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), category_group.clone()))
        .collect();
    let reasons: Vec<&str> = herald_store::NotFollowedReason::ALL
        .iter()
        .map(|r| r.as_str())
        .collect();
    let categories: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    json!({
        "StoryEntry": { "type": "object",
            "required": ["event_id", "timestamp", "event_type", "category", "outcome_status", "depth", "linked_by", "via_event_id", "links", "event"],
            "properties": {
                "event_id": s("string"), "timestamp": date_time, "event_type": s("string"),
                "category": { "type": "string", "enum": categories }, "outcome_status": s("string"),
                "depth": { "type": "integer", "description": "the level the event was found at: 0 for the starting keys" },
                "linked_by": { "anyOf": [key_value, { "type": "null" }], "description": "the key value whose lookup found it first; null for the event a story of an event starts from" },
                "via_event_id": { "type": ["string", "null"], "description": "the event that carried linked_by into the walk; null for keys given by path" },
                "links": { "type": "array", "description": "evidence and causation: the parent event, GitHub commit, PR and repository, trace URL, raw pointer, log references",
                    "items": { "type": "object", "required": ["rel", "value"], "properties": {
                        "rel": { "type": "string", "enum": LINK_RELS }, "value": s("string") } } },
                "event": { "$ref": "#/components/schemas/EventResponse" } } },
        "Story": { "type": "object",
            "required": ["origin", "seeds", "depth", "size", "identity_keys", "first_at", "last_at", "timeline", "by_category", "followed", "truncated", "not_followed"],
            "properties": {
                "origin": { "type": "object", "description": "what the story starts from: a key value, or an event",
                    "properties": { "key": key, "value": s("string"), "event_id": s("string") } },
                "seeds": { "type": "array", "items": key_value, "description": "the key values walked from (level 0); for an event, its non-identity keys, or its identity keys when it has no other" },
                "depth": { "type": "object", "required": ["limit", "reached", "deepest"], "properties": {
                    "limit": s("integer"), "deepest": { "type": "integer", "description": "the deepest level an event was found at" },
                    "reached": { "type": "boolean", "description": "the walk stopped at the limit with key values left to look up (listed in not_followed, reason depth_limit)" } } },
                "size": { "type": "object", "required": ["limit", "reached", "count"], "properties": {
                    "limit": s("integer"), "count": { "type": "integer", "description": "events in the timeline" },
                    "reached": { "type": "boolean", "description": "the walk was cut by the limit: a key value's events did not all fit (truncated), or key values were left to look up (not_followed, reason size_limit)" } } },
                "identity_keys": { "type": "object", "required": ["keys", "followed"], "properties": {
                    "keys": { "type": "array", "items": key },
                    "followed": { "type": "boolean", "description": "whether identity keys met beyond the start were walked (follow_identities)" } } },
                "first_at": { "type": ["string", "null"], "format": "date-time" },
                "last_at": { "type": ["string", "null"], "format": "date-time" },
                "timeline": { "type": "array", "items": { "$ref": "#/components/schemas/StoryEntry" }, "description": "by event time, then commit order" },
                "by_category": { "type": "object", "required": categories, "properties": by_category, "description": "the timeline's events per category, in timeline order" },
                "followed": { "type": "array", "description": "every key value looked up, in lookup order", "items": { "type": "object",
                    "required": ["key", "value", "depth", "read", "truncated"], "properties": {
                        "key": key, "value": s("string"), "depth": s("integer"),
                        "read": { "type": "integer", "description": "rows the lookup read (at most the room left plus one)" },
                        "truncated": s("boolean") } } },
                "truncated": { "type": "array", "description": "key values with events the story does not hold (or may not: the lookup stopped at its cap)", "items": { "type": "object",
                    "required": ["key", "value", "depth"], "properties": { "key": key, "value": s("string"), "depth": s("integer") } } },
                "not_followed": { "type": "array", "description": "key values met and not looked up, with why", "items": { "type": "object",
                    "required": ["key", "value", "depth", "reason"], "properties": {
                        "key": key, "value": s("string"), "depth": { "type": "integer", "description": "the level its lookup would have been" },
                        "reason": { "type": "string", "enum": reasons } } } } } },
    })
}
