//! `GET /api/openapi.json`: the OpenAPI 3.1 document, built from the route
//! table (`routes::ROUTES`) the router is mounted from, so a route cannot
//! exist undocumented; query parameters come from the same slices the
//! handlers parse with.

use serde_json::{Map, Value, json};

use crate::http::routes::ROUTES;

fn s(t: &str) -> Value {
    json!({ "type": t })
}

fn schemas() -> Value {
    let string_map = json!({ "type": "object", "additionalProperties": true });
    let enum_of = |vals: Vec<&str>| json!({ "type": "string", "enum": vals });
    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|v| name(*v)).collect()
    }
    use herald_core::{Category, EventCategory, EventSource, EventStatus, OutcomeStatus};
    let category = enum_of(names(Category::ALL, Category::as_str));
    let event_category = enum_of(names(EventCategory::ALL, EventCategory::as_str));
    let source = enum_of(names(EventSource::ALL, EventSource::as_str));
    let outcome_status = enum_of(names(OutcomeStatus::ALL, OutcomeStatus::as_str));
    let status = enum_of(names(EventStatus::ALL, EventStatus::as_str));
    let mut all = json!({
        "Problem": { "type": "object", "required": ["type", "title", "status", "detail"], "properties": {
            "type": s("string"), "title": s("string"), "status": s("integer"), "detail": s("string"),
            "errors": { "type": "array", "items": { "type": "object", "properties": {
                "field": { "type": "string", "description": "JSON pointer" }, "message": s("string"), "kind": s("string") } } } } },
        "EventCreateRequest": { "type": "object", "properties": {
            "event_type": s("string"), "category": category, "event_category": event_category, "event_source": source,
            "timestamp": { "type": "string", "format": "date-time" }, "user_id": s("string"),
            "actor": string_map, "object": string_map, "correlation": string_map,
            "outcome": { "type": "object", "properties": { "status": outcome_status } },
            "evidence": string_map, "context": string_map, "data": {}, "metadata": string_map,
            "stream_id": s("string"), "expected_version": { "oneOf": [
                { "type": "integer", "minimum": 0, "description": "the exact version the stream must be at (0: no events)" },
                { "type": "string", "enum": ["any", "no_stream", "stream_exists"] } ],
                "description": "optimistic concurrency on stream_id (default any); a conflict is a 409 whose problem carries stream_id, expected_version and current_version" },
            "idempotency_key": s("string"),
            "schema_version": s("integer") },
            "description": "Aliases: action/type/event/pattern → event_type; message_id/messageId → idempotency_key. Unknown keys are kept under metadata.unknown_fields with a warning." },
        "EventResponse": { "type": "object", "required": ["event_id", "tenant_id", "event_type", "category", "event_source", "timestamp", "processing_timestamp", "status", "created_at"], "properties": {
            "event_id": { "type": "string", "format": "uuid" }, "tenant_id": s("string"), "event_type": s("string"),
            "category": category, "event_category": { "anyOf": [event_category, { "type": "null" }] }, "event_source": source,
            "timestamp": { "type": "string", "format": "date-time" }, "processing_timestamp": { "type": "string", "format": "date-time" },
            "created_at": { "type": "string", "format": "date-time" }, "user_id": { "type": ["string", "null"] }, "status": status,
            "processed_at": { "type": "string", "format": "date-time", "description": "when processing finished (absent while pending)" },
            "processing_ms": { "type": "number", "description": "how long processing took" },
            "processing_results": { "type": "array", "items": { "$ref": "#/components/schemas/ProcessingResult" },
                "description": "what each processor made of the event, highest priority first; absent when none ran" },
            "schema_version": { "type": "integer", "description": "the definition version data was validated against" },
            "actor": string_map, "object": string_map, "correlation": string_map, "outcome": string_map,
            "evidence": string_map, "context": string_map, "data": {}, "metadata": string_map,
            "stream_id": s("string"), "stream_version": s("integer"), "idempotency_key": s("string"),
            "warnings": { "type": "array", "items": string_map } } },
        "BatchRequest": { "oneOf": [
            { "type": "object", "required": ["events"], "properties": { "events": { "type": "array", "items": { "$ref": "#/components/schemas/EventCreateRequest" } } } },
            { "type": "array", "items": { "$ref": "#/components/schemas/EventCreateRequest" } } ] },
        "BatchResponse": { "type": "object", "properties": { "stored": s("integer"), "duplicates": s("integer"), "rejected": s("integer"),
            "results": { "type": "array", "items": { "type": "object", "properties": { "index": s("integer"), "status": s("integer"),
                "event_id": s("string"), "event": { "$ref": "#/components/schemas/EventResponse" }, "error": { "$ref": "#/components/schemas/Problem" } } } } } },
        "EventQueryRequest": { "type": "object", "description": "Every filter is optional and all given ones must hold.", "properties": {
            "user_id": s("string"), "event_type": {}, "event_source": {}, "event_category": {}, "category": {}, "categories": { "type": "array" },
            "status": {}, "start_time": { "type": "string", "format": "date-time" }, "end_time": { "type": "string", "format": "date-time" },
            "trace_id": s("string"), "span_id": s("string"), "correlation_id": s("string"), "request_id": s("string"), "order_id": s("string"),
            "session_id": s("string"), "ticket_id": s("string"), "actor": string_map, "object": string_map, "outcome_status": outcome_status,
            "environment": s("string"), "service": s("string"), "q": s("string"), "order": enum_of(vec!["asc", "desc"]),
            "limit": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 }, "offset": s("integer"), "cursor": s("string"),
            "track_total": { "type": "boolean", "default": false, "description": "count every match; otherwise total stops at 10000 with total_relation gte" } } },
        "EventQueryResponse": { "type": "object", "properties": { "events": { "type": "array", "items": { "$ref": "#/components/schemas/EventResponse" } },
            "total": s("integer"), "total_relation": enum_of(vec!["eq", "gte"]), "has_more": s("boolean"), "next_cursor": { "type": ["string", "null"] },
            "limit": s("integer"), "offset": s("integer") } },
        "AuditResponse": { "type": "object", "properties": { "count": s("integer"), "has_more": s("boolean"),
            "next_cursor": { "type": ["string", "null"], "description": "pass as `cursor` for the next (older) page" },
            "records": { "type": "array", "items": { "$ref": "#/components/schemas/AuditRecord" } } } },
        "AuditRecord": { "type": "object", "required": ["at", "operation", "resource", "outcome", "status_code", "request_id", "duration_us"], "properties": {
            "at": { "type": "string", "format": "date-time" }, "tenant_id": { "type": ["string", "null"] }, "key_id": { "type": ["string", "null"] },
            "operation": s("string"), "resource": s("string"),
            "outcome": enum_of(vec!["success", "denied", "rejected", "error", "security_violation"]),
            "status_code": s("integer"), "request_id": s("string"), "duration_us": s("integer"), "detail": s("string") } },
        "TenantCreateRequest": { "type": "object", "required": ["name"], "properties": { "name": s("string"), "tenant_id": s("string") } },
        "TenantCreated": { "type": "object", "properties": { "tenant_id": s("string"), "name": s("string"), "api_key": s("string"), "key_id": s("string"),
            "scopes": { "type": "array", "items": s("string") }, "created_at": { "type": "string", "format": "date-time" } } },
        "KeyCreateRequest": { "type": "object", "required": ["name", "scopes"], "properties": { "name": s("string"),
            "scopes": { "type": "array", "items": enum_of(vec!["ingest", "read", "manage", "collect"]) },
            "allowed_origins": { "$ref": "#/components/schemas/AllowedOrigins" },
            "webhook_secret": { "type": ["string", "null"], "minLength": 16, "maxLength": 256, "description": "webhooks sent with this write key must carry X-Webhook-Signature: sha256=<HMAC-SHA256 of the body with it>" } } },
        "KeyCreated": { "type": "object", "properties": { "key_id": s("string"), "tenant_id": s("string"), "name": s("string"), "api_key": s("string"),
            "scopes": { "type": "array", "items": s("string") }, "created_at": { "type": "string", "format": "date-time" },
            "collect": { "$ref": "#/components/schemas/KeyCollectSettings" } } },
        "Health": { "type": "object", "properties": { "status": s("string"), "version": s("string"), "store": enum_of(vec!["sqlite", "postgres"]) } },
        "EventStream": { "type": "string", "description": "Server-Sent Events. The first message carries only `id:` (the starting cursor). Then `event: event` messages, \
    one per event in commit order: `id:` its cursor (pass it back as the Last-Event-ID header, or `after`, to resume with no gap and no repeat), `data:` the event as \
    GET /api/v1/events/{event_id} answers it at commit (EventResponse, status pending). `event: overflow`: the client fell tail_buffer_events events behind and is \
    disconnected; `data:` {\"reason\", \"resume_after\"}. `event: error`: reading the store failed; the stream ends; resume likewise. A `:heartbeat` comment \
    comes after tail_heartbeat_ms without a message." },
        "Metrics": { "type": "string", "description": "Prometheus text exposition format 0.0.4: herald_http_requests_total{route,method,status}, herald_http_request_duration_seconds (histogram), herald_http_errors_total{type}, herald_group_commit_events and herald_group_commit_duration_seconds (histograms), herald_events_stored_total, herald_processing_backlog{kind}, herald_delivery_backlog, herald_dead_letters{kind}, herald_nats_publish_lag_events, herald_self_events_total{outcome}, …; labels never carry tenant, key or event ids" },
        "Object": { "type": "object" },
        "Empty": { "type": "object" },
    });
    // The registry's schemas, in a second literal to stay within the
    // macro's recursion limit.
    let projection_rule = json!({ "type": "object", "additionalProperties": false, "properties": {
        "fold": { "type": "string", "enum": ["merge", "replace", "delete", "ignore"], "description": "merge: JSON merge patch (default); replace: the state becomes data; delete: the entity is gone (state null); ignore: no change" },
        "path": { "type": "string", "description": "JSON pointer of the state the data lands under (default: the whole state)" } },
        "description": "how events of this type change their stream's projection; a change rebuilds the tenant's projections under the new rule" });
    let registry = json!({
        "EventDefinitionRequest": { "type": "object", "required": ["event_type"], "properties": {
            "event_type": { "type": "string", "description": "exact type (order.created) or NATS-style pattern: * one token, > one or more trailing tokens (alias: pattern)" },
            "category": category, "event_category": event_category, "name": s("string"), "description": s("string"),
            "payload_schema": { "description": "JSON Schema for data: draft 2020-12 (default), 2019-09 or 7 by $schema; no remote $ref (alias: schema)" },
            "allowed_sources": { "type": "array", "items": source }, "examples": { "type": "array", "description": "example data payloads; each must validate" },
            "ui": { "type": "object", "description": "free JSON for UI builders: display_name, icon, color, group, fields" } } },
        "EventDefinition": { "type": "object", "properties": {
            "id": s("string"), "definition_id": s("string"), "version": s("integer"), "versions": { "type": "array", "items": s("integer") },
            "latest_version": s("integer"), "event_type": s("string"), "is_pattern": s("boolean"), "builtin": s("boolean"),
            "category": category, "event_category": event_category, "name": s("string"), "description": s("string"),
            "payload_schema": {}, "allowed_sources": { "type": "array", "items": source }, "examples": { "type": "array" }, "ui": string_map, "projection": projection_rule,
            "compatibility": { "type": "object", "properties": { "previous_version": s("integer"), "level": enum_of(vec!["identical", "backward", "breaking"]),
                "changes": { "type": "array", "items": { "type": "object", "properties": { "path": s("string"), "breaking": s("boolean"), "message": s("string"), "advice": s("string") } } } } },
            "created_at": { "type": "string", "format": "date-time" }, "updated_at": { "type": "string", "format": "date-time" } } },
        "EventDefinitionList": { "type": "object", "properties": { "definitions": { "type": "array", "items": { "$ref": "#/components/schemas/EventDefinition" } },
            "total": s("integer"), "has_more": s("boolean"), "limit": s("integer"), "offset": s("integer") } },
        "Settings": { "type": "object", "properties": { "validation_mode": enum_of(vec!["permissive", "strict"]), "updated_at": { "type": "string", "format": "date-time" } } },
    });
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), registry) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), subscription_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), delivery_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), replay_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) =
        (all.as_object_mut(), crate::api::collect::schemas::schemas())
    {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), stream_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), processor_schemas()) {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) =
        (all.as_object_mut(), crate::api::statistics::schemas())
    {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) =
        (all.as_object_mut(), crate::api::waits::schemas::schemas())
    {
        all.extend(more);
    }
    if let (Some(all), Value::Object(more)) = (all.as_object_mut(), crate::api::stories::schemas())
    {
        all.extend(more);
    }
    all
}

