//! Delivery fan-out: a commit-log follower that turns every stored event
//! into one pending delivery per enabled subscription of its tenant whose
//! selector matches it, and commits those rows with its cursor move (see
//! [`CommitLogProjector`]). Nothing is sent here: the delivery worker
//! works the rows through.
//!
//! A delivery's id is derived from its (subscription, event) pair, so a
//! fan-out repeated after a crash produces the same rows, which the store
//! keeps once. The matching rule ([`matching`]) and the delivery row
//! ([`new_delivery`]) are shared with replays.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use herald_core::{CanonicalEvent, Clock};
use herald_filter::{EventView, Selector};
use herald_store::{
    ConflictReason, CursorMove, NewDelivery, SequencedEvent, Store, StoreError, Subscription,
};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use crate::follower::{CommitLogFollower, CommitLogProjector, Follow};

/// The cursor name of the delivery fan-out.
pub const FAN_OUT_CURSOR: &str = "delivery-fan-out";

/// What the fan-out has done since it was made, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FanOutCounts {
    /// Deliveries stored (a repeat of a batch adds none).
    pub deliveries: u64,
    /// (event, subscription) pairs whose filter failed to evaluate: no match.
    pub filter_errors: u64,
    /// Subscriptions skipped because their stored definition no longer
    /// parses as a selector.
    pub unreadable_subscriptions: u64,
}

/// The fan-out projector: matches each batch against the subscriptions
/// enabled when the batch is read.
#[derive(Debug)]
pub struct FanOut {
    clock: Arc<dyn Clock>,
    counts: FanOutCounts,
    /// Notified after a step that stored deliveries (the delivery worker).
    stored: Option<Arc<Notify>>,
}

impl FanOut {
    /// A fan-out whose deliveries are first due at `clock`'s now.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        FanOut {
            clock,
            counts: FanOutCounts::default(),
            stored: None,
        }
    }

    /// Also notifies `stored` after each step that stored deliveries, so
    /// the delivery worker sends them at once.
    pub fn waking(mut self, stored: Arc<Notify>) -> Self {
        self.stored = Some(stored);
        self
    }

    pub fn counts(&self) -> FanOutCounts {
        self.counts
    }

    /// Each tenant's enabled subscriptions, ready to match.
    async fn subscriptions(
        &mut self,
        store: &Store,
    ) -> Result<HashMap<String, Vec<Target>>, StoreError> {
        let mut by_tenant: HashMap<String, Vec<Target>> = HashMap::new();
        for s in store.enabled_subscriptions().await? {
            let tenant = s.tenant_id.to_string();
            let Some(target) = Target::of(s) else {
                self.counts.unreadable_subscriptions += 1;
                continue;
            };
            by_tenant.entry(tenant).or_default().push(target);
        }
        Ok(by_tenant)
    }
}

/// A subscription ready to match events: its stored definition parsed
/// as a selector once.
#[derive(Debug)]
pub struct Target {
    pub subscription: Subscription,
    selector: Selector,
}

impl Target {
    /// `None` (and a warning) when the stored definition no longer parses
    /// as a selector: such a subscription matches nothing.
    pub fn of(subscription: Subscription) -> Option<Target> {
        let selector = serde_json::to_value(&subscription.spec)
            .ok()
            .and_then(|spec| Selector::from_json(&spec, "").ok());
        match selector {
            Some(selector) => Some(Target {
                subscription,
                selector,
            }),
            None => {
                tracing::warn!(subscription_id = %subscription.subscription_id, "stored subscription does not parse as a selector; skipped");
                None
            }
        }
    }
}

/// A stored event as the canonical event its subscriptions see; `None`
/// (and an error log) when the stored body does not decode.
pub fn decode_stored(stored: &SequencedEvent) -> Option<CanonicalEvent> {
    match herald_core::codec::json::decode(stored.body.as_bytes()) {
        Ok(e) => Some(e),
        Err(e) => {
            tracing::error!(seq = stored.seq, error = %e, "stored event does not decode; not delivered");
            None
        }
    }
}

/// Which of `targets` an event goes to: the one matching rule of the
/// fan-out and of replays (types and patterns, sources, categories, the
/// CEL filter). A filter that fails to evaluate is no match; each such
/// failure adds one to `filter_errors`.
pub fn matching<'t>(
    event: &CanonicalEvent,
    targets: &'t [Target],
    filter_errors: &mut u64,
) -> Vec<&'t Subscription> {
    let view = EventView::new(event);
    let mut matched = Vec::new();
    for target in targets {
        match target.selector.matches(&view) {
            Ok(true) => matched.push(&target.subscription),
            Ok(false) => {}
            Err(e) => {
                *filter_errors += 1;
                tracing::debug!(
                    subscription_id = %target.subscription.subscription_id,
                    event_id = %event.event_id,
                    error = %e,
                    "subscription filter failed to evaluate: no match"
                );
            }
        }
    }
    matched
}

