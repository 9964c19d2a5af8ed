//! Workflow waits: a workflow registers what event it waits for and until
//! when; the wait ends exactly once, `resolved` by the first matching event,
//! `timed_out`, or `cancelled`. Every end is a compare-and-set on
//! `status = 'open'`, so ends racing each other (on one instance or
//! several) leave exactly one. A resolution by the commit-log follower is
//! committed with its cursor move. A wait with a callback URL carries its
//! own small outbox (`callback_*` columns): an end makes it due, a claim
//! leases it, a finish records the attempt under the claim's token.
//!
//! A wait records `created_seq`, the last `seq` committed when it was
//! stored (read under the commit order: SQLite's one writer, PostgreSQL's
//! commit lock), so every event after it is matched by the follower and
//! every event up to it only by the lookback.

use std::time::Duration;

use herald_core::{TenantId, Timestamp};

use crate::rows::RowAccess;
use crate::{
    CancelOutcome, CursorMove, NewWait, SequencedEvent, Store, StoreError, Wait,
    WaitCallbackAttempt, WaitPage, WaitQuery, WaitResolution,
};

/// How many events one lookback reads at most, newest first.
pub const LOOKBACK_SCAN_LIMIT: usize = 100_000;

impl Store {
    /// Stores a new wait, `open`, with `created_seq` the last committed
    /// `seq` read in the same transaction under the commit order; returns
    /// it as stored. `Conflict` if its id is taken.
    pub async fn insert_wait(&self, wait: NewWait) -> Result<Wait, StoreError> {
        let values = sql::NewValues::of(&wait)?;
        each!(self, s => s.insert_wait(values).await)
    }

    /// The tenant's wait `wait_id` (none for another tenant's).
    pub async fn get_wait(
        &self,
        tenant: &TenantId,
        wait_id: &str,
    ) -> Result<Option<Wait>, StoreError> {
        each!(self, s => s.get_wait(tenant, wait_id).await)
    }

    /// One page of the tenant's waits in id (creation) order.
    pub async fn list_waits(
        &self,
        tenant: &TenantId,
        query: &WaitQuery,
    ) -> Result<WaitPage, StoreError> {
        let args = sql::ListArgs::of(tenant, query);
        let limit = query.limit;
        let mut waits = each!(self, s => s.list_waits(args).await)?;
        let next_cursor = if waits.len() > limit {
            waits.truncate(limit);
            waits.last().map(|w| w.wait_id.clone())
        } else {
            None
        };
        Ok(WaitPage { waits, next_cursor })
    }

    /// Every tenant's open waits with `from <= created_seq < before`: what
    /// the matcher indexes before matching events up to `before`.
    pub async fn open_waits(&self, from: i64, before: i64) -> Result<Vec<Wait>, StoreError> {
        each!(self, s => s.open_waits(from, before).await)
    }

    /// The ids of every tenant's open waits with `created_seq < before`:
    /// what the matcher keeps of its index when it drops waits that ended
    /// elsewhere.
    pub async fn open_wait_ids(&self, before: i64) -> Result<Vec<String>, StoreError> {
        each!(self, s => s.open_wait_ids(before).await)
    }

    /// Resolves each wait of `resolutions` that is still open, and applies
    /// `cursor` (when given), in one transaction: `Conflict(CursorMoved)`
    /// and nothing written when another follower moved the cursor first.
    /// Returns the ids of the waits this call resolved.
    pub async fn resolve_waits(
        &self,
        cursor: Option<CursorMove>,
        resolutions: Vec<WaitResolution>,
    ) -> Result<Vec<String>, StoreError> {
        if let Some(c) = &cursor {
            c.check()?;
        }
        let rows = resolutions.iter().map(sql::Resolve::of).collect();
        each!(self, s => s.resolve_waits(cursor, rows).await)
    }

    /// Cancels the tenant's wait `wait_id` at `now` if it is open.
    pub async fn cancel_wait(
        &self,
        tenant: &TenantId,
        wait_id: &str,
        now: Timestamp,
    ) -> Result<CancelOutcome, StoreError> {
        let (tenant, id) = (tenant.to_string(), wait_id.to_string());
        let changed =
            each!(self, s => s.cancel_wait(tenant.clone(), id.clone(), now.unix_micros()).await)?;
        let tenant = TenantId::parse(&tenant).map_err(|e| StoreError::invalid(e.to_string()))?;
        Ok(match self.get_wait(&tenant, &id).await? {
            None => CancelOutcome::NotFound,
            Some(w) if changed => CancelOutcome::Cancelled(w),
            Some(w) => CancelOutcome::Ended(w),
        })
    }

