//! Workflow waits: matching stored events against open waits, timing
//! them out, and posting their ends to callback URLs.
//!
//! - [`WaitMatcher`]: a [`CommitLogProjector`] over the cursor
//!   [`WAITS_CURSOR`]: each batch is matched against the in-memory
//!   [`index::WaitIndex`], and the resolutions (compare-and-set on `open`)
//!   commit with the cursor move, so a batch resolves its waits once.
//! - [`look_back`]: a new wait's lookback, the events stored up to
//!   `lookback` before it (the matcher takes only later ones).
//! - [`WaitTimeouts`]: ends the waits whose timeout passed, `timed_out`.
//! - [`callback::WaitCallbacks`]: the callback outbox's worker.
//!
//! Every end is a compare-and-set in the store, so a resolution, a
//! timeout and a cancel racing leave exactly one end. An event stored at
//! or after a wait's timeout never resolves it.

pub mod callback;
pub mod index;

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_core::{Clock, Timestamp};
use herald_filter::EventView;
use herald_store::{
    ConflictReason, CursorMove, SequencedEvent, Store, StoreError, Wait, WaitResolution,
};
use tokio::sync::{Notify, watch};

use crate::fanout::decode_stored;
use crate::follower::{CommitLogFollower, CommitLogProjector, Follow};
use index::{CompiledWait, WaitIndex};

/// The cursor name of the wait matcher.
pub const WAITS_CURSOR: &str = "waits";

/// Called after a step that ended waits (wakes long polls and the
/// callback worker).
pub type OnEnd = Arc<dyn Fn() + Send + Sync>;

/// What the matcher has done since it was made, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitCounts {
    /// Waits this matcher resolved.
    pub resolved: u64,
    /// (event, wait) pairs whose filter failed to evaluate: no match.
    pub filter_errors: u64,
}

/// The wait matcher: the index of open waits and what it did.
pub struct WaitMatcher {
    clock: Arc<dyn Clock>,
    index: WaitIndex,
    counts: WaitCounts,
    /// How often the index is pruned of waits that ended elsewhere.
    prune_every: Duration,
    pruned_at: Option<Instant>,
    on_end: Option<OnEnd>,
}

impl std::fmt::Debug for WaitMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitMatcher")
            .field("open", &self.index.len())
            .field("counts", &self.counts)
            .finish()
    }
}

impl WaitMatcher {
    /// A matcher whose resolutions are stamped with `clock`'s now.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        WaitMatcher {
            clock,
            index: WaitIndex::default(),
            counts: WaitCounts::default(),
            prune_every: Duration::from_secs(60),
            pruned_at: None,
            on_end: None,
        }
    }

    /// Calls `on_end` after each step that resolved waits.
    pub fn on_end(mut self, on_end: OnEnd) -> Self {
        self.on_end = Some(on_end);
        self
    }

    pub fn counts(&self) -> WaitCounts {
        self.counts
    }

    /// How many open waits the index holds.
    pub fn indexed(&self) -> usize {
        self.index.len()
    }

    /// One step: matches up to one batch after `follower`'s cursor.
    pub async fn step(
        &mut self,
        follower: &CommitLogFollower,
        store: &Store,
    ) -> Result<Follow, StoreError> {
        let before = self.counts.resolved;
        let step = follower
            .step_projecting(&mut MatchStep {
                matcher: self,
                store,
            })
            .await;
        if self.counts.resolved > before
            && let Some(on_end) = &self.on_end
        {
            on_end();
        }
        step
    }

    /// Steps until `stop`; after each catch-up, and at least every `poll`
    /// while events keep coming, also times out due waits; then waits for
    /// `wake` or `poll` (other instances' commits and waits, and timeouts
    /// coming due).
    pub async fn run(
        mut self,
        follower: CommitLogFollower,
        store: Store,
        timeouts: WaitTimeouts,
        wake: Arc<Notify>,
        poll: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut timed_out_at = Instant::now();
        loop {
            if *stop.borrow() {
                return;
            }
            let busy = match self.step(&follower, &store).await {
                Ok(Follow::Handled { .. }) => true,
                Ok(Follow::Caught) => false,
                Err(StoreError::Closed) => return,
                Err(StoreError::Conflict(ConflictReason::CursorMoved { .. })) => {
                    tracing::debug!("another instance matched this batch; following on");
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "wait matcher step failed; retrying");
                    false
                }
            };
            if !busy || timed_out_at.elapsed() >= poll {
                timed_out_at = Instant::now();
                match timeouts.step(&store).await {
                    Ok(_) => {}
                    Err(StoreError::Closed) => return,
                    Err(e) => tracing::warn!(error = %e, "wait timeout step failed; retrying"),
                }
            }
            if busy {
                continue;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// One step's projector: the matcher and the store it loads waits from.
struct MatchStep<'a> {
    matcher: &'a mut WaitMatcher,
    store: &'a Store,
}

impl CommitLogProjector for MatchStep<'_> {
    type Effects = Vec<WaitResolution>;
    type Error = StoreError;

    async fn project(&mut self, events: &[SequencedEvent]) -> Result<Self::Effects, StoreError> {
        let m = &mut *self.matcher;
        let last = events.last().map_or(0, |e| e.seq);
        let due = m.pruned_at.is_none_or(|at| at.elapsed() >= m.prune_every);
        if due {
            m.index.prune(self.store, last).await?;
            m.pruned_at = Some(Instant::now());
        } else {
            m.index.load(self.store, last).await?;
        }
        if m.index.is_empty() {
            return Ok(Vec::new());
        }
        let now = m.clock.now();
        let mut taken = std::collections::HashSet::new();
        let mut resolutions = Vec::new();
        for stored in events {
            let candidates = m
                .index
                .candidates(&stored.tenant_id, &stored.event_type, stored.seq);
            if candidates.is_empty() {
                continue;
            }
            let Some(event) = decode_stored(stored) else {
                continue;
            };
            let view = EventView::new(&event);
            for wait in candidates {
                if taken.contains(&wait.wait_id) {
                    continue;
                }
                if wait.resolves(&view, &mut m.counts.filter_errors) {
                    taken.insert(wait.wait_id.clone());
                    resolutions.push(resolution(wait, stored, now));
                }
            }
        }
        Ok(resolutions)
    }

    async fn commit(
        &mut self,
        store: &Store,
        cursor: CursorMove,
        effects: Vec<WaitResolution>,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = effects.iter().map(|r| r.wait_id.clone()).collect();
        let resolved = store.resolve_waits(Some(cursor), effects).await?;
        self.matcher.counts.resolved += resolved.len() as u64;
        // Resolved here or ended before: either way no longer open.
        for id in &ids {
            self.matcher.index.remove(id);
        }
        Ok(())
    }
}

