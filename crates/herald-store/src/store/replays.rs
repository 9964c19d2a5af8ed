//! Replays: requests to deliver stored events again. The API stores one
//! (a dry run already completed, with its counts); the replay worker
//! starts the oldest unfinished one, reads the selected events in commit
//! order from its cursor, and stores the deliveries it creates together
//! with its progress move in one transaction, compare-and-set on the
//! cursor: a crash repeats no delivery and loses none, and two workers
//! never both move one replay.

use herald_core::TenantId;

use crate::rows::RowAccess;
use crate::{
    NewDelivery, NewReplay, Replay, ReplayProgress, ReplayScan, ReplayState, ReplayStep,
    SequencedEvent, Store, StoreError,
};

impl Store {
    /// Stores a new replay; `Conflict` if its id is taken.
    pub async fn insert_replay(&self, replay: NewReplay) -> Result<(), StoreError> {
        let values = sql::NewValues::of(&replay)?;
        each!(self, s => s.insert_replay(values).await)
    }

    /// The tenant's replay `replay_id` (none for another tenant's).
    pub async fn get_replay(
        &self,
        tenant: &TenantId,
        replay_id: &str,
    ) -> Result<Option<Replay>, StoreError> {
        each!(self, s => s.get_replay(tenant, replay_id).await)
    }

    /// The last committed `seq`: a new replay's `until_seq`.
    pub async fn latest_seq(&self) -> Result<i64, StoreError> {
        each!(self, s => s.latest_seq().await)
    }

    /// The oldest replay that is `pending` or `running`, of any tenant.
    pub async fn next_replay(&self) -> Result<Option<Replay>, StoreError> {
        each!(self, s => s.next_replay().await)
    }

    /// Marks a `pending` replay `running` since `at`: `true` if this call
    /// started it, `false` if it was not pending (started elsewhere).
    pub async fn start_replay(
        &self,
        replay_id: &str,
        at: herald_core::Timestamp,
    ) -> Result<bool, StoreError> {
        let id = replay_id.to_string();
        each!(self, s => s.start_replay(id, at.unix_micros()).await)
    }

    /// Up to `limit` of the tenant's stored events that `scan` selects
    /// with `seq > after`, in commit order (the event query's filter,
    /// read as the commit log reads).
    pub async fn replay_events(
        &self,
        tenant: &TenantId,
        scan: &ReplayScan,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        each!(self, s => s.replay_events(tenant, scan, after, limit).await)
    }

    /// Applies `step` to a running replay and stores `rows` (deliveries
    /// with its `replay_id`), in one transaction, only while the replay is
    /// `running` at `step.from_cursor`: otherwise nothing is stored and
    /// the answer is `false`.
    pub async fn advance_replay(
        &self,
        step: ReplayStep,
        rows: Vec<NewDelivery>,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.advance_replay(step, rows).await)
    }
}

/// The replays SQL for both backends, `?` placeholders, and the values of
/// a row as stored. Times are integer microseconds since the epoch.
pub(crate) mod sql {
    use super::*;
    use crate::store::deliveries::sql::micros;
    use herald_core::TenantId;

    /// The columns [`replay_row`] reads, in its order.
    pub(crate) const COLUMNS: &str = "replay_id, tenant_id, selection, targets, dry_run, state, \
        cursor_seq, events_scanned, events_matched, deliveries_created, error, created_at, \
        started_at, completed_at, until_seq";

    /// The values of [`NewValues`] in order.
    pub(crate) const INSERT: &str = "INSERT INTO replays (replay_id, tenant_id, selection, \
        targets, dry_run, state, cursor_seq, events_scanned, events_matched, deliveries_created, \
        created_at, started_at, completed_at, until_seq) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

    /// The last committed `seq` (0 for an empty store).
    pub(crate) const LATEST_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM events";

    /// `tenant_id`, `replay_id`.
    pub(crate) fn get() -> String {
        format!("SELECT {COLUMNS} FROM replays WHERE tenant_id = ? AND replay_id = ?")
    }

