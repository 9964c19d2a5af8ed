//! How much work waits, for the server's gauges: one read of counts, each
//! over a partial index of the rows it counts (never the whole table), so
//! its cost grows with the backlog, not with history; and which group
//! commits to report to ([`Store::observe_commits`]).

use std::sync::Arc;

use crate::group_commit::CommitObserver;
use crate::query::{Arg, Stmt};
use crate::{Store, StoreError};

/// The work waiting in the store at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Events not yet through processing (`pending` or `processing`).
    pub events_pending: i64,
    /// Processing jobs due or running.
    pub processing_jobs: i64,
    /// Webhook deliveries due or in flight.
    pub deliveries: i64,
    /// Deliveries given up on (the dead-letter queue).
    pub dead_deliveries: i64,
    /// Processing jobs given up on (the dead-letter queue).
    pub dead_processing_jobs: i64,
    /// The last committed `seq`.
    pub last_seq: i64,
    /// The asked-for follower's cursor (`None`: it has none yet).
    pub cursor: Option<i64>,
}

/// Each count names its state with `=`, so each matches one partial index
/// (`events_pending`, `processing_jobs_due`/`_leased`/`_dead`,
/// `deliveries_due`/`_leased`/`_dead`); `MAX(seq)` is one index probe.
const BACKLOG: &str = "SELECT \
    (SELECT COUNT(*) FROM events WHERE status IN ('pending', 'processing')), \
    (SELECT COUNT(*) FROM processing_jobs WHERE state = 'pending') \
      + (SELECT COUNT(*) FROM processing_jobs WHERE state = 'in_flight'), \
    (SELECT COUNT(*) FROM deliveries WHERE state = 'pending') \
      + (SELECT COUNT(*) FROM deliveries WHERE state = 'in_flight'), \
    (SELECT COUNT(*) FROM deliveries WHERE state = 'dead'), \
    (SELECT COUNT(*) FROM processing_jobs WHERE state = 'dead'), \
    (SELECT COALESCE(MAX(seq), 0) FROM events), \
    (SELECT seq FROM publish_cursors WHERE name = ?)";

impl Store {
    /// The backlog now, with the cursor of the follower named `cursor`
    /// (the NATS publisher's, for its lag). Counts are exact but not a
    /// snapshot across tables: each is read as it is when reached.
    pub async fn backlog(&self, cursor: &str) -> Result<Backlog, StoreError> {
        let stmt = Stmt::new(BACKLOG, vec![Arg::Text(cursor.to_string())]);
        let rows = each!(self, s => s.select(stmt, |r| Ok(Backlog {
            events_pending: r.int(0)?,
            processing_jobs: r.int(1)?,
            deliveries: r.int(2)?,
            dead_deliveries: r.int(3)?,
            dead_processing_jobs: r.int(4)?,
            last_seq: r.int(5)?,
            cursor: r.opt_int(6)?,
        })).await)?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    /// Reports every later group commit (its size, time and outcome) to
    /// `observer`; `false` when this store has one already (it stays).
    pub fn observe_commits(&self, observer: Arc<dyn CommitObserver>) -> bool {
        each!(self, s => s.observe_commits(observer))
    }
}
