//! Streams and their projections: a stream's events read in version order
//! (either way, from a version), its facts, and the entity state folded
//! from its events, helped by snapshots.
//!
//! A projection read (`project`) finds the nearest usable snapshot at or
//! below the version it wants, folds the events after it with each type's
//! rule, and stores a snapshot at every multiple of `snapshot_every` it
//! passed that had none under the current rules. So a read folds at most
//! `snapshot_every` events past the last snapshot of the stream, whoever
//! made it (a reader, or the snapshot follower after each commit).

use herald_core::{EventId, Fold, TenantId, Timestamp};
use serde_json::Value;

use crate::rows::RowAccess;
use crate::store::deliveries::sql::micros;
use crate::{EventJson, Store, StoreError};

/// Which way a stream is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// What a stream read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRead {
    /// The first version read: forward, the lowest; backward, the highest
    /// (`None` backward = the current version).
    pub from_version: Option<u64>,
    pub limit: usize,
    pub direction: Direction,
}

/// A stream's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    pub current_version: u64,
    pub event_count: u64,
    /// The `timestamp` of its first and last event (by version).
    pub first_event_at: Timestamp,
    pub last_event_at: Timestamp,
}

/// One page of a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamPage {
    pub info: StreamInfo,
    pub events: Vec<EventJson>,
    pub has_more: bool,
}

/// Which state of an entity a projection read wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionAt {
    /// The current state.
    Latest,
    /// The state after the event with this version.
    Version(u64),
    /// The state made of the events Herald had stored by then (by each
    /// event's `processing_timestamp`).
    Time(Timestamp),
}

/// An entity's state and where it was folded to.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// `null` when the entity does not exist (a `delete` rule, or no data).
    pub state: Value,
    pub version: u64,
    pub last_event_id: EventId,
    /// The processing time of the last event folded in.
    pub updated_at: Timestamp,
}

/// The fold rules a projection read applies, and their fingerprint (see
/// `herald_registry::Registry::fold_rules_fingerprint`).
pub struct FoldRules<'a> {
    pub fingerprint: &'a str,
    pub fold_for: &'a (dyn Fn(&str) -> Fold + Sync),
    /// Keep a snapshot every this many versions (0: none).
    pub snapshot_every: u64,
}

impl std::fmt::Debug for FoldRules<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FoldRules")
            .field("fingerprint", &self.fingerprint)
            .field("snapshot_every", &self.snapshot_every)
            .finish()
    }
}

/// A snapshot as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub version: u64,
    pub state: Value,
    pub last_event_id: EventId,
    pub updated_at: i64,
    pub max_processing_ts: i64,
}

/// One event as a fold reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldEvent {
    pub version: u64,
    pub event_id: EventId,
    pub event_type: String,
    pub processing_ts: i64,
    pub data: Value,
}

/// Events a fold reads per round trip.
const FOLD_PAGE: usize = 1000;

impl Store {
    /// The stream's facts; `None` if it has no events.
    pub async fn stream_info(
        &self,
        tenant: &TenantId,
        stream_id: &str,
    ) -> Result<Option<StreamInfo>, StoreError> {
        each!(self, s => s.stream_info(tenant, stream_id).await)
    }

    /// The stream's current version (0: no events).
    pub async fn stream_version(
        &self,
        tenant: &TenantId,
        stream_id: &str,
    ) -> Result<u64, StoreError> {
        each!(self, s => s.stream_version(tenant, stream_id).await)
    }

    /// One page of a stream in version order; `None` if it has no events.
    pub async fn read_stream(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        read: StreamRead,
    ) -> Result<Option<StreamPage>, StoreError> {
        let Some(info) = self.stream_info(tenant, stream_id).await? else {
            return Ok(None);
        };
        let mut events = each!(self, s => s.stream_events(tenant, stream_id, read).await)?;
        let has_more = events.len() > read.limit;
        events.truncate(read.limit);
        Ok(Some(StreamPage {
            info,
            events,
            has_more,
        }))
    }

