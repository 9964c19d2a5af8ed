//! Replays as they cross the store contract: a request to deliver stored
//! events again to chosen subscriptions, worked through in commit order by
//! the replay worker, which records its progress with the deliveries it
//! creates.

use herald_core::filter::EventFilter;
use herald_core::{EventId, TenantId, Timestamp};
use serde::{Deserialize, Serialize};

use super::UnknownName;

text_enum!(
    /// Where a replay is in its life.
    ReplayState, "replay state" {
        /// Stored, not yet picked up by the worker.
        Pending = "pending",
        /// The worker has started on it; `cursor` says how far it got.
        Running = "running",
        /// Every selected event was scanned (a dry run is stored completed).
        Completed = "completed",
        /// Given up on; `error` says why.
        Failed = "failed",
    }
);

/// How far a replay got: a cursor over the commit `seq` (the last event
/// scanned) and what it counted on the way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayProgress {
    /// The `seq` of the last event scanned (0 before the first).
    pub cursor: i64,
    /// Events of the selection read so far.
    pub events_scanned: i64,
    /// Of those, events that matched at least one target subscription.
    pub events_matched: i64,
    /// Deliveries created (one per matching (event, target) pair).
    pub deliveries_created: i64,
}

/// A replay to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReplay {
    /// `rpl_…`.
    pub replay_id: String,
    pub tenant_id: TenantId,
    /// The selection as the request gave it (a JSON object), parsed again
    /// by the worker.
    pub selection: serde_json::Value,
    /// The subscriptions its events go to, fixed when it is created.
    pub targets: Vec<String>,
    /// The last `seq` committed when it was made: it reads no later
    /// event, so what it does is fixed when it is asked for.
    pub until_seq: i64,
    pub dry_run: bool,
    /// `Pending` for a real replay; a dry run is stored `Completed` with
    /// the progress it computed.
    pub state: ReplayState,
    pub progress: ReplayProgress,
    pub created_at: Timestamp,
}

/// A stored replay.
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    pub replay_id: String,
    pub tenant_id: TenantId,
    pub selection: serde_json::Value,
    pub targets: Vec<String>,
    pub until_seq: i64,
    pub dry_run: bool,
    pub state: ReplayState,
    pub progress: ReplayProgress,
    pub error: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub completed_at: Option<Timestamp>,
}

/// Which stored events a replay reads: the event filter as it is,
/// optionally a list of event ids, and a last `seq` (all must hold).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplayScan {
    pub filter: EventFilter,
    /// Only these events, when not empty.
    pub event_ids: Vec<EventId>,
    /// Only events with `seq <= until_seq`, when given.
    pub until_seq: Option<i64>,
}

/// One move of a running replay: from the cursor it was read at to its new
/// progress, `completed` when the selection is exhausted, and `failed`
/// (with the reason) when it is given up on.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayStep {
    pub replay_id: String,
    /// The cursor the step read from: the move applies only while the
    /// replay is still there (compare-and-set).
    pub from_cursor: i64,
    pub progress: ReplayProgress,
    pub state: ReplayState,
    pub error: Option<String>,
    pub at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_states_round_trip() {
        for s in ReplayState::ALL {
            assert_eq!(s.as_str().parse::<ReplayState>(), Ok(*s));
        }
        assert!("done".parse::<ReplayState>().is_err());
    }
}
