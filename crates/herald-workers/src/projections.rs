//! Projections kept cheap to read: a cache of current states that can
//! never serve a stale version, and the snapshot follower that keeps a
//! folded state every N versions of every stream as events commit.
//!
//! **Cache.** A current-state read first asks the store for the stream's
//! version (one index probe), and serves a cached state only when it was
//! folded to exactly that version under the tenant's current fold rules;
//! otherwise it folds from the nearest snapshot and caches the result. A
//! state is therefore never older than the last event committed before the
//! read began, whatever writes race it. The cache holds at most its
//! capacity; past it, the least recently read eighth is dropped.
//!
//! **Snapshots.** The follower reads the commit log from its durable
//! cursor; for each event whose stream version is a multiple of N it folds
//! the stream to that version, which stores the snapshot (and any below it
//! a rule change left missing). A repeat after a crash overwrites the same
//! rows with the same states.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_core::{Fold, TenantId};
use herald_store::{
    ConflictReason, FoldRules, Projection, ProjectionAt, SequencedEvent, Store, StoreError,
};
use tokio::sync::{Notify, watch};

use crate::follower::{CommitLogFollower, CommitLogHandler, Follow};

/// The cursor of the snapshot follower.
pub const SNAPSHOT_CURSOR: &str = "projection-snapshots";

/// One tenant's fold rules: their fingerprint and the rule of each type.
#[derive(Clone)]
pub struct TenantFolds {
    pub fingerprint: String,
    pub fold_for: Arc<dyn Fn(&str) -> Fold + Send + Sync>,
}

impl std::fmt::Debug for TenantFolds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantFolds")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

impl TenantFolds {
    /// The rules as a projection read takes them.
    pub fn with_snapshots(&self, every: u64) -> FoldRules<'_> {
        FoldRules {
            fingerprint: &self.fingerprint,
            fold_for: &*self.fold_for,
            snapshot_every: every,
        }
    }
}

/// Where the follower gets a tenant's fold rules (the server: its tenant
/// registry).
pub trait FoldRulesSource: Send + Sync {
    fn folds(
        &self,
        tenant: &TenantId,
    ) -> impl Future<Output = Result<TenantFolds, StoreError>> + Send;
}

/// Current projections by (tenant, stream), never stale.
#[derive(Debug)]
pub struct ProjectionCache {
    capacity: usize,
    entries: Mutex<HashMap<(String, String), Cached>>,
    tick: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug)]
struct Cached {
    fingerprint: String,
    projection: Projection,
    used: u64,
}

impl ProjectionCache {
    /// A cache of at most `capacity` states (0: none kept).
    pub fn new(capacity: usize) -> Self {
        ProjectionCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
            tick: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Reads served from the cache, and reads that folded.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// How many states are kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current state of `stream_id`: cached if folded to the stream's
    /// version under these rules, else folded and cached. `None` when the
    /// stream has no events.
    pub async fn current(
        &self,
        store: &Store,
        tenant: &TenantId,
        stream_id: &str,
        rules: &FoldRules<'_>,
    ) -> Result<Option<Projection>, StoreError> {
        let head = store.stream_version(tenant, stream_id).await?;
        if head == 0 {
            return Ok(None);
        }
        let key = (tenant.as_str().to_string(), stream_id.to_string());
        let used = self.tick.fetch_add(1, Ordering::Relaxed);
        {
            let mut entries = self.lock();
            if let Some(c) = entries.get_mut(&key)
                && c.projection.version == head
                && c.fingerprint == rules.fingerprint
            {
                c.used = used;
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(Some(c.projection.clone()));
            }
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let folded = store
            .project(tenant, stream_id, ProjectionAt::Version(head), rules)
            .await?;
        if let Some(p) = &folded
            && self.capacity > 0
        {
            let mut entries = self.lock();
            let newer = entries.get(&key).is_none_or(|c| {
                c.fingerprint != rules.fingerprint || c.projection.version < p.version
            });
            if newer {
                entries.insert(
                    key,
                    Cached {
                        fingerprint: rules.fingerprint.to_string(),
                        projection: p.clone(),
                        used,
                    },
                );
                if entries.len() > self.capacity {
                    evict(&mut entries, self.capacity);
                }
            }
        }
        Ok(folded)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drops the least recently read eighth (at least one) of a full cache.
fn evict(entries: &mut HashMap<(String, String), Cached>, capacity: usize) {
    let drop = (capacity / 8).max(1) + entries.len().saturating_sub(capacity + 1);
    let mut used: Vec<u64> = entries.values().map(|c| c.used).collect();
    let cut = drop.min(used.len()) - 1;
    let (_, &mut oldest_kept_bound, _) = used.select_nth_unstable(cut);
    entries.retain(|_, c| c.used > oldest_kept_bound);
}

/// The snapshot follower's handler: a stream version that is a multiple
/// of `every` folds the stream to it, storing the snapshot.
#[derive(Debug)]
pub struct SnapshotFollower<R> {
    store: Store,
    rules: R,
    every: u64,
    /// Snapshots taken (for tests and logs).
    pub taken: u64,
}

impl<R: FoldRulesSource> SnapshotFollower<R> {
    pub fn new(store: Store, rules: R, every: u64) -> Self {
        SnapshotFollower {
            store,
            rules,
            every,
            taken: 0,
        }
    }

    /// One batch of the commit log after the cursor.
    pub async fn step(&mut self, follower: &CommitLogFollower) -> Result<Follow, StoreError> {
        follower.step(self).await
    }

    /// Steps until stopped: woken after commits, or every `idle`.
    pub async fn run(
        mut self,
        follower: CommitLogFollower,
        wake: Arc<Notify>,
        idle: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        if self.every == 0 {
            return;
        }
        loop {
            if *stop.borrow() {
                return;
            }
            match self.step(&follower).await {
                Ok(Follow::Handled { .. }) => continue,
                Ok(Follow::Caught) => {}
                Err(StoreError::Closed) => return,
                Err(StoreError::Conflict(ConflictReason::CursorMoved { .. })) => continue,
                Err(e) => tracing::warn!(error = %e, "projection snapshot step failed; retrying"),
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(idle) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

impl<R: FoldRulesSource> CommitLogHandler for SnapshotFollower<R> {
    type Error = StoreError;

    async fn handle(&mut self, events: &[SequencedEvent]) -> Result<(), StoreError> {
        if self.every == 0 {
            return Ok(());
        }
        for e in events {
            let Some((stream_id, version)) = &e.stream else {
                continue;
            };
            if version % self.every != 0 {
                continue;
            }
            let Ok(tenant) = TenantId::parse(&e.tenant_id) else {
                continue;
            };
            let folds = self.rules.folds(&tenant).await?;
            self.store
                .project(
                    &tenant,
                    stream_id,
                    ProjectionAt::Version(*version),
                    &folds.with_snapshots(self.every),
                )
                .await?;
            self.taken += 1;
        }
        Ok(())
    }
}