    /// Up to `limit` events with `after < version <= until` and a
    /// processing time `<= processed_by`, in version order, as a fold
    /// reads them.
    pub async fn fold_events(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        after: u64,
        until: u64,
        processed_by: i64,
        limit: usize,
    ) -> Result<Vec<FoldEvent>, StoreError> {
        each!(self, s => s.fold_events(tenant, stream_id, after, until, processed_by, limit).await)
    }

    /// The latest snapshot folded under `rules` with `version <= until`
    /// whose events were all processed by `processed_by`.
    pub async fn nearest_snapshot(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        rules: &str,
        until: u64,
        processed_by: i64,
    ) -> Result<Option<Snapshot>, StoreError> {
        each!(self, s => s.nearest_snapshot(tenant, stream_id, rules, until, processed_by).await)
    }

    /// Stores snapshots (replacing any at the same versions).
    pub async fn save_snapshots(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        rules: &str,
        snapshots: Vec<Snapshot>,
    ) -> Result<(), StoreError> {
        if snapshots.is_empty() {
            return Ok(());
        }
        each!(self, s => s.save_snapshots(tenant, stream_id, rules, snapshots).await)
    }

    /// The entity's state at `at`, folded from the nearest snapshot with
    /// `rules`, storing the snapshots it passed; `None` when the stream has
    /// no events (by then).
    pub async fn project(
        &self,
        tenant: &TenantId,
        stream_id: &str,
        at: ProjectionAt,
        rules: &FoldRules<'_>,
    ) -> Result<Option<Projection>, StoreError> {
        let (until, processed_by) = match at {
            ProjectionAt::Latest => (u64::MAX >> 1, i64::MAX),
            ProjectionAt::Version(v) => (v, i64::MAX),
            ProjectionAt::Time(t) => (u64::MAX >> 1, t.unix_micros()),
        };
        let start = self
            .nearest_snapshot(tenant, stream_id, rules.fingerprint, until, processed_by)
            .await?;
        let mut last = start.as_ref().map(|s| {
            (
                s.version,
                s.last_event_id,
                s.updated_at,
                s.max_processing_ts,
            )
        });
        let mut state = start.map_or(Value::Null, |s| s.state);
        let mut after = last.map_or(0, |l| l.0);
        let mut fresh = Vec::new();
        loop {
            let page = self
                .fold_events(tenant, stream_id, after, until, processed_by, FOLD_PAGE)
                .await?;
            let full = page.len() == FOLD_PAGE;
            for e in page {
                (rules.fold_for)(&e.event_type).apply(&mut state, &e.data);
                let max_ts = last.map_or(e.processing_ts, |l| l.3.max(e.processing_ts));
                last = Some((e.version, e.event_id, e.processing_ts, max_ts));
                after = e.version;
                // Only a prefix with no gap is a snapshot (with `at`, an
                // event processed later is left out of this fold).
                if rules.snapshot_every > 0
                    && e.version % rules.snapshot_every == 0
                    && processed_by == i64::MAX
                {
                    fresh.push(Snapshot {
                        version: e.version,
                        state: state.clone(),
                        last_event_id: e.event_id,
                        updated_at: e.processing_ts,
                        max_processing_ts: max_ts,
                    });
                }
            }
            if !full {
                break;
            }
        }
        self.save_snapshots(tenant, stream_id, rules.fingerprint, fresh)
            .await?;
        let Some((version, last_event_id, updated_at, _)) = last else {
            return Ok(None);
        };
        Ok(Some(Projection {
            state,
            version,
            last_event_id,
            updated_at: micros(updated_at)?,
        }))
    }
}

/// The statements of this concern, `?` placeholders, for both backends.
pub(crate) mod sql {
    use super::*;

    /// `tenant_id, stream_id`.
    pub(crate) const VERSION: &str = "SELECT COALESCE(MAX(stream_version), 0) FROM events \
        WHERE tenant_id = ? AND stream_id = ?";

