//! Webhook deliveries: the durable outbox between the fan-out and the
//! delivery worker. The fan-out writes one row per (subscription, matching
//! event) together with its cursor move, so a batch is either fanned out
//! and passed or neither; a repeat of a fan-out adds nothing because a
//! subscription holds at most one non-replay delivery per event.

use herald_core::{EventId, TenantId, Timestamp};

use crate::rows::RowAccess;
use crate::{
    CursorMove, Delivery, DeliveryAttempt, DeliveryOutcome, DeliveryPage, DeliveryState,
    DisableReason, ExhaustedDelivery, FinishOptions, LifecycleRecord, NewDelivery, Store,
    StoreError, Subscription,
};

impl Store {
    /// Stores `rows` (those a subscription already has for their event are
    /// left alone) and moves the follower's cursor by `cursor`, in one
    /// transaction: `Conflict(CursorMoved)` when another follower moved it
    /// first, and then nothing is stored. Returns how many rows were new.
    pub async fn fan_out(
        &self,
        cursor: CursorMove,
        rows: Vec<NewDelivery>,
    ) -> Result<usize, StoreError> {
        cursor.check()?;
        each!(self, s => s.fan_out(cursor, rows).await)
    }

    /// Up to `limit` pending deliveries due at `now` (`next_attempt_at <=
    /// now`), the longest due first.
    pub async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        each!(self, s => s.due_deliveries(now, limit).await)
    }

    /// Claims up to `limit` deliveries for an attempt at `now`: pending ones
    /// that are due and in-flight ones whose lease ran out (their worker is
    /// presumed gone), the longest due first. Each becomes `in_flight`
    /// until `now + lease` and counts the attempt, so its new `attempts` is
    /// the claim's token: a result is recorded only under the newest claim.
    /// Concurrent claimers never get the same row (PostgreSQL skips rows
    /// another claim holds locked; SQLite has one writer).
    pub async fn claim_due_deliveries(
        &self,
        now: Timestamp,
        lease: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        use sql::Claimable;
        let until = now.unix_micros().saturating_add(lease.as_micros() as i64);
        let now = now.unix_micros();
        // Lapsed leases first: they have waited longest.
        let mut claimed =
            each!(self, s => s.claim_deliveries(Claimable::LeaseExpired, now, until, limit).await)?;
        if claimed.len() < limit {
            let rest = limit - claimed.len();
            claimed.extend(
                each!(self, s => s.claim_deliveries(Claimable::Due, now, until, rest).await)?,
            );
        }
        claimed.sort_by(|a, b| {
            (a.next_attempt_at.unix_nanos(), &a.delivery_id)
                .cmp(&(b.next_attempt_at.unix_nanos(), &b.delivery_id))
        });
        Ok(claimed)
    }

    /// Records `attempt` and applies `outcome` to a claimed delivery, in one
    /// transaction, only while `attempt.attempt` is still its claim token
    /// (it is `in_flight` with that many attempts): a stale claim changes
    /// nothing and gets `false`. `DisableSubscription` also turns the
    /// delivery's subscription off. The lifecycle notices it causes go to
    /// the audit trail in the same transaction: `delivery.exhausted` when
    /// the delivery becomes a dead letter, `subscription.disabled` when it
    /// turns an enabled subscription off.
    pub async fn finish_delivery(
        &self,
        delivery_id: &str,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        self.finish_delivery_with(delivery_id, attempt, outcome, FinishOptions::default())
            .await
    }

    /// [`Store::finish_delivery`] with `options`: whether its notices are
    /// also queued for NATS.
    pub async fn finish_delivery_with(
        &self,
        delivery_id: &str,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
        options: FinishOptions,
    ) -> Result<bool, StoreError> {
        let finish = sql::Finish::of(delivery_id, &attempt, &outcome, options);
        each!(self, s => s.finish_delivery(finish).await)
    }

    /// Puts a claimed delivery back unattempted, due at `at`: pending again
    /// with its attempt count as before the claim (`token - 1`), no attempt
    /// recorded. Only under the current claim token; `false` otherwise.
    pub async fn release_delivery(
        &self,
        delivery_id: &str,
        token: i64,
        at: Timestamp,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let id = delivery_id.to_string();
        let (at, now) = (at.unix_micros(), now.unix_micros());
        each!(self, s => s.release_delivery(id, token, at, now).await)
    }

    /// The recorded attempts at one delivery, first first.
    pub async fn delivery_attempts(
        &self,
        delivery_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        each!(self, s => s.delivery_attempts(delivery_id).await)
    }

    /// The tenant's deliveries of one event, in id order (none for another
    /// tenant's event).
    pub async fn deliveries_of_event(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> Result<Vec<Delivery>, StoreError> {
        each!(self, s => s.deliveries_of_event(tenant, event_id).await)
    }

    /// One page of a subscription's deliveries in id (creation) order,
    /// after the delivery id `after` (a page's `next_cursor`).
    pub async fn deliveries_of_subscription(
        &self,
        tenant: &TenantId,
        subscription_id: &str,
        limit: usize,
        after: Option<String>,
    ) -> Result<DeliveryPage, StoreError> {
        each!(self, s => s.deliveries_of_subscription(tenant, subscription_id, limit, after).await)
    }

    /// Every tenant's enabled subscriptions, by tenant then id: what the
    /// fan-out matches events against.
    pub async fn enabled_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        each!(self, s => s.enabled_subscriptions().await)
    }
}