/// Processors and what they made of an event.
fn processor_schemas() -> Value {
    let date_time = json!({ "type": "string", "format": "date-time" });
    let fields = json!({
        "processor_name": { "type": "string", "maxLength": 128, "description": "unique within the tenant (409 otherwise)" },
        "processor_type": { "type": "string", "enum": herald_workers::processors::TYPES,
            "description": "webhook: config {url, timeout_ms} (calls the URL, signed like deliveries; the JSON answer is the result); enrich: config {fields: {name: CEL expression}}; nats: config {subject: \"orders.{event.data.region}\"}" },
        "enabled": { "type": "boolean", "default": true },
        "priority": { "type": "integer", "minimum": -1000, "maximum": 1000, "default": 0, "description": "higher runs first" },
        "filters": { "type": "object", "properties": {
            "event_types": { "type": "array", "items": s("string"), "description": "exact types or NATS-style patterns; empty: every type" },
            "event_sources": { "type": "array", "items": s("string") },
            "event_categories": { "type": "array", "items": s("string") },
            "filter": { "type": ["string", "null"], "description": "a CEL expression over the event" } }, "additionalProperties": false },
        "config": { "type": "object", "description": "the type's settings (see processor_type)" },
        "retry_policy": { "type": ["object", "null"], "properties": { "schedule": { "type": "array", "items": s("integer") } },
            "description": "seconds before each retry of a failed event; default 5, 30, 120, 600, 1800" },
        "critical": { "type": "boolean", "default": false,
            "description": "events this processor matches are processed ahead of the others when a backlog builds" },
    });
    let mut request = fields.clone();
    request["webhook_secret"] = json!({ "type": "string",
        "description": "webhook processors only, on create: whsec_ + base64 of the key; without it one is generated and shown once" });
    let mut answer = fields;
    for (k, v) in [
        ("processor_id", s("string")),
        ("created_at", date_time.clone()),
        ("updated_at", date_time.clone()),
    ] {
        answer[k] = v;
    }
    let mut with_secret = answer.clone();
    with_secret["webhook_secret"] = json!({ "type": "string", "description": "a webhook processor's signing secret, shown only in this answer" });
    let required = json!([
        "processor_id",
        "processor_name",
        "processor_type",
        "enabled",
        "priority",
        "filters",
        "config",
        "retry_policy",
        "critical",
        "created_at",
        "updated_at"
    ]);
    json!({
        "ProcessorRequest": { "type": "object", "required": ["processor_name", "processor_type"], "properties": request,
            "description": "processor_id, created_at and updated_at are ignored, so an answer can be edited and sent back" },
        "Processor": { "type": "object", "required": required, "properties": answer },
        "ProcessorWithSecret": { "type": "object", "required": required, "properties": with_secret },
        "ProcessorList": { "type": "object", "required": ["processors", "count", "has_more", "next_cursor"], "properties": {
            "processors": { "type": "array", "items": { "$ref": "#/components/schemas/Processor" } },
            "count": s("integer"), "has_more": s("boolean"),
            "next_cursor": { "type": ["string", "null"], "description": "pass as cursor for the next page" } } },
        "ProcessingResult": { "type": "object", "properties": {
            "processor_id": s("string"), "processor_name": s("string"), "processor_type": s("string"),
            "priority": s("integer"), "status": { "type": "string", "enum": ["success", "failed"] },
            "attempt": s("integer"), "duration_ms": s("number"), "result": {}, "error": s("string"),
            "finished_at": date_time } },
    })
}

