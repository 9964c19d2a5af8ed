//! Webhook deliveries as they cross the store contract: one row per
//! (subscription, matching event), written by the fan-out with its cursor
//! move and worked through by the delivery worker.

use herald_core::{EventId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::UnknownName;

text_enum!(
    /// Where a delivery is in its life.
    DeliveryState, "delivery state" {
        /// Waiting for `next_attempt_at`.
        Pending = "pending",
        /// Claimed by a worker until `lease_until`.
        InFlight = "in_flight",
        /// The receiver accepted it.
        Delivered = "delivered",
        /// Given up on: retries exhausted or a permanent refusal.
        Dead = "dead",
    }
);

/// A delivery the fan-out creates: the event that matched, the
/// subscription it matched, and when the first attempt is due.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// `dlv_…`.
    pub delivery_id: String,
    pub tenant_id: TenantId,
    pub subscription_id: String,
    pub event_id: EventId,
    /// The event's commit `seq`.
    pub seq: i64,
    /// The event's stream and version, for per-stream ordering.
    pub stream_id: Option<String>,
    pub stream_version: Option<i64>,
    /// `msg_…`, the `webhook-id` a receiver sees on every attempt of this
    /// delivery.
    pub webhook_id: String,
    /// Set on a delivery a replay created; `None` for the fan-out's own.
    pub replay_id: Option<String>,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
}

/// A stored delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub delivery_id: String,
    pub tenant_id: TenantId,
    pub subscription_id: String,
    pub event_id: EventId,
    pub seq: i64,
    pub stream_id: Option<String>,
    pub stream_version: Option<i64>,
    pub webhook_id: String,
    pub replay_id: Option<String>,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    /// Until when a worker's claim holds (`in_flight` only).
    pub lease_until: Option<Timestamp>,
    /// The HTTP status of the last attempt, if it got one.
    pub last_status: Option<i64>,
    /// How the last attempt failed (`timeout`, `server_error`, …).
    pub last_error_class: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// `attempts` when the delivery was last redriven (0 before): the
    /// retry schedule counts from here, attempt numbers go on from here.
    pub attempt_base: i64,
}

/// One page of a subscription's deliveries, in id (creation) order.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPage {
    pub deliveries: Vec<Delivery>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl DeliveryPage {
    /// A page from up to `limit + 1` deliveries in id order.
    pub(crate) fn assemble(mut rows: Vec<Delivery>, limit: usize) -> DeliveryPage {
        let more = rows.len() > limit;
        rows.truncate(limit);
        DeliveryPage {
            next_cursor: more
                .then(|| rows.last().map(|d| d.delivery_id.clone()))
                .flatten(),
            deliveries: rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_states_round_trip_and_an_unknown_one_is_named() {
        for s in DeliveryState::ALL {
            assert_eq!(s.as_str().parse::<DeliveryState>(), Ok(*s));
        }
        let e = "sent".parse::<DeliveryState>().unwrap_err();
        assert_eq!(e.given, "sent");
        assert!(e.allowed.contains(&"in_flight"), "{e}");
    }
}

/// What one attempt at a delivery comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// The receiver accepted it.
    Delivered,
    /// Pending again, due at this time.
    RetryAt(Timestamp),
    /// Given up on.
    Dead,
    /// The receiver said it is gone for good: the delivery is dead and
    /// its subscription disabled.
    DisableSubscription,
}

/// What finishing an attempt does beyond the delivery itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FinishOptions {
    /// Also queue the lifecycle notices the finish causes
    /// (`delivery.exhausted`, `subscription.disabled`) in the outbox the
    /// NATS publisher drains: only when a publisher runs, or nothing would
    /// ever drain it. The audit trail gets them either way.
    pub publish_lifecycle: bool,
    /// Turn the subscription off (`subscription.disabled`, reason
    /// `failing_too_long`) once its deliveries have failed without a
    /// success for this long; `None`: never.
    pub disable_after_failing: Option<std::time::Duration>,
}

/// One attempt at a delivery as it is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    /// The attempt's number, 1 for the first (the claim's token).
    pub attempt: i64,
    /// When it was sent.
    pub at: Timestamp,
    /// The HTTP status, if a response came.
    pub status: Option<i64>,
    pub duration_ms: i64,
    /// How it failed (`timeout`, `server_error`, …); `None` on success.
    pub error_class: Option<String>,
    /// The start of the response body, capped by the worker.
    pub response_snippet: Option<String>,
    /// When the next attempt is due, if there is one.
    pub next_attempt_at: Option<Timestamp>,
}