    /// The oldest unfinished replay.
    pub(crate) fn next() -> String {
        format!(
            "SELECT {COLUMNS} FROM replays WHERE state IN ('pending', 'running') \
             ORDER BY created_at, replay_id LIMIT 1"
        )
    }

    /// `started_at`, `replay_id`.
    pub(crate) const START: &str = "UPDATE replays SET state = 'running', started_at = ? \
        WHERE replay_id = ? AND state = 'pending'";

    /// The values of [`Advance`] in order; the compare-and-set on
    /// (`state`, `cursor_seq`) is what makes a step count once.
    pub(crate) const ADVANCE: &str = "UPDATE replays SET cursor_seq = ?, events_scanned = ?, \
        events_matched = ?, deliveries_created = ?, state = ?, error = ?, completed_at = ? \
        WHERE replay_id = ? AND state = 'running' AND cursor_seq = ?";

    /// A new replay's values as stored, in [`INSERT`] order.
    pub(crate) struct NewValues {
        pub id: String,
        pub tenant: String,
        pub selection: String,
        pub targets: String,
        pub dry_run: i64,
        pub until_seq: i64,
        pub state: &'static str,
        pub progress: ReplayProgress,
        pub created: i64,
        /// A dry run is stored finished: started and completed at creation.
        pub finished: Option<i64>,
    }

    impl NewValues {
        pub(crate) fn of(r: &NewReplay) -> Result<NewValues, StoreError> {
            let finished = matches!(r.state, ReplayState::Completed | ReplayState::Failed)
                .then(|| r.created_at.unix_micros());
            Ok(NewValues {
                id: r.replay_id.clone(),
                tenant: r.tenant_id.to_string(),
                selection: crate::rows::to_json(&r.selection)?,
                targets: crate::rows::to_json(&r.targets)?,
                dry_run: i64::from(r.dry_run),
                until_seq: r.until_seq,
                state: r.state.as_str(),
                progress: r.progress,
                created: r.created_at.unix_micros(),
                finished,
            })
        }
    }

    /// One step's values as stored, in [`ADVANCE`] order.
    pub(crate) struct Advance {
        pub progress: ReplayProgress,
        pub state: &'static str,
        pub error: Option<String>,
        pub completed: Option<i64>,
        pub id: String,
        pub from_cursor: i64,
    }

    impl Advance {
        pub(crate) fn of(s: &ReplayStep) -> Advance {
            let finished = matches!(s.state, ReplayState::Completed | ReplayState::Failed);
            Advance {
                progress: s.progress,
                state: s.state.as_str(),
                error: s.error.clone(),
                completed: finished.then(|| s.at.unix_micros()),
                id: s.replay_id.clone(),
                from_cursor: s.from_cursor,
            }
        }
    }

    /// A `replays` row in [`COLUMNS`] order.
    pub(crate) fn replay_row(r: &impl RowAccess) -> Result<Replay, StoreError> {
        let tenant = r.text(1)?;
        let state = r.text(5)?;
        let json = |i: usize| -> Result<serde_json::Value, StoreError> {
            crate::rows::corrupt(serde_json::from_str(&r.text(i)?))
        };
        let targets = json(3)?;
        Ok(Replay {
            replay_id: r.text(0)?,
            tenant_id: TenantId::parse(&tenant)
                .map_err(|e| StoreError::corrupt(format!("tenant id `{tenant}`: {e}")))?,
            selection: json(2)?,
            targets: crate::rows::corrupt(serde_json::from_value(targets))?,
            dry_run: r.int(4)? != 0,
            state: state
                .parse::<ReplayState>()
                .map_err(|e| StoreError::corrupt(e.to_string()))?,
            progress: ReplayProgress {
                cursor: r.int(6)?,
                events_scanned: r.int(7)?,
                events_matched: r.int(8)?,
                deliveries_created: r.int(9)?,
            },
            error: r.opt_text(10)?,
            created_at: micros(r.int(11)?)?,
            started_at: r.opt_int(12)?.map(micros).transpose()?,
            completed_at: r.opt_int(13)?.map(micros).transpose()?,
            until_seq: r.int(14)?,
        })
    }
}