/// A stream page and a projection.
fn stream_schemas() -> Value {
    let date_time = json!({ "type": "string", "format": "date-time" });
    json!({
        "StreamPage": { "type": "object",
            "required": ["stream_id", "entity_type", "entity_id", "current_version", "event_count", "first_event_at", "last_event_at", "direction", "count", "has_more", "next_version", "events"],
            "properties": {
                "stream_id": s("string"), "entity_type": s("string"), "entity_id": s("string"),
                "current_version": s("integer"), "event_count": s("integer"),
                "first_event_at": date_time, "last_event_at": date_time,
                "direction": { "type": "string", "enum": ["forward", "backward"] },
                "count": s("integer"), "has_more": s("boolean"),
                "next_version": { "type": ["integer", "null"], "description": "from_version for the next page" },
                "events": { "type": "array", "items": { "$ref": "#/components/schemas/EventResponse" } } } },
        "Projection": { "type": "object",
            "required": ["stream_id", "entity_type", "entity_id", "state", "version", "last_event_id", "updated_at", "rules"],
            "properties": {
                "stream_id": s("string"), "entity_type": s("string"), "entity_id": s("string"),
                "state": { "description": "the folded state; null when the entity was deleted" },
                "version": { "type": "integer", "description": "the stream version the state was folded to" },
                "last_event_id": { "type": "string", "format": "uuid" },
                "updated_at": { "type": "string", "format": "date-time", "description": "processing time of the last event folded in" },
                "rules": { "type": "string", "description": "fingerprint of the tenant's projection rules the state was folded under" } } },
    })
}

