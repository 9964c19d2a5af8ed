//! `GET /api/v1/events/tail`: the live tail as Server-Sent Events, and
//! [`follow_stream`], the same for one stream. A client first gets the
//! tenant's stored events after its cursor (`Last-Event-ID`, else `after`,
//! else "from now"), then new ones as they commit, each message's `id:`
//! its commit `seq`, so a client reconnecting with `Last-Event-ID` gets no
//! gap and no repeat.
//!
//! The stored part is read with the event query's SQL in commit order
//! (`Store::replay_events`); the live part comes from the process's one
//! [`TailHub`], which reads the commit log once for every client. The
//! hand-over: the backlog is read page by page until it is short, then the
//! client subscribes at the hub's position `start` and reads the stored
//! events up to `start` only; the hub sends what follows `start`. Every
//! message is sent once, in `seq` order (anything at or below the last
//! sent `seq` is dropped).
//!
//! Messages: `event: event` (`data:` the event's JSON, as
//! `GET /api/v1/events/{id}` answers it at commit, so `status` is
//! `pending`), `event: overflow` (the client fell `tail_buffer_events`
//! behind: the last message before it is closed; resume from its `id`),
//! `event: error` (reading the store failed; resume from the last `id`),
//! and a comment every `tail_heartbeat_ms` without one. The first message
//! carries only an `id:` (the cursor), so a browser's `EventSource`
//! resumes from there even before the first event.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use herald_core::filter::{self, EventFilter, InMemoryGap, Parsed};
use herald_core::{CanonicalEvent, ErrorKind, FieldError, TenantId};
use herald_store::{ReplayScan, Scope, SequencedEvent};
use herald_workers::tail::{TailHub, TailNext, TailSelection, TailSubscription};
use serde_json::{Map, Value};

use super::events::EventResponse;
use crate::App;
use crate::http::auth::Principal;
use crate::http::params::{self, Param, ParamKind};
use crate::http::problem::ApiError;

/// Stored events read per page before the hand-over.
const PAGE: usize = 500;

/// Filter keys whose value is a list: comma-separated in a query string.
const LISTS: &[&str] = &[
    "event_type",
    "event_types",
    "event_source",
    "event_sources",
    "event_category",
    "event_categories",
    "category",
    "categories",
    "status",
    "statuses",
];

/// Filter keys whose value is an object of `key: value` filters: JSON in a
/// query string (`actor={"role":"admin"}`).
const PARTS: &[&str] = &["actor", "object", "context", "outcome"];

macro_rules! p {
    ($name:literal, $kind:ident, $desc:literal) => {
        Param {
            name: $name,
            kind: ParamKind::$kind,
            description: $desc,
        }
    };
}
pub(crate) use p;

/// The event query's filter fields as query parameters (lists
/// comma-separated, part objects as JSON), then `$extra`.
macro_rules! filter_params {
    ($($extra:expr),* $(,)?) => {
        &[
        p!(
            "event_type",
            String,
            "Event types, comma-separated (any of them)"
        ),
        p!("event_types", String, "Same as event_type"),
        p!("event_source", String, "Event sources, comma-separated"),
        p!("event_sources", String, "Same as event_source"),
        p!(
            "event_category",
            String,
            "Event categories (the finer category), comma-separated"
        ),
        p!("event_categories", String, "Same as event_category"),
        p!("category", String, "Categories, comma-separated"),
        p!("categories", String, "Same as category"),
        p!(
            "start_time",
            String,
            "RFC 3339: events whose timestamp is at or after it"
        ),
        p!(
            "end_time",
            String,
            "RFC 3339: events whose timestamp is at or before it"
        ),
        p!("trace_id", String, "Correlation key"),
        p!("span_id", String, "Correlation key"),
        p!("correlation_id", String, "Correlation key"),
        p!("request_id", String, "Correlation key"),
        p!("order_id", String, "Correlation key"),
        p!("session_id", String, "Correlation key"),
        p!("ticket_id", String, "Correlation key"),
        p!("user_id", String, "Correlation key"),
        p!("email_hash", String, "Correlation key"),
        p!(
            "actor",
            String,
            "JSON object of actor fields to equal, e.g. {\"role\":\"admin\"}"
        ),
        p!("object", String, "JSON object of object fields to equal"),
        p!("context", String, "JSON object of context fields to equal"),
        p!("outcome", String, "JSON object of outcome fields to equal"),
        p!("outcome_status", String, "success, failure, ..."),
        p!("environment", String, "context.environment"),
        p!("service", String, "context.service"),
        p!("stream_id", String, "{entity_type}:{entity_id}"),
            $($extra),*
        ]
    };
}
pub(crate) use filter_params;

/// The tail's parameters: the event query's filter fields, then `after`.
pub const TAIL_PARAMS: &[Param] = filter_params!(
    p!(
        "status",
        String,
        "Refused (400): events are sent as they commit, before processing changes their status"
    ),
    p!("statuses", String, "Refused (400), as status"),
    p!(
        "q",
        String,
        "Refused (400): full-text terms cannot be matched in memory as the store matches them"
    ),
    p!(
        "after",
        Integer,
        "Start after this cursor (an event message's id; 0: every stored event). The Last-Event-ID header wins over it. Default: from now"
    )
);

