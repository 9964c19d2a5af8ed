//! Lifecycle notices about delivery and replay (`delivery.exhausted`,
//! `subscription.disabled`, `event.replay.started`, `event.replay.completed`):
//! their payloads, and the audit record each one also leaves. Unlike an
//! event's `event.processed.*`, these are things an operator looks for
//! later, so they go to the audit trail whether or not NATS is configured.

use herald_core::{EventId, Timestamp};
use serde_json::{Value, json};

use super::{AuditOutcome, AuditRecord, LifecycleKind, LifecycleRecord, Replay};

/// Why delivery turned a subscription off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableReason {
    /// The endpoint answered 410 Gone.
    Gone,
    /// Every attempt failed for longer than the configured limit.
    FailingTooLong,
}

impl DisableReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DisableReason::Gone => "gone",
            DisableReason::FailingTooLong => "failing_too_long",
        }
    }
}

/// What a dead letter's notice says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExhaustedDelivery<'a> {
    pub tenant_id: &'a str,
    pub delivery_id: &'a str,
    pub event_id: EventId,
    pub subscription_id: &'a str,
    pub replay_id: Option<&'a str>,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error_class: Option<&'a str>,
}

impl LifecycleRecord {
    /// `delivery.exhausted`: a delivery became a dead letter.
    pub fn delivery_exhausted(d: &ExhaustedDelivery<'_>, at: Timestamp) -> LifecycleRecord {
        let kind = LifecycleKind::DeliveryExhausted;
        LifecycleRecord {
            tenant_id: d.tenant_id.to_string(),
            event_id: Some(d.event_id),
            kind,
            payload: json!({
                "type": kind.as_str(),
                "tenant_id": d.tenant_id,
                "delivery_id": d.delivery_id,
                "event_id": d.event_id,
                "subscription_id": d.subscription_id,
                "replay_id": d.replay_id,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error_class": d.last_error_class,
                "at": at.to_string(),
            })
            .to_string(),
        }
    }

    /// `subscription.disabled`: delivery turned a subscription off;
    /// `failing_since` is when its unbroken run of failures began.
    pub fn subscription_disabled(
        tenant_id: &str,
        subscription_id: &str,
        reason: DisableReason,
        failing_since: Option<Timestamp>,
        at: Timestamp,
    ) -> LifecycleRecord {
        let kind = LifecycleKind::SubscriptionDisabled;
        LifecycleRecord {
            tenant_id: tenant_id.to_string(),
            event_id: None,
            kind,
            payload: json!({
                "type": kind.as_str(),
                "tenant_id": tenant_id,
                "subscription_id": subscription_id,
                "reason": reason.as_str(),
                "failing_since": failing_since.map(|t| t.to_string()),
                "at": at.to_string(),
            })
            .to_string(),
        }
    }

    /// `event.replay.started` or `event.replay.completed` (`kind`): where
    /// `replay` stands.
    pub fn replay(kind: LifecycleKind, replay: &Replay, at: Timestamp) -> LifecycleRecord {
        LifecycleRecord {
            tenant_id: replay.tenant_id.to_string(),
            event_id: None,
            kind,
            payload: json!({
                "type": kind.as_str(),
                "tenant_id": replay.tenant_id.as_str(),
                "replay_id": replay.replay_id,
                "state": replay.state.as_str(),
                "dry_run": replay.dry_run,
                "target_subscriptions": replay.targets,
                "events_scanned": replay.progress.events_scanned,
                "events_matched": replay.progress.events_matched,
                "deliveries_created": replay.progress.deliveries_created,
                "error": replay.error,
                "at": at.to_string(),
            })
            .to_string(),
        }
    }

    /// The audit record of this notice at `at`: the operation is its kind,
    /// the resource the API path of what it is about, the detail its
    /// payload. No key acted, so none is named.
    pub fn audit_record(&self, at: Timestamp) -> AuditRecord {
        let payload: Value = serde_json::from_str(&self.payload).unwrap_or(Value::Null);
        let field = |name: &str| payload[name].as_str().unwrap_or("").to_string();
        let resource = match self.kind {
            LifecycleKind::DeliveryExhausted => format!("/api/v1/dlq/{}", field("delivery_id")),
            LifecycleKind::SubscriptionDisabled => {
                format!("/api/v1/events/subscriptions/{}", field("subscription_id"))
            }
            LifecycleKind::ReplayStarted | LifecycleKind::ReplayCompleted => {
                format!("/api/v1/events/replay/{}", field("replay_id"))
            }
            _ => format!(
                "/api/v1/events/{}",
                self.event_id.map(|e| e.to_string()).unwrap_or_default()
            ),
        };
        AuditRecord {
            at,
            tenant_id: Some(self.tenant_id.clone()),
            key_id: None,
            operation: self.kind.as_str().to_string(),
            resource,
            outcome: AuditOutcome::Success,
            status_code: 0,
            request_id: String::new(),
            duration_us: 0,
            detail: Some(self.payload.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_audits_as_its_kind_on_the_resource_it_is_about() {
        let at = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
        let off =
            LifecycleRecord::subscription_disabled("acme", "sub_1", DisableReason::Gone, None, at);
        let audit = off.audit_record(at);
        assert_eq!(audit.operation, "subscription.disabled");
        assert_eq!(audit.resource, "/api/v1/events/subscriptions/sub_1");
        assert_eq!(audit.tenant_id.as_deref(), Some("acme"));
        let detail: Value = serde_json::from_str(audit.detail.as_deref().unwrap()).unwrap();
        assert_eq!(detail["reason"], "gone");
    }
}
