//! Workflow waits as they cross the store contract: a wait's definition
//! (alternatives of type pattern and CEL filter, the waiting workflow's
//! context, its callback), its end (resolved, timed out or cancelled,
//! exactly one), and its callback outbox state.

use herald_core::{EventId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Where a wait is: open until exactly one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitStatus {
    Open,
    Resolved,
    TimedOut,
    Cancelled,
}

impl WaitStatus {
    pub const ALL: [WaitStatus; 4] = [
        WaitStatus::Open,
        WaitStatus::Resolved,
        WaitStatus::TimedOut,
        WaitStatus::Cancelled,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            WaitStatus::Open => "open",
            WaitStatus::Resolved => "resolved",
            WaitStatus::TimedOut => "timed_out",
            WaitStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for WaitStatus {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        WaitStatus::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| StoreError::corrupt(format!("wait status `{s}`")))
    }
}

/// One way a wait can be satisfied: an event type (exact or NATS-style
/// pattern) and an optional CEL filter over `event` and `wait`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitAlternative {
    pub event_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

/// What a wait waits for, stored as one JSON document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitSpec {
    /// Tried in order; the first that matches an event resolves the wait.
    pub any_of: Vec<WaitAlternative>,
    /// The waiting workflow's own data, readable by filters as `wait.context`.
    pub context: serde_json::Value,
    /// How long before its creation an event may have been stored and
    /// still resolve it, in seconds.
    pub lookback_secs: u64,
}

/// A wait to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWait {
    pub wait_id: String,
    pub tenant_id: TenantId,
    pub workflow_instance_id: String,
    pub spec: WaitSpec,
    pub timeout_at: Timestamp,
    pub callback_url: Option<String>,
    /// Signs the callback; set exactly when `callback_url` is.
    pub webhook_secret: Option<String>,
    pub created_at: Timestamp,
}

/// Where a wait's callback is: `pending` (due at `next_at`), `in_flight`
/// (claimed), `delivered`, or `failed` (the retry schedule ran out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitCallback {
    pub state: String,
    pub attempts: i64,
    pub next_at: Option<Timestamp>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// A stored wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub wait_id: String,
    pub tenant_id: TenantId,
    pub workflow_instance_id: String,
    pub spec: WaitSpec,
    pub status: WaitStatus,
    pub created_at: Timestamp,
    pub timeout_at: Timestamp,
    /// The last `seq` committed when the wait was stored: later events are
    /// matched as they come, earlier ones only by the lookback.
    pub created_seq: i64,
    pub ended_at: Option<Timestamp>,
    /// The event that resolved it, and that event as stored (JSON).
    pub event_id: Option<EventId>,
    pub event: Option<String>,
    pub callback_url: Option<String>,
    pub webhook_secret: Option<String>,
    /// `None` without a callback URL or while the wait is open.
    pub callback: Option<WaitCallback>,
}

/// One wait resolved by one event, compare-and-set on its being open.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitResolution {
    pub wait_id: String,
    pub event_id: EventId,
    /// The event as stored (canonical JSON).
    pub event: String,
    pub at: Timestamp,
}

/// A page of one tenant's waits, filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitQuery {
    pub status: Option<WaitStatus>,
    pub workflow_instance_id: Option<String>,
    /// Waits with an alternative of exactly this type or pattern.
    pub event_type: Option<String>,
    pub limit: usize,
    /// The last wait id of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitPage {
    pub waits: Vec<Wait>,
    pub next_cursor: Option<String>,
}

/// What one callback attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitCallbackOutcome {
    Delivered,
    RetryAt(Timestamp),
    /// The schedule is exhausted (or the endpoint is gone): given up.
    Failed,
}

/// One callback attempt's record: what the endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitCallbackAttempt {
    /// The claim's token (the attempt count it made).
    pub token: i64,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub outcome: WaitCallbackOutcome,
}

/// How cancelling one wait went.
#[derive(Debug, Clone, PartialEq)]
pub enum CancelOutcome {
    /// It was open and is now cancelled.
    Cancelled(Wait),
    /// It had already ended (its end is kept).
    Ended(Wait),
    NotFound,
}