/// The wire JSON of a committed event: `GET /api/v1/events/{id}`'s answer
/// at commit. The hub renders each event with it once.
pub fn render(event: &CanonicalEvent) -> String {
    serde_json::to_string(&EventResponse::new(event, &[])).unwrap_or_default()
}

pub async fn tail(
    State(app): State<App>,
    principal: Principal,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let key = principal.require(Scope::Read)?;
    let (mut params, mut errors) = params::parse(&uri, TAIL_PARAMS);
    let after = params.take("after");
    let mut body = Map::new();
    for (name, value) in params.iter() {
        body.insert(name.to_string(), param_value(name, value, &mut errors));
    }
    let filter = filter::parse_with(&body, "after", |_, _, _| Parsed::Unknown, &mut errors);
    for gap in filter.in_memory_gaps() {
        for name in gap_params(gap) {
            if body.contains_key(*name) {
                errors.push(params::bad(name, gap_message(gap)));
            }
        }
    }
    let cursor = cursor(&headers, after.as_deref(), &mut errors);
    params::check(errors)?;
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let selection = TailSelection {
        filter: {
            let mut filter = filter;
            tenant.filter_as_stored(&mut filter);
            filter
        },
        from_version: None,
    };
    open(app, key.tenant_id.clone(), selection, cursor).await
}

/// The live tail of one stream, for `GET /api/v1/events/stream/{stream_id}?follow=true`:
/// its stored events from `from_version` (1: all), then new ones as they
/// commit, as SSE like the tail (`Last-Event-ID` resumes). The caller has
/// checked the key's `read` scope and the stream id's form; an unknown
/// stream is followed too (its first event arrives when it is created).
pub async fn follow_stream(
    app: App,
    tenant: TenantId,
    stream_id: &str,
    from_version: u64,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let mut errors = Vec::new();
    let cursor = cursor(headers, None, &mut errors).unwrap_or(0);
    params::check(errors)?;
    let selection = TailSelection {
        filter: EventFilter {
            stream_id: Some(stream_id.to_string()),
            ..EventFilter::default()
        },
        from_version: (from_version > 1).then_some(from_version),
    };
    open(app, tenant, selection, Some(cursor)).await
}

/// A query-string value as the filter's JSON: lists split at commas, the
/// part objects parsed as JSON, everything else a string.
pub(crate) fn param_value(name: &str, value: &str, errors: &mut Vec<FieldError>) -> Value {
    if LISTS.contains(&name) {
        Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| Value::String(v.to_string()))
                .collect(),
        )
    } else if PARTS.contains(&name) {
        serde_json::from_str(value).unwrap_or_else(|e| {
            errors.push(FieldError {
                field: herald_core::error::pointer_push("", name),
                message: format!(
                    "expected a JSON object of key: value filters ({name}={{\"key\":\"value\"}}): {e}"
                ),
                kind: ErrorKind::Syntax,
            });
            Value::Null
        })
    } else {
        Value::String(value.to_string())
    }
}

fn gap_params(gap: InMemoryGap) -> &'static [&'static str] {
    match gap {
        InMemoryGap::Text => &["q"],
        InMemoryGap::Status => &["status", "statuses"],
    }
}

fn gap_message(gap: InMemoryGap) -> &'static str {
    match gap {
        InMemoryGap::Text => {
            "full-text search is not available on the live tail (new events are matched in memory, and only the store's index decides what a term is); use POST /api/v1/events/query"
        }
        InMemoryGap::Status => {
            "the live tail sends each event once, as it commits (status `pending`); its processing status changes later and is not an event: use POST /api/v1/events/query"
        }
    }
}

/// Where to start: `Last-Event-ID` (a reconnecting client), else `after`;
/// `None`: from now.
fn cursor(headers: &HeaderMap, after: Option<&str>, errors: &mut Vec<FieldError>) -> Option<i64> {
    let parse = |v: &str| v.trim().parse::<i64>().ok().filter(|n| *n >= 0);
    if let Some(v) = headers.get("last-event-id") {
        let parsed = v.to_str().ok().and_then(parse);
        if parsed.is_none() {
            errors.push(params::bad(
                "Last-Event-ID",
                "not a cursor this server issued (the id of a tail message)",
            ));
        }
        return parsed;
    }
    let after = after?;
    let parsed = parse(after);
    if parsed.is_none() {
        errors.push(params::bad(
            "after",
            "expected a cursor: the id of a tail message, or 0 for every stored event",
        ));
    }
    parsed
}

