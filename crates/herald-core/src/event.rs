//! The canonical event: the one shape every ingest request maps into and
//! every later part of Herald (store, query, stories, delivery) reads. Wire
//! names are snake_case; JSON and protobuf both round-trip it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{
    Category, EventCategory, EventId, EventSource, EventStatus, EventType, OutcomeStatus, StreamId,
    TenantId,
};
use crate::timestamp::Timestamp;

/// A JSON object of keys beyond the named ones.
pub type Extra = Map<String, Value>;

/// Who did it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Keyed per-tenant hash of the actor's email; the email itself is never
    /// stored (Property 15: Sensitive Data Handling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
    /// Further keys, flattened into the same JSON object on the wire.
    #[serde(flatten)]
    pub extra: Extra,
}

/// What it was done to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Object {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    /// Further keys, flattened into the same JSON object on the wire.
    #[serde(flatten)]
    pub extra: Extra,
}

/// How it links to other events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correlation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_event_id: Option<String>,
}

/// What happened as a result (Property 8: Outcome Classification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outcome {
    pub status: OutcomeStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            status: OutcomeStatus::Success,
            error_class: None,
            error_code: None,
            message: None,
        }
    }
}

/// A link to the code change behind an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Github {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
}

/// Supporting material: commits, raw payload pointers, traces, logs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<Github>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_references: Vec<String>,
}

/// Where it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referer: Option<String>,
    /// Further keys, flattened into the same JSON object on the wire.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Default `context.environment`.
pub const DEFAULT_ENVIRONMENT: &str = "production";

impl Default for Context {
    fn default() -> Self {
        Context {
            environment: DEFAULT_ENVIRONMENT.to_string(),
            service: None,
            endpoint: None,
            version: None,
            ip: None,
            user_agent: None,
            referer: None,
            extra: Extra::new(),
        }
    }
}

/// The event as Herald stores, queries and delivers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanonicalEvent {
    pub event_id: EventId,
    pub tenant_id: TenantId,
    pub event_type: EventType,
    pub category: Category,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_category: Option<EventCategory>,
    pub event_source: EventSource,
    /// When it happened, exactly as sent (or receive time when absent).
    pub timestamp: Timestamp,
    /// When Herald accepted it.
    pub processing_timestamp: Timestamp,
    #[serde(default)]
    pub actor: Actor,
    #[serde(default)]
    pub object: Object,
    #[serde(default)]
    pub correlation: Correlation,
    #[serde(default)]
    pub outcome: Outcome,
    #[serde(default)]
    pub evidence: Evidence,
    #[serde(default)]
    pub context: Context,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub metadata: Extra,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<StreamId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The event-definition version the event was checked against: the one
    /// the sender pinned, or the latest when a stored definition applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<u32>,
    /// Processing lifecycle. Deliberately the last field: stored JSON ends
    /// with `,"status":"…"}`, so a reader can swap in the current status
    /// without decoding the whole event.
    pub status: EventStatus,
}

impl CanonicalEvent {
    /// The create request's flat `user_id`, which lives at `actor.user_id`
    /// here.
    pub fn user_id(&self) -> Option<&str> {
        self.actor.user_id.as_deref()
    }
}