/// The deliveries SQL for both backends, `?` placeholders, and the values
/// of a row as stored. Times are integer microseconds since the epoch, so
/// "due" is an index range.
pub(crate) mod sql {
    use super::*;

    /// The columns [`delivery_row`] reads, in its order.
    pub(crate) const COLUMNS: &str = "delivery_id, tenant_id, subscription_id, event_id, seq, \
        stream_id, stream_version, webhook_id, replay_id, state, attempts, next_attempt_at, \
        lease_until, last_status, last_error_class, created_at, updated_at, attempt_base";

    /// One new row: the values of [`NewValues`] in order. A row the
    /// subscription has for the event already is a uniqueness violation
    /// the insert skips.
    pub(crate) const INSERT: &str = "INSERT INTO deliveries (delivery_id, tenant_id, \
        subscription_id, event_id, seq, stream_id, stream_version, webhook_id, replay_id, state, \
        attempts, next_attempt_at, created_at, updated_at) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?) ON CONFLICT DO NOTHING";

    /// `now`, `limit`.
    pub(crate) fn due() -> String {
        format!(
            "SELECT {COLUMNS} FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ? \
             ORDER BY next_attempt_at, delivery_id LIMIT ?"
        )
    }

    /// The claim of one kind of delivery (`which`): `lease_until`, `now`
    /// (twice), `limit`; `lock` is
    /// what the backend adds to the inner select (row locks that skip
    /// rows another claim holds, on PostgreSQL), `ordered` its test that
    /// the stored definition of subscription `s` (its `spec` text) says
    /// `"ordering": "stream"`.
    ///
    /// Stream order: a delivery of an ordering subscription waits while an
    /// earlier one of its stream (same subscription and `stream_id`, lower
    /// `stream_version`) is neither delivered nor dead. Replays' rows
    /// neither wait nor hold others up. The earlier-one test comes first
    /// and is an index range (`deliveries_stream_order`), so the
    /// definition is read only for a delivery that has one.
    pub(crate) fn claim(lock: &str, ordered: &str, which: Claimable) -> String {
        // One range of one partial index, walked in its order and left at
        // the limit: an `OR` of both kinds made every claim read and sort
        // every due row (50 ms a claim at 115k pending on SQLite, 1 ms so).
        // `LIMIT CAST(? AS BIGINT)`, not `LIMIT ?`: SQLite plans a bare
        // parameter limit for its bound value, so it recompiled the
        // statement on every claim (30 % of its writer's time under load).
        let (due, order) = match which {
            Claimable::Due => (
                "d.state = 'pending' AND d.next_attempt_at <= ?",
                "d.next_attempt_at",
            ),
            Claimable::LeaseExpired => (
                "d.state = 'in_flight' AND d.lease_until <= ?",
                "d.lease_until",
            ),
        };
        format!(
            "UPDATE deliveries SET state = 'in_flight', attempts = attempts + 1, lease_until = ?, \
             updated_at = ? WHERE delivery_id IN (SELECT d.delivery_id FROM deliveries d \
             WHERE {due} \
             AND NOT (d.stream_id IS NOT NULL AND d.replay_id IS NULL \
             AND EXISTS (SELECT 1 FROM deliveries e WHERE e.subscription_id = d.subscription_id \
             AND e.stream_id = d.stream_id AND e.replay_id IS NULL \
             AND e.state IN ('pending', 'in_flight') AND e.stream_version < d.stream_version) \
             AND EXISTS (SELECT 1 FROM subscriptions s \
             WHERE s.subscription_id = d.subscription_id AND {ordered})) \
             ORDER BY {order} LIMIT CAST(? AS BIGINT) {lock}) RETURNING {COLUMNS}"
        )
    }