    /// Cancels every open wait of one workflow instance of the tenant at
    /// `now`; how many it cancelled.
    pub async fn cancel_workflow_waits(
        &self,
        tenant: &TenantId,
        workflow_instance_id: &str,
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let (tenant, wf) = (tenant.to_string(), workflow_instance_id.to_string());
        each!(self, s => s.cancel_workflow_waits(tenant, wf, now.unix_micros()).await)
    }

    /// Ends up to `limit` open waits whose `timeout_at <= now` as
    /// `timed_out` at `now`; the ids it ended.
    pub async fn time_out_waits(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        each!(self, s => s.time_out_waits(now.unix_micros(), limit).await)
    }

    /// Claims up to `limit` due callbacks at `now`: pending ones whose
    /// `next_at <= now` and in-flight ones whose lease ran out. Each
    /// becomes `in_flight` until `now + lease` and counts the attempt;
    /// its new attempt count is the claim's token. Concurrent claimers
    /// never get the same wait.
    pub async fn claim_wait_callbacks(
        &self,
        now: Timestamp,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Wait>, StoreError> {
        let until = now.unix_micros().saturating_add(lease.as_micros() as i64);
        each!(self, s => s.claim_wait_callbacks(now.unix_micros(), until, limit).await)
    }

    /// Records one callback attempt's outcome, only under the claim's
    /// token (still `in_flight` with that many attempts); `false` for a
    /// stale claim, which changes nothing.
    pub async fn finish_wait_callback(
        &self,
        wait_id: &str,
        attempt: WaitCallbackAttempt,
    ) -> Result<bool, StoreError> {
        let f = sql::Finish::of(wait_id, &attempt);
        each!(self, s => s.finish_wait_callback(f).await)
    }

    /// The tenant's events with `seq <= through_seq` stored (processing
    /// time) at or after `since`, in commit order: the candidates of a
    /// wait's lookback. Reads the commit log backwards from `through_seq`
    /// and stops at the first page stored wholly before `since`, or after
    /// [`LOOKBACK_SCAN_LIMIT`] events.
    pub async fn lookback_events(
        &self,
        tenant: &TenantId,
        through_seq: i64,
        since: Timestamp,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        const PAGE: usize = 500;
        let since = since.unix_micros();
        let mut found = Vec::new();
        let mut below = through_seq.saturating_add(1);
        let mut scanned = 0;
        while scanned < LOOKBACK_SCAN_LIMIT {
            let page = each!(self, s => s.events_before(below, PAGE).await)?;
            let Some(last) = page.last() else { break };
            below = last.0.seq;
            scanned += page.len();
            let newest = page.iter().map(|(_, ts)| *ts).max().unwrap_or(i64::MIN);
            let short = page.len() < PAGE;
            found.extend(
                page.into_iter()
                    .filter(|(e, ts)| *ts >= since && e.tenant_id == tenant.as_str())
                    .map(|(e, _)| e),
            );
            if newest < since || short {
                break;
            }
        }
        found.sort_by_key(|e| e.seq);
        Ok(found)
    }
}

/// The waits SQL for both backends, `?` placeholders, and the values of a
/// row as stored. Times are integer microseconds since the epoch.
pub(crate) mod sql {
    use super::*;
    use crate::store::deliveries::sql::micros;
    use crate::{WaitCallback, WaitCallbackOutcome, WaitStatus};

    /// The columns [`wait_row`] reads, in its order.
    pub(crate) const COLUMNS: &str = "wait_id, tenant_id, workflow_instance_id, spec, status, \
        created_at, timeout_at, created_seq, ended_at, event_id, event, callback_url, \
        webhook_secret, callback_state, callback_attempts, callback_next_at, \
        callback_last_status, callback_last_error";

    /// The values of [`NewValues`] in order, then `created_seq`.
    pub(crate) const INSERT: &str = "INSERT INTO waits (wait_id, tenant_id, \
        workflow_instance_id, event_types, spec, status, created_at, timeout_at, callback_url, \
        webhook_secret, created_seq) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)";

    /// `tenant_id`, `wait_id`.
    pub(crate) fn get() -> String {
        format!("SELECT {COLUMNS} FROM waits WHERE tenant_id = ? AND wait_id = ?")
    }

    /// The values of [`ListArgs`] in order.
    pub(crate) fn list() -> String {
        format!(
            "SELECT {COLUMNS} FROM waits WHERE tenant_id = ? \
             AND (CAST(? AS TEXT) IS NULL OR status = ?) \
             AND (CAST(? AS TEXT) IS NULL OR workflow_instance_id = ?) \
             AND (CAST(? AS TEXT) IS NULL OR event_types LIKE ? ESCAPE '\\') \
             AND (CAST(? AS TEXT) IS NULL OR wait_id > ?) \
             ORDER BY wait_id LIMIT ?"
        )
    }

