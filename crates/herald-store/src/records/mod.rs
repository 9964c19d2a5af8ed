//! The values that cross the store contract: tenants, keys, appends and
//! their outcomes, queries and pages, audit records, cursor moves, tenant
//! settings, webhook subscriptions (`subscriptions.rs`), their deliveries
//! (`deliveries.rs`), dead letters (`dead_letters.rs`), replays
//! (`replays.rs`) and workflow waits (`waits.rs`); event definitions cross it as
//! `herald_registry::EventDefinition`.

use herald_core::filter::EventFilter;
use herald_core::{
    CanonicalEvent, EventId, EventStatus, ExpectedVersion, TenantId, Timestamp, ValidationMode,
};
use serde::{Deserialize, Serialize};

pub use crate::error::{BoxError, ConflictReason, StoreError, error_chain};

mod subscriptions;
pub use subscriptions::*;
mod waits;
pub use waits::*;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub tenant_id: TenantId,
    pub name: String,
    pub created_at: Timestamp,
}

/// What a key may do: `ingest`, `read`, `manage`, `collect` (browser
/// collection only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    Ingest,
    Read,
    Manage,
    Collect,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Manage, Scope::Collect];

    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Manage => "manage",
            Scope::Collect => "collect",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A tenant API key as stored: only the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key_id: String,
    pub tenant_id: TenantId,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub secret_hash: [u8; 32],
    pub created_at: Timestamp,
    /// How a write key (a `collect` key) may be used from browsers and by
    /// webhooks.
    pub collect: KeyCollect,
}

/// A write key's collection settings, stored with the key as one JSON
/// document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCollect {
    /// The `Origin`s a browser may send with this key (`["*"]`: any);
    /// `None`: none, so a request carrying an `Origin` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
    /// When set, webhooks sent with this key must carry an HMAC-SHA256
    /// signature of their body made with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

/// One event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event: CanonicalEvent,
    /// Optimistic concurrency on `event.stream_id`: the version the stream
    /// must be at, else a conflict (409).
    pub expected_version: ExpectedVersion,
}

/// What happened to one appended event.
#[derive(Debug, Clone, PartialEq)]
pub enum AppendOutcome {
    /// Stored now (with its stream version assigned, if any).
    Stored(CanonicalEvent),
    /// Its idempotency key was already stored for the tenant: this is the
    /// first event, and nothing new was stored.
    Duplicate(StoredEvent),
    /// `expected_version` did not match the stream's current version.
    VersionConflict {
        stream_id: String,
        expected: ExpectedVersion,
        actual: u64,
    },
}

/// An event read back, with processing facts that are not part of the
/// canonical event itself.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub event: CanonicalEvent,
    pub processed_at: Option<Timestamp>,
    pub processing_ms: Option<f64>,
}

/// Which claim of an event a claimer holds. Every claim of an event gets a
/// new token (PostgreSQL and SQLite: its `attempts` count after the claim),
/// so a claimer whose lease ran out and whose event was claimed again can
/// no longer finish it: only the newest claim's token matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimToken(i64);

impl ClaimToken {
    pub(crate) fn new(attempt: i64) -> ClaimToken {
        ClaimToken(attempt)
    }

    pub(crate) fn get(self) -> i64 {
        self.0
    }
}

/// An event claimed for processing, with the token its finish must carry.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedEvent {
    pub event: CanonicalEvent,
    pub claim: ClaimToken,
    /// The event's commit `seq`.
    pub seq: i64,
}

/// How processing of one claimed event ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingResult {
    pub event_id: EventId,
    /// The claim this result finishes (from [`ClaimedEvent::claim`]).
    pub claim: ClaimToken,
    pub status: EventStatus,
    pub duration_ms: f64,
    pub finished_at: Timestamp,
}

/// Sort order by event timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    Asc,
    #[default]
    Desc,
}

/// An event query: which events (the one filter language,
/// [`EventFilter`]), in which order, which page of them, and whether to
/// count them all.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    pub filter: EventFilter,
    pub order: Order,
    /// 1..=1000.
    pub limit: usize,
    pub offset: usize,
    /// Keyset position from a previous page's `next_cursor`.
    pub cursor: Option<Cursor>,
    /// Count every match for `total`, however many. Otherwise counting stops
    /// at [`TOTAL_CAP`] (like Elasticsearch's `track_total_hits`), which
    /// keeps broad queries on large stores fast.
    pub exact_total: bool,
}

impl EventQuery {
    /// A page's size unless one is asked for.
    pub const DEFAULT_LIMIT: usize = 100;

