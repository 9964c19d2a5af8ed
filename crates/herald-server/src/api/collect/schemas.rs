//! The OpenAPI schemas of the collection routes and of a write key's
//! collection settings.

use serde_json::{Value, json};

pub fn schemas() -> Value {
    let string = json!({ "type": "string" });
    let problem = json!({ "$ref": "#/components/schemas/Problem" });
    json!({
        "AllowedOrigins": { "type": ["array", "null"], "maxItems": super::keys::MAX_ORIGINS,
            "items": { "type": "string", "description": "scheme://host[:port], or * for any" },
            "description": "origins a browser may use this write key from; null or absent: none (requests carrying an Origin are refused)" },
        "KeyCollectSettings": { "type": "object", "required": ["allowed_origins", "webhook_secret_set"], "properties": {
            "allowed_origins": { "$ref": "#/components/schemas/AllowedOrigins" },
            "webhook_secret_set": { "type": "boolean" } } },
        "KeyCollectRequest": { "type": "object", "description": "replaces both settings; an absent one becomes unset", "properties": {
            "allowed_origins": { "$ref": "#/components/schemas/AllowedOrigins" },
            "webhook_secret": { "type": ["string", "null"], "minLength": 16, "maxLength": 256 } } },
        "KeyCollect": { "type": "object", "required": ["key_id", "tenant_id", "allowed_origins", "webhook_secret_set"], "properties": {
            "key_id": string, "tenant_id": string,
            "allowed_origins": { "$ref": "#/components/schemas/AllowedOrigins" },
            "webhook_secret_set": { "type": "boolean" } } },
        "FrontendEvent": { "type": "object", "required": ["event_type"],
            "description": "a browser event; other keys are kept under metadata.unknown_fields. Sent as application/json or text/plain.",
            "properties": {
                "event_type": string, "event_category": { "type": "string" }, "category": string,
                "user_id": string, "anonymous_id": string, "session_id": string, "page_url": string,
                "timestamp": { "type": "string", "format": "date-time" }, "data": { "type": "object" },
                "context": { "type": "object" }, "metadata": { "type": "object" },
                "idempotency_key": { "type": "string", "description": "a retry with the same key stores nothing new" },
                "writeKey": { "type": "string", "description": "the write key, when not in the query or a header" } } },
        "FrontendCreated": { "type": "object", "required": ["event_id"], "properties": { "event_id": { "type": "string", "format": "uuid" } } },
        "FrontendBatch": { "type": "object", "required": ["events"], "properties": {
            "events": { "type": "array", "items": { "$ref": "#/components/schemas/FrontendEvent" }, "minItems": 1 },
            "client_info": { "type": "object", "description": "merged into each event's context (the event's own context wins)" },
            "writeKey": string } },
        "FrontendBatchResponse": { "type": "object", "required": ["count", "event_ids", "errors"], "properties": {
            "count": { "type": "integer", "description": "events stored now (repeats not counted)" },
            "event_ids": { "type": "array", "items": { "type": ["string", "null"], "format": "uuid" }, "description": "in request order; null for a rejected event" },
            "errors": { "type": "array", "items": { "type": "object", "required": ["index", "status", "error"], "properties": {
                "index": { "type": "integer" }, "status": { "type": "integer" }, "error": problem } } } } },
        "SegmentMessage": { "type": "object", "description": "a Segment message (track, identify, page, screen, group, alias); mapped as the README's table says, nothing dropped",
            "properties": { "type": string, "event": string, "userId": string, "anonymousId": string, "messageId": string,
                "properties": { "type": "object" }, "traits": { "type": "object" }, "context": { "type": "object" },
                "timestamp": string, "originalTimestamp": string, "sentAt": string, "integrations": { "type": "object" },
                "groupId": string, "previousId": string, "name": string, "writeKey": string } },
        "SegmentBatch": { "type": "object", "required": ["batch"], "properties": {
            "batch": { "type": "array", "items": { "$ref": "#/components/schemas/SegmentMessage" } },
            "sentAt": string, "context": { "type": "object" }, "writeKey": string } },
        "SegmentAccepted": { "type": "object", "required": ["success", "accepted", "rejected"], "properties": {
            "success": { "type": "boolean" }, "accepted": { "type": "integer", "description": "messages stored (or repeats of stored ones)" },
            "rejected": { "type": "integer", "description": "messages refused alone (the reasons are in the audit trail)" } } },
        "SegmentError": { "type": "object", "required": ["code", "message"], "properties": { "code": string, "message": string } },
        "RudderStackWebhook": { "description": "one RudderStack event (Segment's message format) or an array of them",
            "oneOf": [{ "$ref": "#/components/schemas/SegmentMessage" }, { "type": "array", "items": { "$ref": "#/components/schemas/SegmentMessage" } }] },
        "CloudEvent": { "type": "object", "required": ["specversion", "id", "source", "type"],
            "description": "a CloudEvent in the JSON format (structured mode); batched mode is an array of them; binary mode sends the attributes as ce-* headers and the data as the body",
            "properties": { "specversion": { "type": "string", "enum": ["1.0"] }, "id": string, "source": string, "type": string,
                "subject": string, "time": { "type": "string", "format": "date-time" }, "datacontenttype": string, "dataschema": string,
                "data": {}, "data_base64": string, "traceparent": string } },
        "CloudEventsCreated": { "oneOf": [{ "$ref": "#/components/schemas/FrontendCreated" }, { "$ref": "#/components/schemas/FrontendBatchResponse" }] },
        "FrontendHealth": { "type": "object", "required": ["status", "collection", "store", "nats"], "properties": {
            "status": string, "collection": { "type": "string", "enum": ["accepting"] },
            "store": { "type": "string", "enum": ["sqlite", "postgres"] },
            "nats": { "type": "object", "required": ["configured", "connected"], "properties": {
                "configured": { "type": "boolean" }, "connected": { "type": "boolean" } } } } },
    })
}
