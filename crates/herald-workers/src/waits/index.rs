//! The open waits in memory, indexed by tenant and event type, so a stored
//! event is checked only against the waits that could match it: its exact
//! type's bucket and the tenant's patterns that match its type (each
//! distinct pattern tested once per event).
//!
//! The index holds exactly the open waits with `created_seq` below
//! `loaded_through` (less those it saw end). Before matching events up to
//! `seq` L it loads the waits with `loaded_through <= created_seq < L`;
//! a wait stored before event L committed has `created_seq < L` and is
//! visible by then (the store reads `created_seq` under the commit
//! order), and a wait with a larger one cannot match any event up to L.
//! So each wait is loaded once, however many instances store waits;
//! a periodic prune by id forgets those that ended elsewhere.

use std::collections::HashMap;

use herald_core::CanonicalEvent;
use herald_filter::{Binding, EventView, Filter};
use herald_registry::TypePattern;
use herald_store::{Store, StoreError, Wait};
use serde_json::json;

/// The name a wait's filter reads the wait by: `wait.context.order_id`.
pub const WAIT_VARIABLE: &str = "wait";

/// A wait ready to match events: its alternatives compiled, its `wait`
/// variable converted once.
#[derive(Debug)]
pub struct CompiledWait {
    pub wait_id: String,
    pub created_seq: i64,
    timeout_nanos: i128,
    alternatives: Vec<(TypePattern, Option<Filter>)>,
    binding: Binding,
}

impl CompiledWait {
    /// `None` (and a warning) when a stored alternative no longer parses:
    /// such a wait matches nothing (it still times out or is cancelled).
    /// `filters` shares one compiled program among waits with the same
    /// filter text.
    pub fn of(wait: &Wait, filters: &mut HashMap<String, Filter>) -> Option<CompiledWait> {
        let mut alternatives = Vec::with_capacity(wait.spec.any_of.len());
        for alt in &wait.spec.any_of {
            let Ok(pattern) = TypePattern::parse(&alt.event_type) else {
                tracing::warn!(wait_id = %wait.wait_id, "stored wait's event type does not parse; it matches nothing");
                return None;
            };
            let filter = match &alt.filter {
                None => None,
                Some(src) => match filters.get(src) {
                    Some(f) => Some(f.clone()),
                    None => match Filter::compile_with(src, &[WAIT_VARIABLE]) {
                        Ok(f) => {
                            filters.insert(src.clone(), f.clone());
                            Some(f)
                        }
                        Err(e) => {
                            tracing::warn!(wait_id = %wait.wait_id, error = %e, "stored wait's filter does not compile; it matches nothing");
                            return None;
                        }
                    },
                },
            };
            alternatives.push((pattern, filter));
        }
        Some(CompiledWait {
            wait_id: wait.wait_id.clone(),
            created_seq: wait.created_seq,
            timeout_nanos: wait.timeout_at.unix_nanos(),
            alternatives,
            binding: Binding::json(
                WAIT_VARIABLE,
                &json!({
                    "wait_id": wait.wait_id,
                    "workflow_instance_id": wait.workflow_instance_id,
                    "context": wait.spec.context,
                }),
            ),
        })
    }

    /// Whether `event` (stored at `seq`) resolves this wait: stored after
    /// the wait (`seq > created_seq`, unless `lookback` says the caller
    /// checked that), before its timeout, and matched by the first of its
    /// alternatives whose type matches and whose filter holds. A filter
    /// that fails to evaluate is no match and adds one to `errors`.
    pub fn resolves(&self, view: &EventView<'_>, errors: &mut u64) -> bool {
        let event: &CanonicalEvent = view.event();
        if event.processing_timestamp.unix_nanos() >= self.timeout_nanos {
            return false;
        }
        let event_type = event.event_type.as_str();
        for (pattern, filter) in &self.alternatives {
            if !pattern.matches(event_type) {
                continue;
            }
            match filter {
                None => return true,
                Some(f) => match f.matches_with(view, &self.binding) {
                    Ok(true) => return true,
                    Ok(false) => {}
                    Err(e) => {
                        *errors += 1;
                        tracing::debug!(wait_id = %self.wait_id, error = %e, "wait filter failed to evaluate: no match");
                    }
                },
            }
        }
        false
    }

    /// Whether any alternative's type or pattern takes `event_type`.
    pub fn takes_type(&self, event_type: &str) -> bool {
        self.alternatives.iter().any(|(p, _)| p.matches(event_type))
    }
}