    /// `tenant_id, stream_id` ×3: count, current version, first and last
    /// event time.
    pub(crate) const INFO: &str = "SELECT COUNT(*), COALESCE(MAX(stream_version), 0), \
        (SELECT ts FROM events WHERE tenant_id = ? AND stream_id = ? ORDER BY stream_version ASC LIMIT 1), \
        (SELECT ts FROM events WHERE tenant_id = ? AND stream_id = ? ORDER BY stream_version DESC LIMIT 1) \
        FROM events WHERE tenant_id = ? AND stream_id = ?";

    /// `tenant_id, stream_id, from_version, limit + 1`: a page as
    /// `EventJson` rows (`body` is `body::text` on PostgreSQL).
    pub(crate) fn events(body: &str, direction: Direction) -> String {
        let (cmp, order) = match direction {
            Direction::Forward => (">=", "ASC"),
            Direction::Backward => ("<=", "DESC"),
        };
        format!(
            "SELECT {body}, status, processed_at, processing_ms, ts, seq, user_id FROM events \
             WHERE tenant_id = ? AND stream_id = ? AND stream_version {cmp} ? \
             ORDER BY stream_version {order} LIMIT CAST(? AS BIGINT)"
        )
    }

    /// `tenant_id, stream_id, after, until, processed_by, limit`; `data`
    /// is the expression of the body's `data` as JSON text.
    pub(crate) fn fold(data: &str) -> String {
        format!(
            "SELECT stream_version, event_id, event_type, processing_ts, {data} FROM events \
             WHERE tenant_id = ? AND stream_id = ? AND stream_version > ? AND stream_version <= ? \
             AND processing_ts <= ? ORDER BY stream_version LIMIT CAST(? AS BIGINT)"
        )
    }

    /// `tenant_id, stream_id, rules, until, processed_by`.
    pub(crate) const NEAREST: &str = "SELECT version, state, last_event_id, updated_at, \
        max_processing_ts FROM projection_snapshots WHERE tenant_id = ? AND stream_id = ? \
        AND rules = ? AND version <= ? AND max_processing_ts <= ? ORDER BY version DESC LIMIT 1";

    /// `tenant_id, stream_id, version, rules, state, last_event_id,
    /// updated_at, max_processing_ts`.
    pub(crate) const SAVE: &str = "INSERT INTO projection_snapshots (tenant_id, stream_id, \
        version, rules, state, last_event_id, updated_at, max_processing_ts) \
        VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, stream_id, version) DO UPDATE \
        SET rules = excluded.rules, state = excluded.state, last_event_id = excluded.last_event_id, \
        updated_at = excluded.updated_at, max_processing_ts = excluded.max_processing_ts";

    /// An [`INFO`] row; `None` for a stream with no events.
    pub(crate) fn info_row(r: &impl RowAccess) -> Result<Option<StreamInfo>, StoreError> {
        let count = r.int(0)?;
        if count == 0 {
            return Ok(None);
        }
        Ok(Some(StreamInfo {
            event_count: count as u64,
            current_version: r.int(1)? as u64,
            first_event_at: micros(r.int(2)?)?,
            last_event_at: micros(r.int(3)?)?,
        }))
    }

    /// A [`fold`] row.
    pub(crate) fn fold_row(r: &impl RowAccess) -> Result<FoldEvent, StoreError> {
        let data = match r.opt_text(4)? {
            None => Value::Object(Default::default()),
            Some(t) => crate::rows::corrupt(serde_json::from_str(&t))?,
        };
        Ok(FoldEvent {
            version: r.int(0)? as u64,
            event_id: r.event_id(1)?,
            event_type: r.text(2)?,
            processing_ts: r.int(3)?,
            data,
        })
    }

    /// A [`NEAREST`] row.
    pub(crate) fn snapshot_row(r: &impl RowAccess) -> Result<Snapshot, StoreError> {
        let id = r.text(2)?;
        Ok(Snapshot {
            version: r.int(0)? as u64,
            state: crate::rows::corrupt(serde_json::from_str(&r.text(1)?))?,
            last_event_id: EventId::parse(&id)
                .map_err(|_| StoreError::corrupt(format!("snapshot event id `{id}`")))?,
            updated_at: r.int(3)?,
            max_processing_ts: r.int(4)?,
        })
    }
}