    /// `from`, `before`.
    pub(crate) fn open() -> String {
        format!(
            "SELECT {COLUMNS} FROM waits WHERE status = 'open' AND created_seq >= ? \
             AND created_seq < ?"
        )
    }

    /// `before`.
    pub(crate) const OPEN_IDS: &str =
        "SELECT wait_id FROM waits WHERE status = 'open' AND created_seq < ?";

    /// What every end sets besides `status`: the end time and, with a
    /// callback URL, the callback due at once. `ended_at` twice.
    const END: &str = "ended_at = ?, \
        callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END, \
        callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE CAST(? AS BIGINT) END";

    /// The values of [`Resolve`] in order.
    pub(crate) fn resolve() -> String {
        format!(
            "UPDATE waits SET status = 'resolved', event_id = ?, event = ?, {END} \
             WHERE wait_id = ? AND status = 'open'"
        )
    }

    /// `now` twice, `tenant_id`, `wait_id`.
    pub(crate) fn cancel() -> String {
        format!(
            "UPDATE waits SET status = 'cancelled', {END} \
             WHERE tenant_id = ? AND wait_id = ? AND status = 'open'"
        )
    }

    /// `now` twice, `tenant_id`, `workflow_instance_id`.
    pub(crate) fn cancel_workflow() -> String {
        format!(
            "UPDATE waits SET status = 'cancelled', {END} \
             WHERE tenant_id = ? AND workflow_instance_id = ? AND status = 'open'"
        )
    }

    /// `now` twice, `now`, `limit`; `lock` is what the backend adds to the
    /// inner select (row locks that skip rows another transaction holds,
    /// on PostgreSQL).
    pub(crate) fn time_out(lock: &str) -> String {
        format!(
            "UPDATE waits SET status = 'timed_out', {END} \
             WHERE status = 'open' AND wait_id IN (SELECT wait_id FROM waits \
             WHERE status = 'open' AND timeout_at <= ? ORDER BY timeout_at \
             LIMIT CAST(? AS BIGINT) {lock}) RETURNING wait_id"
        )
    }

    /// `lease_until`, `now`, `now`, `limit`.
    pub(crate) fn claim(lock: &str) -> String {
        let due = "((callback_state = 'pending' AND callback_next_at <= ?) \
            OR (callback_state = 'in_flight' AND callback_lease_until <= ?))";
        format!(
            "UPDATE waits SET callback_state = 'in_flight', \
             callback_attempts = callback_attempts + 1, callback_lease_until = ? \
             WHERE wait_id IN (SELECT wait_id FROM waits WHERE {due} \
             ORDER BY callback_next_at, wait_id LIMIT CAST(? AS BIGINT) {lock}) \
             RETURNING {COLUMNS}"
        )
    }

    /// The values of [`Finish`] in order.
    pub(crate) const FINISH: &str = "UPDATE waits SET callback_state = ?, callback_next_at = ?, \
        callback_lease_until = NULL, callback_last_status = ?, callback_last_error = ? \
        WHERE wait_id = ? AND callback_state = 'in_flight' AND callback_attempts = ?";

    /// `below`, `limit`: the commit log backwards, with each event's
    /// processing time last.
    pub(crate) fn events_before(body: &str) -> String {
        format!(
            "SELECT seq, event_id, tenant_id, category, event_type, {body}, stream_id, \
             stream_version, processing_ts FROM events WHERE seq < ? ORDER BY seq DESC LIMIT ?"
        )
    }

    /// The last committed `seq`.
    pub(crate) use crate::store::replays::sql::LATEST_SEQ;

    /// A new wait's values as stored, in [`INSERT`] order.
    pub(crate) struct NewValues {
        pub id: String,
        pub tenant: String,
        pub workflow: String,
        pub event_types: String,
        pub spec: String,
        pub created: i64,
        pub timeout: i64,
        pub callback_url: Option<String>,
        pub secret: Option<String>,
    }

    impl NewValues {
        pub(crate) fn of(w: &NewWait) -> Result<NewValues, StoreError> {
            Ok(NewValues {
                id: w.wait_id.clone(),
                tenant: w.tenant_id.to_string(),
                workflow: w.workflow_instance_id.clone(),
                event_types: event_types(w.spec.any_of.iter().map(|a| a.event_type.as_str())),
                spec: crate::rows::to_json(&w.spec)?,
                created: w.created_at.unix_micros(),
                timeout: w.timeout_at.unix_micros(),
                callback_url: w.callback_url.clone(),
                secret: w.webhook_secret.clone(),
            })
        }
    }