/// One tenant's open waits by exact type and by pattern.
#[derive(Debug, Default)]
struct TenantWaits {
    exact: HashMap<String, Vec<u64>>,
    patterns: HashMap<String, (TypePattern, Vec<u64>)>,
}

/// The open waits of every tenant, by type.
#[derive(Debug, Default)]
pub struct WaitIndex {
    /// Every open wait with `created_seq` below this is loaded.
    loaded_through: i64,
    waits: HashMap<u64, CompiledWait>,
    keys: HashMap<String, u64>,
    next_key: u64,
    tenants: HashMap<String, TenantWaits>,
    filters: HashMap<String, Filter>,
    /// Bucket entries whose wait was removed (dropped lazily).
    stale: usize,
    /// Stored waits that do not compile (they match nothing).
    pub unreadable: u64,
}

impl WaitIndex {
    /// How many open waits it holds.
    pub fn len(&self) -> usize {
        self.waits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waits.is_empty()
    }

    /// Loads the open waits with `loaded_through <= created_seq < before`.
    pub async fn load(&mut self, store: &Store, before: i64) -> Result<(), StoreError> {
        if before <= self.loaded_through {
            return Ok(());
        }
        for wait in store.open_waits(self.loaded_through, before).await? {
            self.add(&wait);
        }
        self.loaded_through = before;
        Ok(())
    }

    /// Forgets the waits that ended elsewhere (timed out, cancelled,
    /// resolved by another instance): keeps only those the store still
    /// has open, by id, and loads up to `before` as [`Self::load`] does.
    pub async fn prune(&mut self, store: &Store, before: i64) -> Result<(), StoreError> {
        let open: std::collections::HashSet<String> = store
            .open_wait_ids(self.loaded_through)
            .await?
            .into_iter()
            .collect();
        let ended: Vec<String> = self
            .keys
            .keys()
            .filter(|id| !open.contains(*id))
            .cloned()
            .collect();
        for id in ended {
            self.remove(&id);
        }
        self.load(store, before).await
    }

    fn add(&mut self, wait: &Wait) {
        if self.keys.contains_key(&wait.wait_id) {
            return;
        }
        let Some(compiled) = CompiledWait::of(wait, &mut self.filters) else {
            self.unreadable += 1;
            return;
        };
        let key = self.next_key;
        self.next_key += 1;
        let tenant = self.tenants.entry(wait.tenant_id.to_string()).or_default();
        for (pattern, _) in &compiled.alternatives {
            if pattern.is_pattern() {
                tenant
                    .patterns
                    .entry(pattern.as_str().to_string())
                    .or_insert_with(|| (pattern.clone(), Vec::new()))
                    .1
                    .push(key);
            } else {
                tenant
                    .exact
                    .entry(pattern.as_str().to_string())
                    .or_default()
                    .push(key);
            }
        }
        self.keys.insert(wait.wait_id.clone(), key);
        self.waits.insert(key, compiled);
    }

    /// Forgets a wait that ended.
    pub fn remove(&mut self, wait_id: &str) {
        if let Some(key) = self.keys.remove(wait_id)
            && let Some(w) = self.waits.remove(&key)
        {
            self.stale += w.alternatives.len();
        }
        if self.stale > 1_024 && self.stale > self.waits.len() {
            self.compact();
        }
    }

    /// Drops bucket entries of removed waits, and emptied buckets.
    fn compact(&mut self) {
        let live = &self.waits;
        for tenant in self.tenants.values_mut() {
            tenant.exact.retain(|_, keys| {
                keys.retain(|k| live.contains_key(k));
                !keys.is_empty()
            });
            tenant.patterns.retain(|_, (_, keys)| {
                keys.retain(|k| live.contains_key(k));
                !keys.is_empty()
            });
        }
        self.tenants
            .retain(|_, t| !t.exact.is_empty() || !t.patterns.is_empty());
        self.stale = 0;
    }

    /// The open waits of `tenant` whose types could take `event_type` and
    /// that were stored before `seq`, each once, in key (load) order.
    pub fn candidates(&self, tenant: &str, event_type: &str, seq: i64) -> Vec<&CompiledWait> {
        let Some(t) = self.tenants.get(tenant) else {
            return Vec::new();
        };
        let mut keys: Vec<u64> = t.exact.get(event_type).cloned().unwrap_or_default();
        for (pattern, bucket) in t.patterns.values() {
            if pattern.matches(event_type) {
                keys.extend_from_slice(bucket);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys.iter()
            .filter_map(|k| self.waits.get(k))
            .filter(|w| w.created_seq < seq)
            .collect()
    }
}