    /// The first page of `filter`'s events, newest first, with the default
    /// page size and a capped total.
    pub fn new(filter: EventFilter) -> EventQuery {
        EventQuery {
            filter,
            order: Order::default(),
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
            cursor: None,
            exact_total: false,
        }
    }
}

impl Default for EventQuery {
    /// Every event of the tenant, as [`EventQuery::new`] pages it.
    fn default() -> Self {
        EventQuery::new(EventFilter::default())
    }
}

/// Where `total` stops counting unless `exact_total` is asked for.
pub const TOTAL_CAP: u64 = 10_000;

/// A keyset position: the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub ts_micros: i64,
    pub seq: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("c1.{}.{}", self.ts_micros, self.seq)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let mut parts = s.strip_prefix("c1.")?.splitn(2, '.');
        Some(Cursor {
            ts_micros: parts.next()?.parse().ok()?,
            seq: parts.next()?.parse().ok()?,
        })
    }
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub events: Vec<T>,
    /// How many events match the filters in all (ignoring paging), up to
    /// [`TOTAL_CAP`] unless the query asked for an exact total.
    pub total: u64,
    /// `false` when `total` is the cap and more events match.
    pub total_exact: bool,
    pub has_more: bool,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// A page from its rows and what the count query said (`counted` is
    /// capped at `TOTAL_CAP + 1` unless the total was asked to be exact).
    pub(crate) fn assemble(
        events: Vec<T>,
        counted: u64,
        exact_total: bool,
        has_more: bool,
        last: Option<Cursor>,
    ) -> Page<T> {
        let total_exact = exact_total || counted <= TOTAL_CAP;
        Page {
            events,
            total: if total_exact { counted } else { TOTAL_CAP },
            total_exact,
            has_more,
            next_cursor: if has_more {
                last.map(|c| c.encode())
            } else {
                None
            },
        }
    }
}

/// A page of decoded events.
pub type EventPage = Page<StoredEvent>;

/// An event as stored, not decoded: its canonical JSON (whose `status` is
/// the one it was stored with, always the last field) and the columns that
/// change after storing. For answering queries without a decode/encode
/// round trip per row.
#[derive(Debug, Clone, PartialEq)]
pub struct EventJson {
    pub body: String,
    pub status: EventStatus,
    pub user_id: Option<String>,
    pub processed_at: Option<String>,
    pub processing_ms: Option<f64>,
}

/// One request, as the audit trail keeps it (Property 12: Audit Trail Creation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: Timestamp,
    /// `None` for operator (root key) and unauthenticated requests.
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub operation: String,
    pub resource: String,
    pub outcome: AuditOutcome,
    pub status_code: u16,
    pub request_id: String,
    pub duration_us: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A stored event as the publisher reads it, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub struct SequencedEvent {
    /// Commit order: a later commit never has a smaller `seq`.
    pub seq: i64,
    pub event_id: EventId,
    pub tenant_id: String,
    pub category: String,
    pub event_type: String,
    /// The canonical JSON as stored.
    pub body: String,
    /// Its stream and version, if it has one.
    pub stream: Option<(String, u64)>,
}

/// A lifecycle notification (`event.processed.success`,
/// `delivery.exhausted`, ...) kept until it is published.
#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleRecord {
    pub tenant_id: String,
    /// The event it is about; `None` for a notice about no one event (a
    /// subscription turned off, a replay started).
    pub event_id: Option<EventId>,
    pub kind: LifecycleKind,
    /// The message body (JSON).
    pub payload: String,
}

impl LifecycleRecord {
    /// The notification that processing of an event ended:
    /// `event.processed.success`, or `event.processed.failed`.
    pub fn processed(
        tenant_id: &str,
        event_id: EventId,
        category: &str,
        event_type: &str,
        status: EventStatus,
        duration_ms: f64,
        at: Timestamp,
    ) -> LifecycleRecord {
        let kind = match status {
            EventStatus::Failed => LifecycleKind::ProcessedFailed,
            _ => LifecycleKind::ProcessedSuccess,
        };
        LifecycleRecord {
            tenant_id: tenant_id.to_string(),
            event_id: Some(event_id),
            kind,
            payload: serde_json::json!({
                "type": kind.as_str(),
                "event_id": event_id,
                "tenant_id": tenant_id,
                "category": category,
                "event_type": event_type,
                "status": status.as_str(),
                "duration_ms": duration_ms,
                "at": at.to_string(),
            })
            .to_string(),
        }
    }
}