fn resolution(wait: &CompiledWait, stored: &SequencedEvent, now: Timestamp) -> WaitResolution {
    WaitResolution {
        wait_id: wait.wait_id.clone(),
        event_id: stored.event_id,
        event: stored.body.clone(),
        at: now,
    }
}

/// A new wait's lookback: the first event in commit order among the
/// tenant's events stored (processing time) from `lookback` before the
/// wait's creation up to its `created_seq` that resolves it, as a
/// resolution at `now`; `None` without a lookback or a match. The caller
/// stores it with [`Store::resolve_waits`] (compare-and-set, so a
/// matcher that got there first with a later event keeps its end).
pub async fn look_back(
    store: &Store,
    wait: &Wait,
    now: Timestamp,
) -> Result<Option<WaitResolution>, StoreError> {
    if wait.spec.lookback_secs == 0 {
        return Ok(None);
    }
    let Some(compiled) = CompiledWait::of(wait, &mut Default::default()) else {
        return Ok(None);
    };
    let since = wait
        .created_at
        .unix_micros()
        .saturating_sub((wait.spec.lookback_secs as i64).saturating_mul(1_000_000));
    let since = Timestamp::from_parts(
        since.div_euclid(1_000_000),
        (since.rem_euclid(1_000_000) * 1_000) as u32,
        0,
    )
    .unwrap_or(wait.created_at);
    let mut errors = 0;
    for stored in store
        .lookback_events(&wait.tenant_id, wait.created_seq, since)
        .await?
    {
        if !compiled.takes_type(&stored.event_type) {
            continue;
        }
        let Some(event) = decode_stored(&stored) else {
            continue;
        };
        if compiled.resolves(&EventView::new(&event), &mut errors) {
            return Ok(Some(resolution(&compiled, &stored, now)));
        }
    }
    Ok(None)
}

/// Ends the waits whose timeout has passed.
#[derive(Clone)]
pub struct WaitTimeouts {
    clock: Arc<dyn Clock>,
    batch: usize,
    on_end: Option<OnEnd>,
}

impl std::fmt::Debug for WaitTimeouts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitTimeouts")
            .field("batch", &self.batch)
            .finish()
    }
}

impl WaitTimeouts {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        WaitTimeouts {
            clock,
            batch: 500,
            on_end: None,
        }
    }

    /// Calls `on_end` after each step that ended waits.
    pub fn on_end(mut self, on_end: OnEnd) -> Self {
        self.on_end = Some(on_end);
        self
    }

    /// Ends every open wait due at the clock's now as `timed_out`, a batch
    /// at a time; how many it ended.
    pub async fn step(&self, store: &Store) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut ended = 0;
        loop {
            let ids = store.time_out_waits(now, self.batch).await?;
            ended += ids.len();
            if ids.len() < self.batch {
                break;
            }
        }
        if ended > 0
            && let Some(on_end) = &self.on_end
        {
            on_end();
        }
        Ok(ended)
    }
}
