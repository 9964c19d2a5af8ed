//! Correlation keys: which identifiers link an event to others. Trace context
//! comes first; events without it still correlate through business keys
//! (order, session, user, ...): Property 10, Fallback Correlation Support.
//! The store indexes exactly these keys.

use serde::{Deserialize, Serialize};
use time::Duration;

use crate::event::CanonicalEvent;
use crate::timestamp::Timestamp;

/// Every identifier a story can be keyed on, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationKey {
    TraceId,
    SpanId,
    CorrelationId,
    RequestId,
    OrderId,
    SessionId,
    TicketId,
    UserId,
    EmailHash,
}

impl CorrelationKey {
    pub const ALL: [CorrelationKey; 9] = [
        CorrelationKey::TraceId,
        CorrelationKey::SpanId,
        CorrelationKey::CorrelationId,
        CorrelationKey::RequestId,
        CorrelationKey::OrderId,
        CorrelationKey::SessionId,
        CorrelationKey::TicketId,
        CorrelationKey::UserId,
        CorrelationKey::EmailHash,
    ];

    /// The keys a story is keyed on and walks through: every key but
    /// `span_id`, which names one operation, not a flow (the events of a
    /// span share its trace).
    pub const STORY: [CorrelationKey; 8] = [
        CorrelationKey::TraceId,
        CorrelationKey::CorrelationId,
        CorrelationKey::RequestId,
        CorrelationKey::OrderId,
        CorrelationKey::SessionId,
        CorrelationKey::TicketId,
        CorrelationKey::UserId,
        CorrelationKey::EmailHash,
    ];

    /// Keys naming a person or a visit rather than one flow: a user, a
    /// session or an email spans everything that person ever did, so a
    /// story starts from one but does not walk through one it meets
    /// unless asked to.
    pub const fn is_identity(self) -> bool {
        matches!(
            self,
            CorrelationKey::SessionId | CorrelationKey::UserId | CorrelationKey::EmailHash
        )
    }

    /// Keys that come from tracing rather than the business.
    pub const fn is_trace_context(self) -> bool {
        matches!(self, CorrelationKey::TraceId | CorrelationKey::SpanId)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            CorrelationKey::TraceId => "trace_id",
            CorrelationKey::SpanId => "span_id",
            CorrelationKey::CorrelationId => "correlation_id",
            CorrelationKey::RequestId => "request_id",
            CorrelationKey::OrderId => "order_id",
            CorrelationKey::SessionId => "session_id",
            CorrelationKey::TicketId => "ticket_id",
            CorrelationKey::UserId => "user_id",
            CorrelationKey::EmailHash => "email_hash",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// This key's value in `event`, if it has one.
    pub fn value_in(self, e: &CanonicalEvent) -> Option<&str> {
        match self {
            CorrelationKey::TraceId => e.correlation.trace_id.as_deref(),
            CorrelationKey::SpanId => e.correlation.span_id.as_deref(),
            CorrelationKey::CorrelationId => e.correlation.correlation_id.as_deref(),
            CorrelationKey::RequestId => e.object.request_id.as_deref(),
            CorrelationKey::OrderId => e.object.order_id.as_deref(),
            CorrelationKey::SessionId => e.object.session_id.as_deref(),
            CorrelationKey::TicketId => e.object.ticket_id.as_deref(),
            CorrelationKey::UserId => e.actor.user_id.as_deref(),
            CorrelationKey::EmailHash => e.actor.email_hash.as_deref(),
        }
        .filter(|v| !v.is_empty())
    }
}

/// Every correlation key `event` carries, strongest first.
pub fn keys(event: &CanonicalEvent) -> Vec<(CorrelationKey, &str)> {
    CorrelationKey::ALL
        .into_iter()
        .filter_map(|k| k.value_in(event).map(|v| (k, v)))
        .collect()
}

/// Whether the event carries trace context.
pub fn has_trace_context(event: &CanonicalEvent) -> bool {
    CorrelationKey::TraceId.value_in(event).is_some()
}

/// What links an event to others: its primary keys (trace, request, order,
/// session), its secondary ones, the time window to look for them in, and
/// the key a story starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelationData {
    pub primary: Primary,
    pub secondary: Secondary,
    pub temporal: Temporal,
    /// The key stories should start from: the trace when there is one,
    /// else the strongest business key (property 10's fallback).
    pub anchor: Option<(CorrelationKey, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Primary {
    pub trace_id: Option<String>,
    pub request_id: Option<String>,
    pub order_id: Option<String>,
    pub session_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secondary {
    pub user_id: Option<String>,
    pub email_hash: Option<String>,
    pub service_name: Option<String>,
}

/// The window around the event in which related events are looked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Temporal {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// An event's correlation data, with a symmetric time window around its
/// timestamp.
pub fn extract(event: &CanonicalEvent, window: Duration) -> CorrelationData {
    let t = event.timestamp.as_offset_date_time();
    let clamp = |r: Option<time::OffsetDateTime>| r.map(Timestamp::from).unwrap_or(event.timestamp);
    CorrelationData {
        primary: Primary {
            trace_id: event.correlation.trace_id.clone(),
            request_id: event.object.request_id.clone(),
            order_id: event.object.order_id.clone(),
            session_id: event.object.session_id.clone(),
        },
        secondary: Secondary {
            user_id: event.actor.user_id.clone(),
            email_hash: event.actor.email_hash.clone(),
            service_name: event.actor.service_name.clone(),
        },
        temporal: Temporal {
            start: clamp(t.checked_sub(window)),
            end: clamp(t.checked_add(window)),
        },
        anchor: keys(event)
            .into_iter()
            .find(|(k, _)| *k != CorrelationKey::SpanId)
            .map(|(k, v)| (k, v.to_string())),
    }
}

/// The strongest key two events share, if any: the link a story follows.
pub fn shared_key(a: &CanonicalEvent, b: &CanonicalEvent) -> Option<(CorrelationKey, String)> {
    // Span ids identify one operation, not a flow: never link on them alone.
    CorrelationKey::ALL
        .into_iter()
        .filter(|k| *k != CorrelationKey::SpanId)
        .find_map(|k| match (k.value_in(a), k.value_in(b)) {
            (Some(x), Some(y)) if x == y => Some((k, x.to_string())),
            _ => None,
        })
}
