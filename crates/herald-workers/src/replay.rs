//! Replays: delivering stored events again. A replay (stored by the API)
//! names a selection of stored events and its target subscriptions; the
//! worker's [`ReplayWorker::step`] takes the oldest unfinished replay,
//! reads the next page of its selected events in commit order from its
//! cursor, matches each against the targets with the fan-out's own rule
//! ([`fanout::matching`]), and stores one new delivery per match (with
//! the replay's id and a `webhook-id` of its own) together with the
//! replay's progress, in one transaction. Stored events are only read.
//!
//! A dry run ([`dry_run`]) counts what a replay would create with the same
//! page reader and the same matching, and stores nothing but its counts.

pub mod selection;

use std::sync::Arc;
use std::time::Duration;

use herald_core::Clock;
use herald_core::filter::Parsed;
use herald_store::{
    LifecycleKind, LifecycleRecord, NewDelivery, Replay, ReplayProgress, ReplayScan, ReplayState,
    ReplayStep, SequencedEvent, Store, StoreError, Subscription,
};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::fanout::{self, Target};

/// What the replay reads: its stored selection up to its `until_seq`;
/// `Err` with the reason when the stored selection no longer parses.
pub fn parse_stored_selection(replay: &Replay) -> Result<ReplayScan, String> {
    let Value::Object(body) = &replay.selection else {
        return Err("the stored selection is not a JSON object".into());
    };
    let mut errors = Vec::new();
    let s = selection::parse(body, "", |_, _, _| Parsed::Unknown, &mut errors);
    if errors.is_empty() {
        Ok(ReplayScan {
            until_seq: Some(replay.until_seq),
            ..s.scan
        })
    } else {
        Err(format!(
            "the stored selection does not parse: {}",
            errors
                .iter()
                .map(|e| format!("{} {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    }
}

/// What one page of a replay came to.
#[derive(Debug, Default)]
struct PageOutcome {
    /// The new deliveries, one per matching (event, target) pair.
    rows: Vec<NewDelivery>,
    /// The `seq` of the last event read (the next page starts after it).
    last_seq: Option<i64>,
    scanned: i64,
    matched: i64,
    /// Fewer events than a page: the selection is exhausted.
    exhausted: bool,
}

/// A replay's selection and targets as one step or dry run reads them.
struct Scanner<'a> {
    store: &'a Store,
    replay: &'a Replay,
    scan: &'a ReplayScan,
    targets: &'a [Target],
    now: herald_core::Timestamp,
}

impl Scanner<'_> {
    /// Reads the page after `after` and matches it against the targets:
    /// the one page reader of replays and dry runs.
    async fn page(
        &self,
        after: i64,
        limit: usize,
        filter_errors: &mut u64,
    ) -> Result<PageOutcome, StoreError> {
        let events = self
            .store
            .replay_events(&self.replay.tenant_id, self.scan, after, limit)
            .await?;
        let mut out = PageOutcome {
            exhausted: events.len() < limit,
            last_seq: events.last().map(|e| e.seq),
            scanned: events.len() as i64,
            ..PageOutcome::default()
        };
        for stored in &events {
            let matched = deliveries_of(stored, self.replay, self.targets, self.now, filter_errors);
            if !matched.is_empty() {
                out.matched += 1;
            }
            out.rows.extend(matched);
        }
        Ok(out)
    }
}

/// The replay's deliveries of one stored event.
fn deliveries_of(
    stored: &SequencedEvent,
    replay: &Replay,
    targets: &[Target],
    now: herald_core::Timestamp,
    filter_errors: &mut u64,
) -> Vec<NewDelivery> {
    let Some(event) = fanout::decode_stored(stored) else {
        return Vec::new();
    };
    fanout::matching(&event, targets, filter_errors)
        .into_iter()
        .map(|s| fanout::new_delivery(stored, &event, s, now, Some(&replay.replay_id)))
        .collect()
}

/// `subscriptions` that parse as selectors.
pub fn targets_of(subscriptions: Vec<Subscription>) -> Vec<Target> {
    subscriptions.into_iter().filter_map(Target::of).collect()
}

/// What a dry run would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DryRun {
    pub progress: ReplayProgress,
    /// `false` when the selection holds more than the bound and the counts
    /// are of its first `bound` events only.
    pub complete: bool,
}

/// Counts what `replay` would create, reading at most `bound` events in
/// pages of `page`, exactly as the worker reads and matches them; stores
/// nothing.
pub async fn dry_run(
    store: &Store,
    replay: &Replay,
    scan: &ReplayScan,
    targets: &[Target],
    page: usize,
    bound: usize,
    now: herald_core::Timestamp,
) -> Result<DryRun, StoreError> {
    let scanner = Scanner {
        store,
        replay,
        scan,
        targets,
        now,
    };
    let mut progress = ReplayProgress::default();
    let mut filter_errors = 0;
    loop {
        let left = bound.saturating_sub(progress.events_scanned as usize);
        if left == 0 {
            // Exactly at the bound: complete if nothing follows.
            let more = store
                .replay_events(&replay.tenant_id, scan, progress.cursor, 1)
                .await?;
            return Ok(DryRun {
                progress,
                complete: more.is_empty(),
            });
        }
        let p = scanner
            .page(progress.cursor, page.min(left), &mut filter_errors)
            .await?;
        progress.cursor = p.last_seq.unwrap_or(progress.cursor);
        progress.events_scanned += p.scanned;
        progress.events_matched += p.matched;
        progress.deliveries_created += p.rows.len() as i64;
        if p.exhausted {
            return Ok(DryRun {
                progress,
                complete: true,
            });
        }
    }
}

/// What one [`ReplayWorker::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayStepped {
    /// No replay is unfinished.
    Idle,
    /// Moved `replay_id` on by one page (`finished` when that was its last).
    Advanced { replay_id: String, finished: bool },
    /// Another worker moved the replay first; nothing was stored.
    Lost { replay_id: String },
}

/// The replay worker: one page of the oldest unfinished replay per step.
#[derive(Debug)]
pub struct ReplayWorker {
    store: Store,
    clock: Arc<dyn Clock>,
    page: usize,
    /// Notified after a step that stored deliveries (the delivery worker).
    deliveries_stored: Option<Arc<Notify>>,
    /// Whether lifecycle notices also go to the NATS outbox.
    publish_lifecycle: bool,
    filter_errors: u64,
}

impl ReplayWorker {
    /// Events read per step unless set.
    pub const DEFAULT_PAGE: usize = 500;

    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        ReplayWorker {
            store,
            clock,
            page: Self::DEFAULT_PAGE,
            deliveries_stored: None,
            publish_lifecycle: false,
            filter_errors: 0,
        }
    }

    /// Reads `page` events per step (at least one).
    pub fn with_page(mut self, page: usize) -> Self {
        self.page = page.max(1);
        self
    }

    /// Also notifies `stored` after each step that stored deliveries, so
    /// the delivery worker sends them at once.
    pub fn waking(mut self, stored: Arc<Notify>) -> Self {
        self.deliveries_stored = Some(stored);
        self
    }

    /// Queue `event.replay.started` / `.completed` for the NATS publisher
    /// too (they go to the audit trail either way).
    pub fn publishing_lifecycle(mut self, publish: bool) -> Self {
        self.publish_lifecycle = publish;
        self
    }

    /// Records a replay's lifecycle notice (`event.replay.started` or
    /// `event.replay.completed`) after the move it reports committed. A
    /// crash between the two loses the notice, never the replay's work.
    async fn announce(&self, kind: LifecycleKind, replay: &Replay) -> Result<(), StoreError> {
        let now = self.clock.now();
        tracing::info!(
            target: "herald::lifecycle",
            kind = kind.as_str(),
            replay_id = %replay.replay_id,
            tenant_id = %replay.tenant_id,
            state = replay.state.as_str(),
            deliveries_created = replay.progress.deliveries_created,
            "replay lifecycle"
        );
        let record = LifecycleRecord::replay(kind, replay, now);
        self.store
            .record_lifecycle(vec![record], self.publish_lifecycle, now)
            .await
    }

    /// (event, target) pairs whose filter failed to evaluate so far.
    pub fn filter_errors(&self) -> u64 {
        self.filter_errors
    }

    /// One step: starts the oldest unfinished replay if it is pending,
    /// then stores its next page's deliveries with its progress.
    pub async fn step(&mut self) -> Result<ReplayStepped, StoreError> {
        let Some(mut replay) = self.store.next_replay().await? else {
            return Ok(ReplayStepped::Idle);
        };
        let now = self.clock.now();
        if replay.state == ReplayState::Pending {
            if self.store.start_replay(&replay.replay_id, now).await? {
                replay.state = ReplayState::Running;
                replay.started_at = Some(now);
                self.announce(LifecycleKind::ReplayStarted, &replay).await?;
            } else {
                return Ok(ReplayStepped::Lost {
                    replay_id: replay.replay_id,
                });
            }
        }
        let from_cursor = replay.progress.cursor;
        let scan = match parse_stored_selection(&replay) {
            Ok(scan) => scan,
            Err(reason) => {
                return self
                    .finish(replay, from_cursor, Vec::new(), Some(reason))
                    .await;
            }
        };
        let mut subscriptions = Vec::with_capacity(replay.targets.len());
        for id in &replay.targets {
            // A target deleted since the replay was made is skipped.
            if let Some(s) = self.store.get_subscription(&replay.tenant_id, id).await? {
                subscriptions.push(s);
            }
        }
        let targets = targets_of(subscriptions);
        let page = Scanner {
            store: &self.store,
            replay: &replay,
            scan: &scan,
            targets: &targets,
            now,
        }
        .page(from_cursor, self.page, &mut self.filter_errors)
        .await?;
        let p = &mut replay.progress;
        p.cursor = page.last_seq.unwrap_or(p.cursor);
        p.events_scanned += page.scanned;
        p.events_matched += page.matched;
        p.deliveries_created += page.rows.len() as i64;
        if page.exhausted {
            return self.finish(replay, from_cursor, page.rows, None).await;
        }
        let stored = !page.rows.is_empty();
        let step = ReplayStep {
            replay_id: replay.replay_id.clone(),
            from_cursor,
            progress: replay.progress,
            state: ReplayState::Running,
            error: None,
            at: now,
        };
        if !self.store.advance_replay(step, page.rows).await? {
            return Ok(ReplayStepped::Lost {
                replay_id: replay.replay_id,
            });
        }
        self.wake_deliveries(stored);
        Ok(ReplayStepped::Advanced {
            replay_id: replay.replay_id,
            finished: false,
        })
    }

    /// Stores the last step of `replay` (completed, or failed with
    /// `error`) and announces it.
    async fn finish(
        &mut self,
        mut replay: Replay,
        from_cursor: i64,
        rows: Vec<NewDelivery>,
        error: Option<String>,
    ) -> Result<ReplayStepped, StoreError> {
        let now = self.clock.now();
        replay.state = if error.is_some() {
            ReplayState::Failed
        } else {
            ReplayState::Completed
        };
        replay.error = error;
        replay.completed_at = Some(now);
        let stored = !rows.is_empty();
        let step = ReplayStep {
            replay_id: replay.replay_id.clone(),
            from_cursor,
            progress: replay.progress,
            state: replay.state,
            error: replay.error.clone(),
            at: now,
        };
        if !self.store.advance_replay(step, rows).await? {
            return Ok(ReplayStepped::Lost {
                replay_id: replay.replay_id,
            });
        }
        self.wake_deliveries(stored);
        self.announce(LifecycleKind::ReplayCompleted, &replay)
            .await?;
        Ok(ReplayStepped::Advanced {
            replay_id: replay.replay_id,
            finished: true,
        })
    }

    fn wake_deliveries(&self, stored: bool) {
        if stored && let Some(wake) = &self.deliveries_stored {
            wake.notify_one();
        }
    }

    /// Steps until `stop`, waiting for `wake` (a replay was created) or
    /// `idle` whenever there is nothing to do.
    pub async fn run(mut self, wake: Arc<Notify>, idle: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            match self.step().await {
                Ok(ReplayStepped::Advanced { .. } | ReplayStepped::Lost { .. }) => continue,
                Ok(ReplayStepped::Idle) => {}
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "replay step failed; retrying"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