/// Deliveries with their attempts, dead letters, and the redrive and
/// recover requests.
fn delivery_schemas() -> Value {
    use herald_store::DeliveryState;
    let date_time = json!({ "type": "string", "format": "date-time" });
    let maybe = |t: &str| json!({ "type": [t, "null"] });
    let maybe_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let states: Vec<&str> = DeliveryState::ALL.iter().map(|s| s.as_str()).collect();
    let attempt = json!({ "type": "object", "required": ["attempt", "at", "status_code", "duration_ms", "error_class", "response_snippet", "next_attempt_at"], "properties": {
        "attempt": { "type": "integer", "description": "1 for the first; a redriven delivery's attempts number on after its earlier ones" },
        "at": date_time, "status_code": maybe("integer"), "duration_ms": s("integer"),
        "error_class": { "type": ["string", "null"], "description": "how it failed (server_error, timeout, connect, …); null on success" },
        "response_snippet": { "type": ["string", "null"], "description": "the start of the response body, capped" },
        "next_attempt_at": maybe_time } });
    let delivery_fields = json!({
        "delivery_id": s("string"), "subscription_id": s("string"), "event_id": { "type": "string", "format": "uuid" },
        "webhook_id": { "type": "string", "description": "the webhook-id header: the same on every attempt, redrive and recover of this delivery" },
        "replay_id": { "type": ["string", "null"], "description": "set on a delivery a replay made" },
        "state": { "type": "string", "enum": states }, "attempt_count": s("integer"),
        "next_attempt_at": { "type": ["string", "null"], "format": "date-time", "description": "null once delivered or dead" },
        "last_status": maybe("integer"), "last_error_class": maybe("string"),
        "stream_id": maybe("string"), "stream_version": maybe("integer"),
        "created_at": date_time, "updated_at": date_time,
        "attempts": { "type": "array", "items": { "$ref": "#/components/schemas/DeliveryAttempt" } },
    });
    let delivery_required = json!([
        "delivery_id",
        "subscription_id",
        "event_id",
        "webhook_id",
        "replay_id",
        "state",
        "attempt_count",
        "next_attempt_at",
        "attempts"
    ]);
    let mut dead_fields = delivery_fields.clone();
    for (k, v) in [
        (
            "event_type",
            json!({ "type": ["string", "null"], "description": "null once the event is no longer stored" }),
        ),
        ("event_time", maybe_time.clone()),
        (
            "died_at",
            json!({ "type": "string", "format": "date-time", "description": "when it was given up on" }),
        ),
        (
            "last_error",
            json!({ "anyOf": [{ "$ref": "#/components/schemas/DeliveryAttempt" }, { "type": "null" }], "description": "the last attempt" }),
        ),
        (
            "event",
            json!({ "anyOf": [{ "$ref": "#/components/schemas/EventResponse" }, { "type": "null" }] }),
        ),
        (
            "subscription",
            json!({ "type": ["object", "null"], "description": "the target; null once deleted", "properties": {
            "subscription_id": s("string"), "subscriber_name": s("string"), "callback_url": s("string"), "enabled": s("boolean") } }),
        ),
    ] {
        dead_fields[k] = v;
    }
    let filter = json!({
        "subscription_id": s("string"),
        "processor_id": { "type": "string", "description": "only events this processor failed on" },
        "event_type": { "type": "string", "description": "the event's exact type" },
        "start_time": { "type": "string", "format": "date-time", "description": "died at or after" },
        "end_time": { "type": "string", "format": "date-time", "description": "died before" },
        "error_class": { "type": "string", "description": "the last attempt's error class" },
    });
    let mut by_filter = filter.clone();
    by_filter["ids"] = json!({ "type": "array", "items": s("string"), "minItems": 1, "maxItems": 1000, "description": "delivery ids; not together with filter fields" });
    json!({
        "DeliveryAttempt": attempt,
        "Delivery": { "type": "object", "required": delivery_required, "properties": delivery_fields },
        "DeliveryList": { "type": "object", "required": ["deliveries", "count"], "properties": {
            "deliveries": { "type": "array", "items": { "$ref": "#/components/schemas/Delivery" } }, "count": s("integer"),
            "has_more": s("boolean"), "next_cursor": { "type": ["string", "null"], "description": "pass as cursor for the next page" } } },
        "DeadLetter": { "type": "object", "properties": dead_fields },
        "ProcessingDeadLetter": { "type": "object", "required": ["dead_letter_id", "target", "event_id", "attempts", "died_at"], "properties": {
            "dead_letter_id": { "type": "string", "description": "pjb_…: redrive or discard it by this id" },
            "target": { "type": "string", "enum": ["processor"] },
            "event_id": s("string"), "event_type": s("string"), "state": s("string"),
            "attempts": s("integer"), "died_at": date_time.clone(), "last_error": { "type": ["string", "null"] },
            "failed_processors": { "type": "array", "items": { "type": "object", "properties": {
                "processor_id": s("string"), "processor_name": s("string"), "error": { "type": ["string", "null"] } } } },
            "processing_results": { "type": "array", "items": { "$ref": "#/components/schemas/ProcessingResult" } },
            "event": { "anyOf": [{ "$ref": "#/components/schemas/EventResponse" }, { "type": "null" }] } } },
        "DeadLetterList": { "type": "object", "required": ["dead_letters", "count", "has_more", "next_cursor"], "properties": {
            "dead_letters": { "type": "array", "items": { "anyOf": [
                { "$ref": "#/components/schemas/DeadLetter" }, { "$ref": "#/components/schemas/ProcessingDeadLetter" } ] },
                "description": "dead deliveries (dlv_…) first, then events processors gave up on (pjb_…)" }, "count": s("integer"),
            "has_more": s("boolean"), "next_cursor": { "type": ["string", "null"], "description": "pass as cursor for the next page" } } },
        "RedriveRequest": { "type": "object", "properties": by_filter,
            "description": "ids, or at least one filter field (all given must hold); a body with neither is refused" },
        "RedriveResponse": { "type": "object", "required": ["redriven"], "properties": { "redriven": { "type": "integer", "description": "how many dead letters were re-queued" } } },
        "RecoverRequest": { "type": "object", "required": ["since"], "properties": { "since": date_time,
            "until": { "type": "string", "format": "date-time", "description": "default: now" } } },
        "RecoverResponse": { "type": "object", "required": ["recovered", "since", "until"], "properties": {
            "recovered": { "type": "integer", "description": "how many dead deliveries were re-queued" }, "since": date_time, "until": date_time } },
    })
}

