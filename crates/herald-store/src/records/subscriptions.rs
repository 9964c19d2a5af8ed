//! Webhook subscriptions as they cross the store contract: the definition a
//! client sets ([`SubscriptionSpec`], validated by the caller and stored as
//! given), the stored subscription with its signing secrets, and the
//! listing's filter and page.

use std::collections::BTreeMap;

use herald_core::{TenantId, Timestamp};
use serde::{Deserialize, Serialize};

/// What a client sets on a subscription (everything but its id, secrets
/// and times). The store keeps it as one JSON document; the API validates
/// every field before it gets here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionSpec {
    /// Unique within the tenant.
    pub subscriber_name: String,
    /// `webhook`, the only type today.
    pub subscriber_type: String,
    /// Exact event types or NATS-style patterns (`order.*`, `order.>`);
    /// empty: every type.
    pub event_types: Vec<String>,
    /// Event sources; empty: every source.
    pub event_sources: Vec<String>,
    /// `category` or `event_category` values; empty: every category.
    pub event_categories: Vec<String>,
    pub callback_url: String,
    /// `{"schedule": [seconds, ...]}`, the waits before each retry.
    pub retry_policy: serde_json::Value,
    /// A CEL expression over the event; `None`: no content filter.
    pub filter: Option<String>,
    /// `none` or `stream`.
    pub ordering: String,
    /// Deliveries per second at most; `None`: no limit.
    pub rate_limit: Option<f64>,
    /// Extra static headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    pub enabled: bool,
    /// How a delivery's body is written: `json` (Herald's envelope) or
    /// `cloudevents` (a structured-mode CloudEvent). Subscriptions stored
    /// before it existed read as `json`.
    #[serde(default = "json_format")]
    pub payload_format: String,
}

fn json_format() -> String {
    "json".into()
}

/// A stored subscription. Its secrets are kept in clear because delivery
/// signs with them (encrypting them at rest is future work).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// `sub_…`, unique across tenants.
    pub subscription_id: String,
    pub tenant_id: TenantId,
    pub spec: SubscriptionSpec,
    /// The current signing secret (`whsec_…`).
    pub secret: String,
    /// The secret before the last rotation, which still signs until
    /// `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Subscription {
    /// The secrets that sign a delivery made at `now`: the current one, and
    /// the previous one while it has not expired.
    pub fn signing_secrets(&self, now: Timestamp) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) =
            (&self.previous_secret, self.previous_secret_expires_at)
            && now.unix_nanos() < until.unix_nanos()
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// Filters and paging of a tenant's subscription listing, in creation
/// order (`sub_…` ids sort by creation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionQuery {
    /// Only enabled (`Some(true)`) or disabled (`Some(false)`) ones; `None`: all.
    pub enabled: Option<bool>,
    pub limit: usize,
    /// Keyset paging: only subscriptions after this id (a page's `next_cursor`).
    pub after: Option<String>,
}

/// One page of a subscription listing.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionPage {
    pub subscriptions: Vec<Subscription>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl SubscriptionPage {
    /// A page from up to `limit + 1` subscriptions in id order.
    pub(crate) fn assemble(mut rows: Vec<Subscription>, limit: usize) -> SubscriptionPage {
        let more = rows.len() > limit;
        rows.truncate(limit);
        SubscriptionPage {
            next_cursor: more
                .then(|| rows.last().map(|s| s.subscription_id.clone()))
                .flatten(),
            subscriptions: rows,
        }
    }
}

/// A secret rotation: the new current secret, and until when the one it
/// replaces still signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRotation {
    pub secret: String,
    pub previous_expires_at: Timestamp,
    pub now: Timestamp,
}