/// One step's projector: the fan-out and the store it reads
/// subscriptions from and commits to.
#[derive(Debug)]
struct FanOutStep<'a> {
    fan_out: &'a mut FanOut,
    store: &'a Store,
}

impl CommitLogProjector for FanOutStep<'_> {
    type Effects = Vec<NewDelivery>;
    type Error = StoreError;

    async fn project(&mut self, events: &[SequencedEvent]) -> Result<Vec<NewDelivery>, StoreError> {
        let subscriptions = self.fan_out.subscriptions(self.store).await?;
        let now = self.fan_out.clock.now();
        let mut rows = Vec::new();
        for stored in events {
            let Some(targets) = subscriptions.get(&stored.tenant_id) else {
                continue;
            };
            let Some(event) = decode_stored(stored) else {
                continue;
            };
            for subscription in matching(&event, targets, &mut self.fan_out.counts.filter_errors) {
                rows.push(new_delivery(stored, &event, subscription, now, None));
            }
        }
        Ok(rows)
    }

    async fn commit(
        &mut self,
        store: &Store,
        cursor: CursorMove,
        effects: Vec<NewDelivery>,
    ) -> Result<(), StoreError> {
        let added = store.fan_out(cursor, effects).await?;
        self.fan_out.counts.deliveries += added as u64;
        Ok(())
    }
}

/// The pending delivery of `stored` to `subscription`, due at `now`; a
/// replay's when `replay_id` is given.
pub fn new_delivery(
    stored: &SequencedEvent,
    event: &CanonicalEvent,
    subscription: &Subscription,
    now: herald_core::Timestamp,
    replay_id: Option<&str>,
) -> NewDelivery {
    let id = delivery_hex(&subscription.subscription_id, stored, replay_id);
    NewDelivery {
        delivery_id: format!("dlv_{id}"),
        tenant_id: subscription.tenant_id.clone(),
        subscription_id: subscription.subscription_id.clone(),
        event_id: stored.event_id,
        seq: stored.seq,
        stream_id: event.stream_id.as_ref().map(|s| s.as_str().to_string()),
        stream_version: event.stream_version.map(|v| v as i64),
        webhook_id: format!("msg_{id}"),
        replay_id: replay_id.map(str::to_string),
        next_attempt_at: now,
        created_at: now,
    }
}

/// A UUIDv7 in hex for the pair (subscription, event), and the replay
/// when there is one: the event id's time and version half, then a hash
/// of the pair (and replay) with the RFC 4122 variant. The same pair
/// always gives the same id, a replay of it another; ids sort by event
/// time.
fn delivery_hex(subscription_id: &str, stored: &SequencedEvent, replay_id: Option<&str>) -> String {
    let mut bytes = *stored.event_id.as_bytes();
    let mut hash = Sha256::new()
        .chain_update(subscription_id.as_bytes())
        .chain_update([0])
        .chain_update(stored.event_id.as_bytes());
    if let Some(replay_id) = replay_id {
        hash = hash.chain_update([0]).chain_update(replay_id.as_bytes());
    }
    let digest = hash.finalize();
    bytes[8..].copy_from_slice(&digest[..8]);
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl FanOut {
    /// One step: fans out up to one batch after `follower`'s cursor.
    pub async fn step(
        &mut self,
        follower: &CommitLogFollower,
        store: &Store,
    ) -> Result<Follow, StoreError> {
        follower
            .step_projecting(&mut FanOutStep {
                fan_out: self,
                store,
            })
            .await
    }

    /// Steps until `stop`, waiting for `wake` or `idle` once caught up.
    /// Losing the cursor to another instance is not an error: the next
    /// step starts from where that one left it.
    pub async fn run(
        mut self,
        follower: CommitLogFollower,
        store: Store,
        wake: Arc<Notify>,
        idle: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            if *stop.borrow() {
                return;
            }
            let before = self.counts.deliveries;
            let step = self.step(&follower, &store).await;
            if self.counts.deliveries > before
                && let Some(stored) = &self.stored
            {
                stored.notify_one();
            }
            match step {
                Ok(Follow::Handled { .. }) => continue,
                Ok(Follow::Caught) => {}
                Err(StoreError::Closed) => return,
                Err(StoreError::Conflict(ConflictReason::CursorMoved { .. })) => {
                    tracing::debug!("another instance fanned this batch out; following on");
                    continue;
                }
                Err(e) => tracing::warn!(error = %e, "delivery fan-out step failed; retrying"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
