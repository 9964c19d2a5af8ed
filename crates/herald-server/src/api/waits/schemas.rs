//! The OpenAPI schemas of `/api/v1/waits`.

use serde_json::{Value, json};

pub fn schemas() -> Value {
    let s = |t: &str| json!({ "type": t });
    let date_time = json!({ "type": "string", "format": "date-time" });
    let nullable = |t: &str| json!({ "type": [t, "null"] });
    let alternative = json!({ "type": "object", "required": ["event_type"], "properties": {
        "event_type": { "type": "string", "description": "an event type, or a NATS-style pattern (order.*, order.>)" },
        "filter": { "type": "string", "description": "CEL over `event` and `wait` (event.data.order_id == wait.context.order_id)" } } });
    let status =
        json!({ "type": "string", "enum": ["open", "resolved", "timed_out", "cancelled"] });
    let wait = json!({
        "wait_id": s("string"), "workflow_instance_id": s("string"), "status": status,
        "any_of": { "type": "array", "items": alternative },
        "context": {}, "timeout_at": date_time, "lookback": s("integer"),
        "callback_url": nullable("string"), "created_at": date_time,
        "ended_at": { "type": ["string", "null"], "format": "date-time" },
        "event_id": nullable("string"),
        "event": { "description": "the event that resolved the wait, as stored (null unless resolved)" },
        "callback": { "type": "object", "description": "with a callback_url, once the wait has ended", "properties": {
            "state": { "type": "string", "enum": ["pending", "in_flight", "delivered", "failed"] },
            "attempts": s("integer"), "next_attempt_at": { "type": ["string", "null"], "format": "date-time" },
            "last_status": nullable("integer"), "last_error": nullable("string") } },
    });
    let required = json!([
        "wait_id",
        "workflow_instance_id",
        "status",
        "any_of",
        "context",
        "timeout_at",
        "lookback",
        "created_at"
    ]);
    let mut with_secret = wait.clone();
    with_secret["webhook_secret"] = json!({ "type": "string", "description": "with a callback_url: the secret signing the callback, shown only in this answer" });
    json!({
        "WaitRequest": { "type": "object", "required": ["workflow_instance_id", "timeout"], "properties": {
            "workflow_instance_id": s("string"),
            "event_type": { "type": "string", "description": "an event type or pattern (or give any_of)" },
            "filter": { "type": "string", "description": "CEL over `event` and `wait`" },
            "any_of": { "type": "array", "items": alternative, "description": "alternatives tried in order; the first that matches resolves the wait" },
            "context": { "description": "any JSON; filters read it as wait.context" },
            "timeout": { "oneOf": [{ "type": "number", "exclusiveMinimum": 0, "description": "seconds from now" }, { "type": "string", "format": "date-time" }] },
            "lookback": { "type": "integer", "minimum": 0, "description": "seconds: an event stored up to this long before the wait was created also matches (default 0)" },
            "callback_url": { "type": "string", "description": "POSTed the wait's end, signed per Standard Webhooks" },
            "webhook_secret": { "type": "string", "description": "whsec_ secret for the callback; generated when left out" } } },
        "Wait": { "type": "object", "required": required, "properties": wait },
        "WaitWithSecret": { "type": "object", "required": required, "properties": with_secret },
        "WaitList": { "type": "object", "required": ["waits", "count", "has_more", "next_cursor"], "properties": {
            "waits": { "type": "array", "items": { "$ref": "#/components/schemas/Wait" } },
            "count": s("integer"), "has_more": s("boolean"),
            "next_cursor": { "type": ["string", "null"], "description": "pass as cursor for the next page" } } },
        "WaitsCancelled": { "type": "object", "required": ["workflow_instance_id", "cancelled"], "properties": {
            "workflow_instance_id": s("string"), "cancelled": s("integer") } },
    })
}