    /// A wait's types and patterns as one searchable text: each between
    /// spaces (types hold no spaces).
    fn event_types<'a>(types: impl Iterator<Item = &'a str>) -> String {
        let mut out = String::from(" ");
        for t in types {
            out.push_str(t);
            out.push(' ');
        }
        out
    }

    /// A list query's values, in [`list`] order.
    pub(crate) struct ListArgs {
        pub tenant: String,
        pub status: Option<String>,
        pub workflow: Option<String>,
        /// A `LIKE` pattern for one exact type among `event_types`.
        pub event_type: Option<String>,
        pub after: Option<String>,
        /// One more than the page, to tell whether another follows.
        pub limit: i64,
    }

    impl ListArgs {
        pub(crate) fn of(tenant: &TenantId, q: &WaitQuery) -> ListArgs {
            let like = |t: &str| {
                let escaped: String = t
                    .chars()
                    .flat_map(|c| match c {
                        '%' | '_' | '\\' => vec!['\\', c],
                        c => vec![c],
                    })
                    .collect();
                format!("% {escaped} %")
            };
            ListArgs {
                tenant: tenant.to_string(),
                status: q.status.map(|s| s.as_str().to_string()),
                workflow: q.workflow_instance_id.clone(),
                event_type: q.event_type.as_deref().map(like),
                after: q.after.clone(),
                limit: q.limit as i64 + 1,
            }
        }
    }

    /// One resolution's values, in [`resolve`] order.
    pub(crate) struct Resolve {
        pub event_id: String,
        pub event: String,
        pub at: i64,
        pub id: String,
    }

    impl Resolve {
        pub(crate) fn of(r: &WaitResolution) -> Resolve {
            Resolve {
                event_id: r.event_id.to_string(),
                event: r.event.clone(),
                at: r.at.unix_micros(),
                id: r.wait_id.clone(),
            }
        }
    }

    /// One finished callback attempt's values, in [`FINISH`] order.
    pub(crate) struct Finish {
        pub state: &'static str,
        pub next_at: Option<i64>,
        pub status: Option<i64>,
        pub error: Option<String>,
        pub id: String,
        pub token: i64,
    }

    impl Finish {
        pub(crate) fn of(wait_id: &str, a: &WaitCallbackAttempt) -> Finish {
            let (state, next_at) = match &a.outcome {
                WaitCallbackOutcome::Delivered => ("delivered", None),
                WaitCallbackOutcome::RetryAt(at) => ("pending", Some(at.unix_micros())),
                WaitCallbackOutcome::Failed => ("failed", None),
            };
            Finish {
                state,
                next_at,
                status: a.status,
                error: a.error.clone(),
                id: wait_id.to_string(),
                token: a.token,
            }
        }
    }

    /// A `waits` row in [`COLUMNS`] order.
    pub(crate) fn wait_row(r: &impl RowAccess) -> Result<Wait, StoreError> {
        let tenant = r.text(1)?;
        let status: WaitStatus = r.text(4)?.parse()?;
        let event_id = match r.opt_text(9)? {
            Some(id) => Some(crate::rows::corrupt(herald_core::EventId::parse(&id))?),
            None => None,
        };
        let callback = match r.opt_text(13)? {
            Some(state) => Some(WaitCallback {
                state,
                attempts: r.int(14)?,
                next_at: r.opt_int(15)?.map(micros).transpose()?,
                last_status: r.opt_int(16)?,
                last_error: r.opt_text(17)?,
            }),
            None => None,
        };
        Ok(Wait {
            wait_id: r.text(0)?,
            tenant_id: TenantId::parse(&tenant)
                .map_err(|e| StoreError::corrupt(format!("tenant id `{tenant}`: {e}")))?,
            workflow_instance_id: r.text(2)?,
            spec: crate::rows::corrupt(serde_json::from_str(&r.text(3)?))?,
            status,
            created_at: micros(r.int(5)?)?,
            timeout_at: micros(r.int(6)?)?,
            created_seq: r.int(7)?,
            ended_at: r.opt_int(8)?.map(micros).transpose()?,
            event_id,
            event: r.opt_text(10)?,
            callback_url: r.opt_text(11)?,
            webhook_secret: r.opt_text(12)?,
            callback,
        })
    }

    /// A row of [`events_before`]: the event and its processing time.
    pub(crate) fn event_before_row(
        r: &impl RowAccess,
    ) -> Result<(SequencedEvent, i64), StoreError> {
        Ok((crate::rows::sequenced_row(r)?, r.int(8)?))
    }
}