/// The SSE answer for `selection` after `cursor` (`None`: from now).
async fn open(
    app: App,
    tenant: TenantId,
    selection: TailSelection,
    cursor: Option<i64>,
) -> Result<Response, ApiError> {
    let cursor = match cursor {
        Some(c) => c,
        None => app.store.latest_seq().await?,
    };
    let heartbeat = Duration::from_millis(app.config.tail_heartbeat_ms);
    let first = Event::default().id(cursor.to_string());
    let tail = Tail {
        hub: app.tail.clone(),
        app,
        tenant,
        scan: ReplayScan {
            filter: selection.filter.clone(),
            ..ReplayScan::default()
        },
        selection,
        cursor,
        phase: Phase::Backlog,
        queue: VecDeque::from([first]),
    };
    let stream = futures_util::stream::unfold(tail, |mut t| async move {
        let e = t.next().await?;
        Some((Ok::<_, Infallible>(e), t))
    });
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response();
    // nginx would otherwise buffer the stream.
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// Where one client's stream is.
enum Phase {
    /// Reading stored events, before subscribing.
    Backlog,
    /// Subscribed: reading stored events up to the subscription's start.
    Handover(TailSubscription),
    /// Sending what the hub hands out.
    Live(TailSubscription),
    Done,
}

/// One client's stream: its messages, one at a time.
struct Tail {
    app: App,
    hub: TailHub,
    tenant: TenantId,
    selection: TailSelection,
    scan: ReplayScan,
    /// The last `seq` read (sent, or skipped by `from_version`).
    cursor: i64,
    phase: Phase,
    queue: VecDeque<Event>,
}

impl Tail {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(e);
            }
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return None,
                Phase::Backlog => {
                    if self.hub.is_closed() {
                        return None;
                    }
                    match self.stored(None).await {
                        Err(e) => self.failed(e),
                        Ok(true) => self.phase = Phase::Backlog,
                        Ok(false) => {
                            if let Some(sub) = self.hub.subscribe(
                                &self.tenant,
                                self.selection.clone(),
                                self.cursor,
                            ) {
                                self.phase = Phase::Handover(sub);
                            }
                        }
                    }
                }
                Phase::Handover(sub) => match self.stored(Some(sub.start)).await {
                    Err(e) => self.failed(e),
                    Ok(true) => self.phase = Phase::Handover(sub),
                    Ok(false) => self.phase = Phase::Live(sub),
                },
                Phase::Live(mut sub) => match sub.next().await {
                    TailNext::Event(e) => {
                        if e.seq > self.cursor {
                            self.cursor = e.seq;
                            self.queue.push_back(message(e.seq, &e.json));
                        }
                        self.phase = Phase::Live(sub);
                    }
                    TailNext::Overflowed => {
                        let data = serde_json::json!({
                            "reason": format!(
                                "this client fell more than {} events behind and was disconnected",
                                self.hub.buffer()
                            ),
                            "resume_after": self.cursor.to_string(),
                        });
                        self.queue.push_back(
                            Event::default()
                                .id(self.cursor.to_string())
                                .event("overflow")
                                .data(data.to_string()),
                        );
                    }
                    TailNext::Closed => return None,
                },
            }
        }
    }

    /// Queues the next page of stored events after the cursor (up to
    /// `until`): `true` when the page was full, so more may follow.
    async fn stored(&mut self, until: Option<i64>) -> Result<bool, herald_store::StoreError> {
        self.scan.until_seq = until;
        // A read that fails is tried again (three times, 0.1, 0.2 and
        // 0.4 s apart) before the stream gives up with an `error` event:
        // one failed read under load need not cost the client its stream.
        let mut tries = 0;
        let page = loop {
            match self
                .app
                .store
                .replay_events(&self.tenant, &self.scan, self.cursor, PAGE)
                .await
            {
                Ok(page) => break page,
                Err(herald_store::StoreError::Closed) => {
                    return Err(herald_store::StoreError::Closed);
                }
                Err(e) if tries < 3 => {
                    tracing::warn!(error = %e, tries, "tail: reading stored events failed; trying again");
                    tokio::time::sleep(Duration::from_millis(100 << tries)).await;
                    tries += 1;
                }
                Err(e) => return Err(e),
            }
        };
        let full = page.len() == PAGE;
        for stored in page {
            self.cursor = self.cursor.max(stored.seq);
            if let Some(json) = self.stored_json(&stored) {
                self.queue.push_back(message(stored.seq, &json));
            }
        }
        Ok(full)
    }

    fn stored_json(&self, stored: &SequencedEvent) -> Option<String> {
        match serde_json::from_str::<CanonicalEvent>(&stored.body) {
            Ok(e) if self.selection.matches(&e) => Some(render(&e)),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(seq = stored.seq, error = %e, "tail: a stored event does not decode; skipped");
                None
            }
        }
    }

    fn failed(&mut self, e: herald_store::StoreError) {
        tracing::warn!(error = %e, "tail: reading stored events failed; the stream ends");
        let data = serde_json::json!({
            "reason": "reading stored events failed; reconnect with Last-Event-ID",
            "resume_after": self.cursor.to_string(),
        });
        self.queue.push_back(
            Event::default()
                .id(self.cursor.to_string())
                .event("error")
                .data(data.to_string()),
        );
    }
}

fn message(seq: i64, json: &str) -> Event {
    Event::default()
        .id(seq.to_string())
        .event("event")
        .data(json)
}