    /// The two kinds of claimable delivery, each claimed by its own
    /// statement over its own index.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Claimable {
        /// Pending and due.
        Due,
        /// In flight past its lease (its worker is presumed gone).
        LeaseExpired,
    }

    /// `tenant_id`, `event_id`.
    pub(crate) fn of_event() -> String {
        format!(
            "SELECT {COLUMNS} FROM deliveries WHERE tenant_id = ? AND event_id = ? \
             ORDER BY delivery_id"
        )
    }

    /// `tenant_id`, `subscription_id`, `after` (`""` for the first page:
    /// every id sorts after it), `limit`.
    pub(crate) fn of_subscription() -> String {
        format!(
            "SELECT {COLUMNS} FROM deliveries WHERE tenant_id = ? AND subscription_id = ? \
             AND delivery_id > ? ORDER BY delivery_id LIMIT ?"
        )
    }

    /// Every enabled subscription (`enabled` is a boolean on PostgreSQL,
    /// 0 or 1 on SQLite: both read as a condition).
    pub(crate) fn enabled_subscriptions() -> String {
        format!(
            "SELECT {} FROM subscriptions WHERE enabled ORDER BY tenant_id, subscription_id",
            crate::rows::SUBSCRIPTION_COLUMNS
        )
    }

    /// Ends a claim: `state`, `next_attempt_at` (or `NULL` to keep it),
    /// `last_status`, `last_error_class`, `updated_at`, `delivery_id`,
    /// `attempts` (the token). Returns what [`finished_row`] reads.
    pub(crate) const FINISH: &str = "UPDATE deliveries SET state = ?, \
        next_attempt_at = COALESCE(?, next_attempt_at), lease_until = NULL, last_status = ?, \
        last_error_class = ?, updated_at = ? \
        WHERE delivery_id = ? AND attempts = ? AND state = 'in_flight' \
        RETURNING subscription_id, tenant_id, event_id, replay_id";

    /// The delivery a [`FINISH`] ended.
    pub(crate) struct Finished {
        pub subscription_id: String,
        pub tenant_id: String,
        pub event_id: String,
        pub replay_id: Option<String>,
    }

    /// A [`FINISH`] row.
    pub(crate) fn finished_row(r: &impl RowAccess) -> Result<Finished, StoreError> {
        Ok(Finished {
            subscription_id: r.text(0)?,
            tenant_id: r.text(1)?,
            event_id: r.text(2)?,
            replay_id: r.opt_text(3)?,
        })
    }

    /// `next_attempt_at`, `updated_at`, `delivery_id`, `attempts` (the token).
    pub(crate) const RELEASE: &str = "UPDATE deliveries SET state = 'pending', \
        attempts = attempts - 1, next_attempt_at = ?, lease_until = NULL, updated_at = ? \
        WHERE delivery_id = ? AND attempts = ? AND state = 'in_flight'";

    /// The values of [`Finish`] in order.
    pub(crate) const RECORD_ATTEMPT: &str = "INSERT INTO delivery_attempts (delivery_id, \
        attempt, at, status_code, duration_ms, error_class, response_snippet, next_attempt_at) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING";

    /// `subscription_id`: the listing column and the stored definition
    /// both say disabled. `set_false` is the backend's JSON update of the
    /// `spec` text. Changes no row when it is off already, so only the
    /// finish that turned it off tells of it.
    pub(crate) fn disable_subscription(set_false: &str) -> String {
        format!(
            "UPDATE subscriptions SET enabled = FALSE, spec = {set_false} \
             WHERE subscription_id = ? AND enabled"
        )
    }

    /// After a success: `subscription_id`; its failure run is over.
    pub(crate) const FAILING_ENDED: &str = "UPDATE subscriptions SET failing_since = NULL \
        WHERE subscription_id = ? AND failing_since IS NOT NULL";

    /// After a failure: `at`, `subscription_id`; returns when its run of
    /// failures began (this one, if it is the first).
    pub(crate) const FAILING: &str = "UPDATE subscriptions \
        SET failing_since = COALESCE(failing_since, ?) WHERE subscription_id = ? \
        RETURNING failing_since";

    /// `delivery_id`.
    pub(crate) const ATTEMPTS: &str = "SELECT attempt, at, status_code, duration_ms, \
        error_class, response_snippet, next_attempt_at FROM delivery_attempts \
        WHERE delivery_id = ? ORDER BY attempt";

    /// One finished attempt as stored.
    pub(crate) struct Finish {
        pub delivery_id: String,
        pub token: i64,
        pub state: &'static str,
        pub next_attempt_at: Option<i64>,
        pub status: Option<i64>,
        pub error_class: Option<String>,
        pub at: i64,
        pub duration_ms: i64,
        pub snippet: Option<String>,
        pub disable_subscription: bool,
        pub options: FinishOptions,
    }

    impl Finish {
        pub(crate) fn of(
            id: &str,
            a: &DeliveryAttempt,
            outcome: &DeliveryOutcome,
            options: FinishOptions,
        ) -> Finish {
            let (state, next) = match outcome {
                DeliveryOutcome::Delivered => (DeliveryState::Delivered, None),
                DeliveryOutcome::RetryAt(t) => (DeliveryState::Pending, Some(t.unix_micros())),
                DeliveryOutcome::Dead | DeliveryOutcome::DisableSubscription => {
                    (DeliveryState::Dead, None)
                }
            };
            Finish {
                delivery_id: id.to_string(),
                token: a.attempt,
                state: state.as_str(),
                next_attempt_at: next,
                status: a.status,
                error_class: a.error_class.clone(),
                at: a.at.unix_micros(),
                duration_ms: a.duration_ms,
                snippet: a.response_snippet.clone(),
                disable_subscription: matches!(outcome, DeliveryOutcome::DisableSubscription),
                options,
            }
        }

        pub(crate) fn at(&self) -> Result<Timestamp, StoreError> {
            micros(self.at)
        }

        /// `delivery.exhausted` when this finish made a dead letter.
        pub(crate) fn exhausted_notice(
            &self,
            d: &Finished,
        ) -> Result<Option<LifecycleRecord>, StoreError> {
            if self.state != DeliveryState::Dead.as_str() {
                return Ok(None);
            }
            let event_id = EventId::parse(&d.event_id)
                .map_err(|e| StoreError::corrupt(format!("event id `{}`: {e}", d.event_id)))?;
            let notice = ExhaustedDelivery {
                tenant_id: &d.tenant_id,
                delivery_id: &self.delivery_id,
                event_id,
                subscription_id: &d.subscription_id,
                replay_id: d.replay_id.as_deref(),
                attempts: self.token,
                last_status: self.status,
                last_error_class: self.error_class.as_deref(),
            };
            Ok(Some(LifecycleRecord::delivery_exhausted(
                &notice,
                self.at()?,
            )))
        }

        /// Whether this attempt failed (anything but delivered).
        pub(crate) fn failed(&self) -> bool {
            self.state != DeliveryState::Delivered.as_str()
        }

        /// Why this finish turns the subscription off, if it does: the
        /// outcome says so (410), or its failures began `failing_since`
        /// (µs) and have lasted the configured limit.
        pub(crate) fn disable_reason(
            &self,
            failing_since: Option<i64>,
        ) -> Option<(DisableReason, Option<Timestamp>)> {
            if self.disable_subscription {
                return Some((DisableReason::Gone, None));
            }
            let limit = self.options.disable_after_failing?;
            let since = failing_since?;
            let limit_us = i64::try_from(limit.as_micros()).unwrap_or(i64::MAX);
            (self.at.saturating_sub(since) >= limit_us)
                .then(|| (DisableReason::FailingTooLong, micros(since).ok()))
        }

        /// `subscription.disabled` for a finish that turned `d`'s
        /// subscription off for `reason`.
        pub(crate) fn disabled_notice(
            &self,
            d: &Finished,
            reason: DisableReason,
            failing_since: Option<Timestamp>,
        ) -> Result<LifecycleRecord, StoreError> {
            Ok(LifecycleRecord::subscription_disabled(
                &d.tenant_id,
                &d.subscription_id,
                reason,
                failing_since,
                self.at()?,
            ))
        }
    }

    /// A `delivery_attempts` row in [`ATTEMPTS`] order.
    pub(crate) fn attempt_row(r: &impl RowAccess) -> Result<DeliveryAttempt, StoreError> {
        Ok(DeliveryAttempt {
            attempt: r.int(0)?,
            at: micros(r.int(1)?)?,
            status: r.opt_int(2)?,
            duration_ms: r.int(3)?,
            error_class: r.opt_text(4)?,
            response_snippet: r.opt_text(5)?,
            next_attempt_at: r.opt_int(6)?.map(micros).transpose()?,
        })
    }

    /// A new delivery's values as stored, in [`INSERT`] order.
    pub(crate) struct NewValues {
        pub id: String,
        pub tenant: String,
        pub subscription: String,
        pub event: String,
        pub seq: i64,
        pub stream_id: Option<String>,
        pub stream_version: Option<i64>,
        pub webhook_id: String,
        pub replay_id: Option<String>,
        pub next_attempt_at: i64,
        pub created: i64,
        pub updated: i64,
    }

    impl NewValues {
        pub(crate) fn of(d: &NewDelivery) -> NewValues {
            NewValues {
                id: d.delivery_id.clone(),
                tenant: d.tenant_id.to_string(),
                subscription: d.subscription_id.clone(),
                event: d.event_id.to_string(),
                seq: d.seq,
                stream_id: d.stream_id.clone(),
                stream_version: d.stream_version,
                webhook_id: d.webhook_id.clone(),
                replay_id: d.replay_id.clone(),
                next_attempt_at: d.next_attempt_at.unix_micros(),
                created: d.created_at.unix_micros(),
                updated: d.created_at.unix_micros(),
            }
        }
    }

    /// A `deliveries` row in [`COLUMNS`] order.
    pub(crate) fn delivery_row(r: &impl RowAccess) -> Result<Delivery, StoreError> {
        let tenant = r.text(1)?;
        let event = r.text(3)?;
        let state = r.text(9)?;
        Ok(Delivery {
            delivery_id: r.text(0)?,
            tenant_id: TenantId::parse(&tenant)
                .map_err(|e| StoreError::corrupt(format!("tenant id `{tenant}`: {e}")))?,
            subscription_id: r.text(2)?,
            event_id: EventId::parse(&event)
                .map_err(|e| StoreError::corrupt(format!("event id `{event}`: {e}")))?,
            seq: r.int(4)?,
            stream_id: r.opt_text(5)?,
            stream_version: r.opt_int(6)?,
            webhook_id: r.text(7)?,
            replay_id: r.opt_text(8)?,
            state: state
                .parse::<DeliveryState>()
                .map_err(|e| StoreError::corrupt(e.to_string()))?,
            attempts: r.int(10)?,
            next_attempt_at: micros(r.int(11)?)?,
            lease_until: r.opt_int(12)?.map(micros).transpose()?,
            last_status: r.opt_int(13)?,
            last_error_class: r.opt_text(14)?,
            created_at: micros(r.int(15)?)?,
            updated_at: micros(r.int(16)?)?,
            attempt_base: r.int(17)?,
        })
    }

    /// A UTC timestamp from microseconds since the epoch.
    pub(crate) fn micros(us: i64) -> Result<Timestamp, StoreError> {
        let nanos = (us.rem_euclid(1_000_000) * 1000) as u32;
        Timestamp::from_parts(us.div_euclid(1_000_000), nanos, 0)
            .map_err(|e| StoreError::corrupt(format!("time of {us} µs: {e}")))
    }
}
