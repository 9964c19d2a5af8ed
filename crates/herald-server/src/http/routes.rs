//! The route table: every route's method, path, handler and documentation
//! in one row. `router()` mounts exactly these rows and
//! `GET /api/openapi.json` documents exactly these rows, so a route cannot
//! exist undocumented, nor be documented without existing.

use axum::Router;
use axum::routing::{MethodFilter, MethodRouter, on};
use herald_store::Scope;

use crate::App;
use crate::api::deliveries::{self, dead_letters};
use crate::api::{
    admin, collect, definitions, events, health, processors, replay, settings, statistics, stories,
    streams, subscriptions, tail, waits,
};
use crate::http::openapi;
use crate::http::params::Param;
use crate::http::problem::ApiError;

/// An HTTP method a route answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    /// The lowercase name OpenAPI uses as the operation key.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Delete => "delete",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
            Method::Delete => MethodFilter::DELETE,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a key.
    Open,
    /// The operator's root key (a tenant's `manage` key too, where the
    /// handler allows it for its own tenant).
    Root,
    /// A tenant key holding this scope.
    Tenant(Scope),
}

impl Access {
    /// The name the OpenAPI document gives as `x-herald-scope`; `None` for
    /// open routes.
    pub fn scope_name(self) -> Option<&'static str> {
        match self {
            Access::Open => None,
            Access::Root => Some("root"),
            Access::Tenant(scope) => Some(scope.as_str()),
        }
    }
}

/// One operation: what is mounted and how it is documented.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// The handler, mounted for `method` only (the filter is passed in, so
    /// a row cannot mount a handler under a method it does not document).
    pub handler: fn(MethodFilter) -> MethodRouter<App>,
    pub summary: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Query parameters: the same slice the handler parses with.
    pub query: &'static [Param],
    pub request: Option<&'static str>,
    /// Every non-error answer: status, schema, and when it is given.
    pub success: &'static [(u16, &'static str, &'static str)],
}

impl Route {
    /// The row as axum's method router.
    pub fn method_router(&self) -> MethodRouter<App> {
        (self.handler)(self.method.filter())
    }
}

/// Every row of [`ROUTES`] mounted; rows sharing a path share its method
/// router. A method a path does not take is a problem+json 405.
pub fn mount() -> Router<App> {
    ROUTES
        .iter()
        .fold(Router::new(), |router, r| {
            router.route(r.path, r.method_router())
        })
        .method_not_allowed_fallback(method_not_allowed)
}

/// The 405 of a method a path does not take.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::method_not_allowed(format!(
        "{} does not take {method}; see GET /api/openapi.json",
        uri.path()
    ))
}