/// The replay resource's schemas: the request (a selection, its target,
/// dry_run), the 202 and a replay's state.
fn replay_schemas() -> Value {
    use crate::api::replay::DRY_RUN_BOUND;
    use herald_workers::replay::selection::MAX_EVENT_IDS;
    let date_time = json!({ "type": "string", "format": "date-time" });
    let maybe_time = json!({ "type": ["string", "null"], "format": "date-time" });
    let count = |d: &str| json!({ "type": "integer", "description": d });
    json!({
        "ReplayRequest": { "type": "object",
            "description": "Exactly one selection: event_ids; or stream_id; or start_time with end_time. stream_id and the time range take the event query's filter fields beside them (same names as POST /api/v1/events/query, paging keys excepted); event_ids takes none.",
            "allOf": [{ "$ref": "#/components/schemas/EventQueryRequest" }],
            "properties": {
                "event_ids": { "type": "array", "items": { "type": "string", "format": "uuid" }, "minItems": 1, "maxItems": MAX_EVENT_IDS },
                "stream_id": s("string"),
                "start_time": date_time.clone(), "end_time": date_time.clone(),
                "target_service": { "type": "string", "description": "one subscription, by id or subscriber_name; default: every enabled subscription (each event goes to those it matches)" },
                "dry_run": { "type": "boolean", "default": false, "description": format!("count what it would deliver, deliver nothing (reads at most {DRY_RUN_BOUND} events)") } } },
        "ReplayAccepted": { "type": "object", "required": ["replay_id", "status_url", "state", "dry_run", "target_subscriptions"], "properties": {
            "replay_id": s("string"), "status_url": s("string"),
            "state": { "type": "string", "enum": ["pending", "completed"] }, "dry_run": s("boolean"),
            "target_subscriptions": { "type": "array", "items": s("string") },
            "events": count("dry run: the events that would be delivered (matching at least one target)"),
            "deliveries": count("dry run: the deliveries it would create (one per matching event and target)"),
            "events_scanned": count("dry run: the selected events read"),
            "complete": { "type": "boolean", "description": "dry run: false when the selection holds more than bound events and the counts cover the first bound only" },
            "bound": count("dry run: the most events it reads") } },
        "Replay": { "type": "object", "required": ["replay_id", "state", "dry_run", "selection", "target_subscriptions", "events_scanned", "events_matched", "deliveries_created", "created_at"], "properties": {
            "replay_id": s("string"), "status_url": s("string"),
            "state": { "type": "string", "enum": ["pending", "running", "completed", "failed"] },
            "dry_run": s("boolean"), "selection": { "type": "object", "description": "the selection as stored (identifiers as the events store them)" },
            "target_subscriptions": { "type": "array", "items": s("string") },
            "events_scanned": count("selected events read so far"),
            "events_matched": count("of those, events matching at least one target"),
            "deliveries_created": count("deliveries created so far"),
            "error": { "type": ["string", "null"] },
            "created_at": date_time, "started_at": maybe_time.clone(), "completed_at": maybe_time } },
    })
}