/// A lifecycle record waiting in the outbox, with its outbox id.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingLifecycle {
    pub id: i64,
    pub record: LifecycleRecord,
}

/// A tenant's settings (`GET/PUT /api/v1/settings`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantSettings {
    /// `permissive` (default): unknown event types are accepted; `strict`:
    /// refused.
    #[serde(default)]
    pub validation_mode: ValidationMode,
    /// When they were last changed; `None` while they are the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

/// Filters for `GET /api/v1/audit`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    pub tenant_id: Option<String>,
    pub key_id: Option<String>,
    pub operation: Option<String>,
    pub outcome: Option<AuditOutcome>,
    pub start_time: Option<Timestamp>,
    pub end_time: Option<Timestamp>,
    pub limit: usize,
    /// Keyset paging: only records older than this one (a page's
    /// `next_cursor`).
    pub before: Option<i64>,
}

/// One page of the audit trail, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    pub records: Vec<AuditRecord>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

impl AuditPage {
    /// A page from up to `limit + 1` rows `(seq, record)`, newest first.
    pub(crate) fn assemble(mut rows: Vec<(i64, AuditRecord)>, limit: usize) -> AuditPage {
        let more = rows.len() > limit;
        rows.truncate(limit);
        AuditPage {
            next_cursor: more.then(|| rows.last().map(|(seq, _)| *seq)).flatten(),
            records: rows.into_iter().map(|(_, r)| r).collect(),
        }
    }
}

/// Declares a closed set of names stored and sent as text: `as_str`,
/// `ALL`, and a `FromStr` whose error lists the allowed values.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, UnknownName> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        given: s.to_string(),
                        allowed: $name::ALL.iter().map(|v| v.as_str()).collect(),
                    })
            }
        }
    };
}

// After the macro: deliveries declare their state with it.
mod deliveries;
pub use deliveries::*;
mod dead_letters;
pub use dead_letters::*;
mod replays;
pub use replays::*;
mod lifecycle;
pub use lifecycle::*;
mod processors;
pub use processors::*;
mod stories;
pub use stories::*;

/// A name outside a closed set, with the names it could have been.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}`: expected one of {}", allowed.join(", "))]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub allowed: Vec<&'static str>,
}

text_enum!(
    /// How a request ended, as the audit trail records it.
    AuditOutcome, "audit outcome" {
        Success = "success",
        /// Authentication or authorisation refused it (401, 403).
        Denied = "denied",
        /// Any other client error (4xx).
        Rejected = "rejected",
        /// A server error (5xx).
        Error = "error",
        /// A request that tried to act for another tenant.
        SecurityViolation = "security_violation",
    }
);

text_enum!(
    /// The kind of a lifecycle notification, which is also its subject's tail.
    LifecycleKind, "lifecycle kind" {
        Stored = "event.stored",
        ProcessedSuccess = "event.processed.success",
        ProcessedFailed = "event.processed.failed",
        /// A delivery became a dead letter.
        DeliveryExhausted = "delivery.exhausted",
        /// A subscription was turned off by delivery (410 Gone, or failing
        /// for too long).
        SubscriptionDisabled = "subscription.disabled",
        ReplayStarted = "event.replay.started",
        ReplayCompleted = "event.replay.completed",
    }
);

/// A compare-and-set move of a named durable cursor over the commit order:
/// it applies only while the cursor is still at `from`, and only forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorMove {
    pub name: String,
    pub from: i64,
    pub to: i64,
}

impl CursorMove {
    /// `Invalid` for a move backwards.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        if self.to < self.from {
            return Err(StoreError::invalid(format!(
                "cursor {} cannot move back from {} to {}",
                self.name, self.from, self.to
            )));
        }
        Ok(())
    }

    /// The error for a cursor found at `actual` instead of `from`.
    pub(crate) fn moved(&self, actual: i64) -> StoreError {
        StoreError::Conflict(ConflictReason::CursorMoved {
            name: self.name.clone(),
            expected: self.from,
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_enums_round_trip_and_an_unknown_name_lists_the_allowed_ones() {
        for o in AuditOutcome::ALL {
            assert_eq!(o.as_str().parse::<AuditOutcome>(), Ok(*o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        for k in LifecycleKind::ALL {
            assert_eq!(k.as_str().parse::<LifecycleKind>(), Ok(*k));
        }
        let e = "bogus".parse::<AuditOutcome>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown audit outcome `bogus`: expected one of success, denied, rejected, error, security_violation"
        );
    }
}