pub const ROUTES: &[Route] = &[
    Route {
        method: Method::Get,
        path: "/health",
        handler: |m| on(m, health::health),
        summary: "Service health",
        access: Access::Open,
        query: &[],
        request: None,
        success: &[(200, "Health", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/openapi.json",
        handler: |m| on(m, || async { axum::Json(openapi::document()) }),
        summary: "This document",
        access: Access::Open,
        query: &[],
        request: None,
        success: &[(200, "Object", "success")],
    },
    Route {
        method: Method::Get,
        path: "/metrics",
        handler: |m| on(m, crate::http::metrics::scrape),
        summary: "Herald's metrics in the Prometheus text format (with `Authorization: Bearer <metrics_token>` when that is set)",
        access: Access::Open,
        query: &[],
        request: None,
        success: &[(200, "Metrics", "the Prometheus text exposition format")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/create",
        handler: |m| on(m, events::create),
        summary: "Create one event (the flat create-request fields or the canonical ones)",
        access: Access::Tenant(Scope::Ingest),
        query: &[],
        request: Some("EventCreateRequest"),
        success: &[
            (201, "EventResponse", "stored"),
            (
                200,
                "EventResponse",
                "a repeat of an idempotency_key: the first event, nothing stored",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/batch",
        handler: |m| on(m, events::batch),
        summary: "Create events item by item; results in request order (201, or 207 when any was rejected)",
        access: Access::Tenant(Scope::Ingest),
        query: &[],
        request: Some("BatchRequest"),
        success: &[
            (
                201,
                "BatchResponse",
                "every item stored (or a repeat of an earlier one)",
            ),
            (
                207,
                "BatchResponse",
                "some items rejected; each result says which and why",
            ),
        ],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/{event_id}",
        handler: |m| on(m, events::get),
        summary: "One event",
        access: Access::Tenant(Scope::Read),
        query: &[],
        request: None,
        success: &[(200, "EventResponse", "success")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/query",
        handler: |m| on(m, events::query),
        summary: "Query events with filters, offset or keyset cursor paging",
        access: Access::Tenant(Scope::Read),
        query: &[],
        request: Some("EventQueryRequest"),
        success: &[(200, "EventQueryResponse", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/statistics",
        handler: |m| on(m, statistics::statistics),
        summary: "Counts by status, distributions by source, category and type, events today/this week/this month (in tz), average processing time, processing and error rates, top users and event types; filtered like a query. Exact: read from rollups plus the events not folded in yet (or from the events, for filters the rollups do not keep)",
        access: Access::Tenant(Scope::Read),
        query: statistics::STATISTICS_PARAMS,
        request: None,
        success: &[(200, "Statistics", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/statistics/timeseries",
        handler: |m| on(m, statistics::timeseries),
        summary: "Event counts per bucket of event time (1m, 1h or 1d, aligned in UTC) in [start_time, end_time), optionally per category, event_type, event_source or status; every bucket listed, empty ones too",
        access: Access::Tenant(Scope::Read),
        query: statistics::TIMESERIES_PARAMS,
        request: None,
        success: &[(200, "Timeseries", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/tail",
        handler: |m| on(m, tail::tail),
        summary: "Live tail as Server-Sent Events: the stored events after a cursor (Last-Event-ID, after; default: from now), then new ones as they commit, filtered like a query (no q, no status)",
        access: Access::Tenant(Scope::Read),
        query: tail::TAIL_PARAMS,
        request: None,
        success: &[(200, "EventStream", "an endless event stream")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/replay",
        handler: |m| on(m, replay::create),
        summary: "Deliver stored events again (by event_ids, stream_id, or start_time + end_time with query filters) to one target_service or every enabled subscription; answers at once, a dry_run with the counts it would make (reading at most 10,000 events)",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: Some("ReplayRequest"),
        success: &[(
            202,
            "ReplayAccepted",
            "stored; the replay worker delivers it",
        )],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/replay/{replay_id}",
        handler: |m| on(m, replay::get),
        summary: "A replay's state and progress",
        access: Access::Tenant(Scope::Read),
        query: &[],
        request: None,
        success: &[(200, "Replay", "success")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/processors",
        handler: |m| on(m, processors::create),
        summary: "Register a processor (webhook, enrich or nats) run on matching stored events in priority order; a webhook processor's secret is generated unless given and shown in this answer only",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: Some("ProcessorRequest"),
        success: &[(201, "ProcessorWithSecret", "stored")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/processors",
        handler: |m| on(m, processors::list),
        summary: "The tenant's processors in creation order, without secrets",
        access: Access::Tenant(Scope::Read),
        query: processors::LIST_PARAMS,
        request: None,
        success: &[(200, "ProcessorList", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/processors/{processor_id}",
        handler: |m| on(m, processors::get),
        summary: "One processor, without its secret",
        access: Access::Tenant(Scope::Read),
        query: &[],
        request: None,
        success: &[(200, "Processor", "success")],
    },
    Route {
        method: Method::Put,
        path: "/api/v1/events/processors/{processor_id}",
        handler: |m| on(m, processors::update),
        summary: "Replace a processor's definition (fields left out take their defaults; the type and secret stay)",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: Some("ProcessorRequest"),
        success: &[(200, "Processor", "success")],
    },
    Route {
        method: Method::Delete,
        path: "/api/v1/events/processors/{processor_id}",
        handler: |m| on(m, processors::delete),
        summary: "Delete a processor; events whose processing has not started run without it",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: None,
        success: &[(204, "Empty", "deleted")],
    },
    Route {
        method: Method::Put,
        path: "/api/v1/events/processors/{processor_id}/toggle",
        handler: |m| on(m, processors::toggle),
        summary: "Turn a processor on or off (?enabled=true|false); events whose processing has not started run without a processor turned off",
        access: Access::Tenant(Scope::Manage),
        query: processors::TOGGLE_PARAMS,
        request: None,
        success: &[(200, "Processor", "success")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/waits",
        handler: |m| on(m, waits::create),
        summary: "Wait for an event: a type or pattern with an optional CEL filter over event and wait (or any_of several), a timeout, an optional lookback and callback; ends exactly once (resolved, timed_out or cancelled); with a callback_url its secret is shown in this answer only",
        access: Access::Tenant(Scope::Ingest),
        query: &[],
        request: Some("WaitRequest"),
        success: &[(
            201,
            "WaitWithSecret",
            "stored (already resolved when the lookback found the event)",
        )],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/waits",
        handler: |m| on(m, waits::list),
        summary: "The tenant's waits in creation order, filtered by status, workflow instance or event type",
        access: Access::Tenant(Scope::Read),
        query: waits::LIST_PARAMS,
        request: None,
        success: &[(200, "WaitList", "success")],
    },
    Route {
        method: Method::Delete,
        path: "/api/v1/waits",
        handler: |m| on(m, waits::cancel_all),
        summary: "Cancel every open wait of one workflow instance; answers how many",
        access: Access::Tenant(Scope::Ingest),
        query: waits::CANCEL_ALL_PARAMS,
        request: None,
        success: &[(200, "WaitsCancelled", "cancelled")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/waits/{wait_id}",
        handler: |m| on(m, waits::get),
        summary: "One wait; with ?wait=N held until it ends or N seconds pass (long poll)",
        access: Access::Tenant(Scope::Read),
        query: waits::GET_PARAMS,
        request: None,
        success: &[(200, "Wait", "success")],
    },
    Route {
        method: Method::Delete,
        path: "/api/v1/waits/{wait_id}",
        handler: |m| on(m, waits::cancel),
        summary: "Cancel an open wait (409 naming its end if it already ended)",
        access: Access::Tenant(Scope::Ingest),
        query: &[],
        request: None,
        success: &[(200, "Wait", "cancelled")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/subscriptions",
        handler: |m| on(m, subscriptions::create),
        summary: "Subscribe a webhook; without webhook_secret one is generated and shown in this answer only",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: Some("SubscriptionRequest"),
        success: &[(201, "SubscriptionWithSecret", "stored")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/subscriptions",
        handler: |m| on(m, subscriptions::list),
        summary: "The tenant's subscriptions in creation order (the enabled ones unless enabled=false or all=true), without secrets",
        access: Access::Tenant(Scope::Read),
        query: subscriptions::LIST_PARAMS,
        request: None,
        success: &[(200, "SubscriptionList", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/subscriptions/{subscription_id}",
        handler: |m| on(m, subscriptions::get),
        summary: "One subscription, without its secret",
        access: Access::Tenant(Scope::Read),
        query: &[],
        request: None,
        success: &[(200, "Subscription", "success")],
    },
    Route {
        method: Method::Put,
        path: "/api/v1/events/subscriptions/{subscription_id}",
        handler: |m| on(m, subscriptions::update),
        summary: "Replace a subscription's definition (fields left out take their defaults); webhook_secret cannot be set here, rotate it",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: Some("SubscriptionRequest"),
        success: &[(200, "Subscription", "success")],
    },
    Route {
        method: Method::Delete,
        path: "/api/v1/events/subscriptions/{subscription_id}",
        handler: |m| on(m, subscriptions::delete),
        summary: "Delete a subscription: it is gone, and no delivery starts from it after this answer",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: None,
        success: &[(204, "Empty", "deleted")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/subscriptions/{subscription_id}/secret/rotate",
        handler: |m| on(m, subscriptions::rotate),
        summary: "A new generated secret, shown in this answer only; the previous one still signs until previous_secret_valid_until (delivery_secret_overlap_secs)",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: None,
        success: &[(200, "SubscriptionWithSecret", "rotated")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/subscriptions/{subscription_id}/recover",
        handler: |m| on(m, dead_letters::recover),
        summary: "Re-queue the subscription's deliveries that died in [since, until) (until defaults to now): the same deliveries, same webhook-id, retry schedule from the start",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: Some("RecoverRequest"),
        success: &[(200, "RecoverResponse", "re-queued")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/subscriptions/{subscription_id}/deliveries",
        handler: |m| on(m, deliveries::of_subscription),
        summary: "The subscription's deliveries in creation order, each with every attempt (time, status code, duration, response snippet, error class, next attempt)",
        access: Access::Tenant(Scope::Read),
        query: deliveries::SUBSCRIPTION_PARAMS,
        request: None,
        success: &[(200, "DeliveryList", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/stream/{stream_id}",
        handler: |m| on(m, streams::read),
        summary: "The stream's events in version order (forward from from_version, or backward), with its current version, event count and first and last event time",
        access: Access::Tenant(Scope::Read),
        query: streams::STREAM_PARAMS,
        request: None,
        success: &[
            (200, "StreamPage", "a page (application/json)"),
            (
                200,
                "EventStream",
                "with follow=true: the stream's events, then new ones as they commit (text/event-stream)",
            ),
        ],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/projections/{entity_type}/{entity_id}",
        handler: |m| on(m, streams::projection),
        summary: "The entity's state folded from its stream (each type's projection rule; JSON merge patch by default): now, or as it was at_version or at a time",
        access: Access::Tenant(Scope::Read),
        query: streams::PROJECTION_PARAMS,
        request: None,
        success: &[(200, "Projection", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/{event_id}/deliveries",
        handler: |m| on(m, deliveries::of_event),
        summary: "Every delivery of the event (one per matching subscription and per replay), each with every attempt",
        access: Access::Tenant(Scope::Read),
        query: &[],
        request: None,
        success: &[(200, "DeliveryList", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/{event_id}/story",
        handler: |m| on(m, stories::by_event),
        summary: "The event's story: the timeline of every event sharing one of its correlation keys, expanded breadth-first through the keys of the events found (see GET /api/v1/stories/{key}/{value})",
        access: Access::Tenant(Scope::Read),
        query: stories::STORY_PARAMS,
        request: None,
        success: &[(200, "Story", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/stories/{key}/{value}",
        handler: |m| on(m, stories::by_key),
        summary: "A key value's story: the time-ordered timeline of every event carrying it (key: trace_id, correlation_id, request_id, order_id, session_id, ticket_id, user_id or email_hash), expanded breadth-first through the other keys of the events found, within depth and limit (both reported); each event with the key value that linked it, its depth and evidence links; grouped by category",
        access: Access::Tenant(Scope::Read),
        query: stories::STORY_PARAMS,
        request: None,
        success: &[(200, "Story", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/dlq",
        handler: |m| on(m, dead_letters::list),
        summary: "Dead letters: deliveries given up on, with their event, target subscription, every attempt and the last error; filters and keyset paging",
        access: Access::Tenant(Scope::Read),
        query: dead_letters::LIST_PARAMS,
        request: None,
        success: &[(200, "DeadLetterList", "success")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/dlq/redrive",
        handler: |m| on(m, dead_letters::redrive),
        summary: "Re-queue dead letters by id or by filter: the same deliveries (same webhook-id), due at once, retry schedule from the start; answers how many",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: Some("RedriveRequest"),
        success: &[(200, "RedriveResponse", "re-queued")],
    },
    Route {
        method: Method::Delete,
        path: "/api/v1/dlq/{delivery_id}",
        handler: |m| on(m, dead_letters::discard),
        summary: "Discard one dead letter and its attempts",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: None,
        success: &[(204, "Empty", "discarded")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/event-definitions",
        handler: |m| on(m, definitions::list),
        summary: "List event definitions (latest versions, built-ins included), sorted by type",
        access: Access::Tenant(Scope::Read),
        query: definitions::LIST_PARAMS,
        request: None,
        success: &[(200, "EventDefinitionList", "success")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/event-definitions",
        handler: |m| on(m, definitions::register),
        summary: "Register an event definition (version 1); 409 when the type already has one",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: Some("EventDefinitionRequest"),
        success: &[(201, "EventDefinition", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/event-definitions/{id}",
        handler: |m| on(m, definitions::get),
        summary: "One definition by id, exact type or pattern, or the one that applies to a type",
        access: Access::Tenant(Scope::Read),
        query: definitions::GET_PARAMS,
        request: None,
        success: &[(200, "EventDefinition", "success")],
    },
    Route {
        method: Method::Put,
        path: "/api/v1/event-definitions/{id}",
        handler: |m| on(m, definitions::update),
        summary: "Update: a new immutable version with its compatibility; a breaking change is 409 with the reasons unless allowed",
        access: Access::Tenant(Scope::Manage),
        query: definitions::UPDATE_PARAMS,
        request: Some("EventDefinitionRequest"),
        success: &[(200, "EventDefinition", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/settings",
        handler: |m| on(m, settings::get),
        summary: "The tenant's settings (validation_mode)",
        access: Access::Tenant(Scope::Read),
        query: &[],
        request: None,
        success: &[(200, "Settings", "success")],
    },
    Route {
        method: Method::Put,
        path: "/api/v1/settings",
        handler: |m| on(m, settings::put),
        summary: "Change the tenant's settings: validation_mode permissive (default) or strict",
        access: Access::Tenant(Scope::Manage),
        query: &[],
        request: Some("Settings"),
        success: &[(200, "Settings", "success")],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/audit",
        handler: |m| on(m, admin::list_audit),
        summary: "Audit trail, newest first",
        access: Access::Tenant(Scope::Manage),
        query: admin::AUDIT_PARAMS,
        request: None,
        success: &[(200, "AuditResponse", "success")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/admin/tenants",
        handler: |m| on(m, admin::create_tenant),
        summary: "Create a tenant and its admin key",
        access: Access::Root,
        query: &[],
        request: Some("TenantCreateRequest"),
        success: &[(201, "TenantCreated", "success")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/admin/tenants/{tenant_id}/keys",
        handler: |m| on(m, admin::create_key),
        summary: "Issue a scoped key",
        access: Access::Root,
        query: &[],
        request: Some("KeyCreateRequest"),
        success: &[(201, "KeyCreated", "success")],
    },
    Route {
        method: Method::Delete,
        path: "/api/v1/admin/tenants/{tenant_id}/keys/{key_id}",
        handler: |m| on(m, admin::revoke_key),
        summary: "Revoke a key",
        access: Access::Root,
        query: &[],
        request: None,
        success: &[(204, "Empty", "success")],
    },
    Route {
        method: Method::Put,
        path: "/api/v1/admin/tenants/{tenant_id}/keys/{key_id}/collect",
        handler: |m| on(m, collect::keys::put),
        summary: "Replace a write key's collection settings (allowed origins, webhook secret)",
        access: Access::Root,
        query: &[],
        request: Some("KeyCollectRequest"),
        success: &[(200, "KeyCollect", "success")],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/frontend",
        handler: |m| collect::cors::mounted(on(m, collect::frontend::create)),
        summary: "Collect one browser event with a write key (CORS per the key's allowed origins; text/plain JSON accepted)",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("FrontendEvent"),
        success: &[
            (201, "FrontendCreated", "stored"),
            (
                200,
                "FrontendCreated",
                "a repeat of an earlier idempotency_key: the first event's id",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/frontend/batch",
        handler: |m| collect::cors::mounted(on(m, collect::frontend::batch)),
        summary: "Collect browser events with a write key; client_info merged into each",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("FrontendBatch"),
        success: &[
            (
                201,
                "FrontendBatchResponse",
                "every event stored (or a repeat)",
            ),
            (
                207,
                "FrontendBatchResponse",
                "some events rejected; `errors` says which and why",
            ),
        ],
    },
    Route {
        method: Method::Get,
        path: "/api/v1/events/frontend/health",
        handler: |m| collect::cors::mounted(on(m, collect::frontend::health)),
        summary: "Collection status and the NATS connection",
        access: Access::Open,
        query: &[],
        request: None,
        success: &[(200, "FrontendHealth", "success")],
    },
    Route {
        method: Method::Post,
        path: "/v1/track",
        handler: |m| collect::cors::mounted(on(m, collect::segment::track)),
        summary: "Segment track (one message); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/identify",
        handler: |m| collect::cors::mounted(on(m, collect::segment::identify)),
        summary: "Segment identify; write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/page",
        handler: |m| collect::cors::mounted(on(m, collect::segment::page)),
        summary: "Segment page; write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/screen",
        handler: |m| collect::cors::mounted(on(m, collect::segment::screen)),
        summary: "Segment screen; write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/group",
        handler: |m| collect::cors::mounted(on(m, collect::segment::group)),
        summary: "Segment group; write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/alias",
        handler: |m| collect::cors::mounted(on(m, collect::segment::alias)),
        summary: "Segment alias; write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/batch",
        handler: |m| collect::cors::mounted(on(m, collect::segment::batch)),
        summary: "Segment batch; write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentBatch"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/t",
        handler: |m| collect::cors::mounted(on(m, collect::segment::track)),
        summary: "Segment track (browser library's short path); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/i",
        handler: |m| collect::cors::mounted(on(m, collect::segment::identify)),
        summary: "Segment identify (short path); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/p",
        handler: |m| collect::cors::mounted(on(m, collect::segment::page)),
        summary: "Segment page (short path); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/s",
        handler: |m| collect::cors::mounted(on(m, collect::segment::screen)),
        summary: "Segment screen (short path); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/g",
        handler: |m| collect::cors::mounted(on(m, collect::segment::group)),
        summary: "Segment group (short path); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/a",
        handler: |m| collect::cors::mounted(on(m, collect::segment::alias)),
        summary: "Segment alias (short path); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentMessage"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/b",
        handler: |m| collect::cors::mounted(on(m, collect::segment::batch)),
        summary: "Segment batch (short path); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentBatch"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/v1/import",
        handler: |m| collect::cors::mounted(on(m, collect::segment::batch)),
        summary: "RudderStack import (a batch); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentBatch"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/beacon/v1/batch",
        handler: |m| collect::cors::mounted(on(m, collect::segment::batch)),
        summary: "RudderStack beacon batch (sendBeacon, text/plain); write key as HTTP Basic user; answers in Segment's shape",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("SegmentBatch"),
        success: &[
            (
                200,
                "SegmentAccepted",
                "taken: each message stored or rejected alone (counted)",
            ),
            (
                400,
                "SegmentError",
                "not JSON, or over the size limit (Segment's shape, not problem+json)",
            ),
            (
                401,
                "SegmentError",
                "missing or unknown write key (Segment's shape)",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/webhooks/rudderstack",
        handler: |m| on(m, collect::rudderstack::webhook),
        summary: "RudderStack webhook destination: one event or an array; X-Webhook-Signature (sha256=<hex HMAC-SHA256 of the body>) required when the write key has a webhook secret",
        access: Access::Tenant(Scope::Collect),
        query: collect::WRITE_KEY_PARAMS,
        request: Some("RudderStackWebhook"),
        success: &[
            (
                200,
                "FrontendBatchResponse",
                "every event stored (or a repeat)",
            ),
            (
                207,
                "FrontendBatchResponse",
                "some events rejected; `errors` says which and why",
            ),
        ],
    },
    Route {
        method: Method::Post,
        path: "/api/v1/events/cloudevents",
        handler: |m| on(m, collect::cloudevents::cloudevents),
        summary: "CloudEvents 1.0: structured (application/cloudevents+json), batched (application/cloudevents-batch+json) or binary (ce-* headers); source + id deduplicate",
        access: Access::Tenant(Scope::Ingest),
        query: &[],
        request: Some("CloudEvent"),
        success: &[
            (
                201,
                "CloudEventsCreated",
                "stored (structured or binary: the event's id; batched: every event stored or a repeat)",
            ),
            (
                200,
                "FrontendCreated",
                "a repeat of a stored source + id: the first event's id",
            ),
            (
                207,
                "FrontendBatchResponse",
                "batched: some events rejected; `errors` says which and why",
            ),
        ],
    },
];

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_table_mounts() {
        // axum panics on a path mounted twice for one method.
        let _ = mount();
    }

    #[test]
    fn every_row_is_one_operation_with_its_parameters_described() {
        let mut seen = HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.path, r.method)),
                "{} {} is in the table twice",
                r.method.as_str(),
                r.path
            );
            let mut names = HashSet::new();
            for p in r.query {
                assert!(
                    names.insert(p.name),
                    "{} {}: `{}` twice",
                    r.method.as_str(),
                    r.path,
                    p.name
                );
                // The type is a `ParamKind`, so only the description can be missing.
                assert!(
                    !p.description.is_empty(),
                    "{} {}: `{}` needs a description",
                    r.method.as_str(),
                    r.path,
                    p.name
                );
            }
        }
    }
}