/// The subscription resource's schemas: the request, the answer (with the
/// secret only at creation and rotation) and the listing.
fn subscription_schemas() -> Value {
    use crate::api::subscriptions::input::{ORDERINGS, PAYLOAD_FORMATS, SUBSCRIBER_TYPES};
    use herald_core::{Category, EventCategory, EventSource};
    use herald_filter::MAX_FILTER_LEN as MAX_FILTER_BYTES;
    let strings = |description: &str| json!({ "type": "array", "items": s("string"), "description": description });
    let sources: Vec<&str> = EventSource::ALL.iter().map(|v| v.as_str()).collect();
    let mut categories: Vec<&str> = Category::ALL.iter().map(|v| v.as_str()).collect();
    for c in EventCategory::ALL.iter().map(|v| v.as_str()) {
        if !categories.contains(&c) {
            categories.push(c);
        }
    }
    let date_time = json!({ "type": "string", "format": "date-time" });
    let fields = json!({
        "subscriber_name": { "type": "string", "description": "unique within the tenant (409 otherwise)" },
        "subscriber_type": { "type": "string", "enum": SUBSCRIBER_TYPES, "default": "webhook" },
        "event_types": strings("exact event types or NATS-style patterns (order.*: one token, order.>: one or more); empty: every type"),
        "event_sources": { "type": "array", "items": { "type": "string", "enum": sources }, "description": "empty: every source" },
        "event_categories": { "type": "array", "items": { "type": "string", "enum": categories },
            "description": "category or event_category values: an event matches a value when its category or its event_category is that value (system and security are both); empty: every category" },
        "callback_url": { "type": "string", "format": "uri",
            "description": "http or https; refused when its host resolves to a loopback, private, link-local, multicast or metadata address outside delivery_allowed_networks (HERALD_DELIVERY_ALLOWED_NETWORKS)" },
        "retry_policy": { "type": "object", "properties": { "schedule": { "type": "array", "items": s("integer"),
            "description": "seconds to wait before each retry; the first attempt is immediate" } }, "additionalProperties": false,
            "description": "default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h" },
        "filter": { "type": ["string", "null"], "maxLength": MAX_FILTER_BYTES, "description": "a CEL expression over the event (event.data.amount > 100); null: every event" },
        "ordering": { "type": "string", "enum": ORDERINGS, "default": "none", "description": "stream: the events of one stream_id one at a time, in version order" },
        "rate_limit": { "type": ["number", "null"], "exclusiveMinimum": 0, "description": "deliveries per second at most; null: no limit" },
        "headers": { "type": "object", "additionalProperties": s("string"),
            "description": "extra static headers; hop-by-hop, body, webhook-*, herald-* and traceparent names are refused" },
        "enabled": { "type": "boolean", "default": true },
        "payload_format": { "type": "string", "enum": PAYLOAD_FORMATS, "default": "json",
            "description": "json: {type, timestamp, data: the event}; cloudevents: a structured-mode CloudEvent 1.0 (content-type application/cloudevents+json) whose data is the event; an event that arrived as a CloudEvent keeps its id, source, subject, time and extensions" },
    });
    let mut request = fields.clone();
    request["webhook_secret"] = json!({ "type": "string",
        "description": "whsec_ + base64 of 24..=64 key bytes; on create only (a PUT refuses it). Without it one is generated (32 random bytes) and shown once" });
    let mut answer = fields;
    for (k, v) in [
        ("subscription_id", s("string")),
        ("created_at", date_time.clone()),
        ("updated_at", date_time.clone()),
        (
            "previous_secret_valid_until",
            json!({ "type": "string", "format": "date-time",
            "description": "after a rotation: until when the previous secret still signs deliveries (the secret itself is never shown again)" }),
        ),
    ] {
        answer[k] = v;
    }
    let mut with_secret = answer.clone();
    with_secret["webhook_secret"] =
        json!({ "type": "string", "description": "the signing secret, shown only in this answer" });
    let required = json!([
        "subscription_id",
        "subscriber_name",
        "subscriber_type",
        "event_types",
        "event_sources",
        "event_categories",
        "callback_url",
        "retry_policy",
        "filter",
        "ordering",
        "rate_limit",
        "headers",
        "enabled",
        "payload_format",
        "created_at",
        "updated_at"
    ]);
    let mut required_with_secret = required.clone();
    if let Some(r) = required_with_secret.as_array_mut() {
        r.push(json!("webhook_secret"));
    }
    json!({
        "SubscriptionRequest": { "type": "object", "required": ["subscriber_name", "callback_url"], "properties": request,
            "description": "subscription_id, created_at, updated_at and previous_secret_valid_until are ignored, so an answer can be edited and sent back" },
        "Subscription": { "type": "object", "required": required, "properties": answer },
        "SubscriptionWithSecret": { "type": "object", "required": required_with_secret, "properties": with_secret },
        "SubscriptionList": { "type": "object", "required": ["subscriptions", "count", "has_more", "next_cursor"], "properties": {
            "subscriptions": { "type": "array", "items": { "$ref": "#/components/schemas/Subscription" } },
            "count": s("integer"), "has_more": s("boolean"),
            "next_cursor": { "type": ["string", "null"], "description": "pass as cursor for the next page" } } },
    })
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        // A status listed twice (JSON, or an event stream when asked to
        // follow) is one response with both content types.
        let mut responses: Map<String, Value> = Map::new();
        for (status, schema, when) in r.success {
            let body = if *schema == "Empty" {
                json!({ "description": when })
            } else if *schema == "Metrics" {
                json!({ "description": when, "content": { "text/plain": { "schema": { "$ref": "#/components/schemas/Metrics" } } } })
            } else if *schema == "EventStream" {
                json!({ "description": when, "content": { "text/event-stream": { "schema": { "$ref": "#/components/schemas/EventStream" } } } })
            } else {
                json!({ "description": when, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
            };
            match responses.get_mut(&status.to_string()) {
                Some(Value::Object(seen)) => {
                    let said = seen["description"].as_str().unwrap_or_default().to_string();
                    seen.insert("description".into(), json!(format!("{said}; {when}")));
                    if let (Some(Value::Object(c)), Some(Value::Object(more))) =
                        (seen.get_mut("content"), body.get("content"))
                    {
                        c.extend(more.clone());
                    }
                }
                _ => {
                    responses.insert(status.to_string(), body);
                }
            }
        }
        responses.insert(
            "default".into(),
            json!({ "description": "problem", "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } }),
        );
        let mut op = json!({ "summary": r.summary, "responses": responses });
        if let Some(scope) = r.access.scope_name() {
            op["security"] = json!([{ "bearer": [] }]);
            op["x-herald-scope"] = json!(scope);
        }
        if let Some(req) = r.request {
            op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{req}") } } } });
        }
        let params: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .chain(r.query.iter().map(|p| json!({ "name": p.name, "in": "query", "required": false, "description": p.description, "schema": { "type": p.kind.as_str() } })))
            .collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.as_str()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "Herald", "version": env!("CARGO_PKG_VERSION"), "description": "Self-hosted event hub. Errors are application/problem+json (RFC 9457)." },
        "paths": paths,
        "components": { "schemas": schemas(), "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
    })
}
