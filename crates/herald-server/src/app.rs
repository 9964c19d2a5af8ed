//! The state every handler shares ([`App`]) and the per-tenant context
//! cache: the email hasher, registry snapshot, settings and processor of
//! each tenant, derived once and rebuilt when the tenant's definitions or
//! settings change (on a shared store, also when another instance changed
//! them).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_core::{Clock, EmailHasher, EventProcessor, IdSource, TenantId};
use herald_registry::{Registry, ValidatorCache};
use herald_store::{Store, StoreError, TenantSettings};
use herald_workers::projections::{FoldRulesSource, ProjectionCache, TenantFolds};
use herald_workers::publish::PublisherStatus;
use tokio::sync::Notify;

use crate::config::Config;
use crate::http::admission::Admission;
use crate::http::auth::KeyCache;
use crate::http::body::BodyLimits;
use crate::http::problem::ApiError;

/// Shared state of one running server.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    /// The rules every tenant starts from (limits, redaction); each
    /// tenant's processor adds its registry and validation mode.
    pub processor: Arc<EventProcessor>,
    pub keys: Arc<KeyCache>,
    pub root_key_hash: [u8; 32],
    pub(crate) hash_secret: Arc<Vec<u8>>,
    pub(crate) tenants: Arc<Mutex<HashMap<TenantId, Arc<TenantContext>>>>,
    /// Compiled payload schemas of every tenant, by (tenant, definition, version).
    pub validators: Arc<ValidatorCache>,
    /// Serialises definition and settings writes with the rebuild of the
    /// tenant context that follows, so a rebuild never installs a snapshot
    /// older than the last write.
    pub(crate) registry_writes: Arc<tokio::sync::Mutex<()>>,
    pub worker_wake: Arc<Notify>,
    /// Woken after each commit that stored events, so they go out at once.
    pub publisher_wake: Arc<Notify>,
    /// Woken after each commit that stored events, so the delivery
    /// fan-out matches them at once.
    pub fan_out_wake: Arc<Notify>,
    /// Wakes the delivery worker: after the fan-out stored deliveries, and
    /// after a redrive or recover re-queued some, so they go out at once.
    pub delivery_wake: Arc<Notify>,
    /// Woken when a replay is stored, so the replay worker starts on it.
    pub replay_wake: Arc<Notify>,
    /// The live tail's hub: one commit-log reader fanning new events out
    /// to every tail client (`api/tail.rs`).
    pub tail: herald_workers::tail::TailHub,
    /// The NATS publisher's state, when `HERALD_NATS_URL` is set.
    pub publisher: Option<Arc<PublisherStatus>>,
    pub admission: Admission,
    /// The size limit of each kind of JSON body.
    pub body_limits: BodyLimits,
    /// What time it is: every timestamp the server writes comes from here.
    pub clock: Arc<dyn Clock>,
    /// Mints the ids of accepted events.
    pub ids: Arc<dyn IdSource>,
    /// Current projections, never served stale.
    pub projections: Arc<ProjectionCache>,
    /// Woken after each commit that stored events, so the snapshot
    /// follower keeps up.
    pub snapshot_wake: Arc<Notify>,
    /// Wakes the wait matcher (after a local commit).
    pub waits_wake: Arc<Notify>,
    /// Wakes the wait callback worker (a wait ended here).
    pub wait_callback_wake: Arc<Notify>,
    /// Bumped whenever a wait ends on this instance: long polls watch it.
    pub wait_ends: tokio::sync::watch::Sender<u64>,
    /// Collection's trusted proxies, client-address policy and rate limits.
    pub collect: Arc<crate::api::collect::CollectState>,
    /// This server's Prometheus recorder (`GET /metrics`).
    pub metrics: crate::http::metrics::Metrics,
    /// Where request outcomes go to become self events; `None` when
    /// `self_events` is off.
    pub self_events: Option<crate::self_events::SelfEvents>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Per-tenant values derived once and reused until the tenant's
/// definitions or settings change (on this instance).
#[derive(Debug)]
pub struct TenantContext {
    pub hasher: EmailHasher,
    /// The tenant's definitions (and the built-ins) as one snapshot.
    pub registry: Arc<Registry>,
    pub settings: TenantSettings,
    /// The base processor with this tenant's registry and validation mode.
    pub processor: EventProcessor,
    /// The registry's fold rules, for projections.
    pub folds: TenantFolds,
    /// The store's revision of the tenant's definitions and settings when
    /// this context was loaded (shared stores only).
    revision: Option<i64>,
    /// When the revision was last compared with the store's.
    checked_at: Mutex<Instant>,
}

impl TenantContext {
    /// A filter's ids and field values as this tenant stores them (an
    /// email becomes `email_hash:<hash>`, a card number is masked), so a
    /// filter finds events by the values they were sent with. An
    /// `email_hash` key is a hash already.
    pub fn filter_as_stored(&self, filter: &mut herald_core::filter::EventFilter) {
        let stored = |v: &mut String| *v = self.processor.redaction.stored_text(v, &self.hasher);
        for (k, v) in &mut filter.keys {
            if *k != herald_core::correlation::CorrelationKey::EmailHash {
                stored(v);
            }
        }
        for f in &mut filter.fields {
            stored(&mut f.value);
        }
    }

    /// Whether `every` has passed since the last check; if so, the caller
    /// checks now (and others wait for the next period).
    fn due_for_check(&self, every: Duration) -> bool {
        let mut at = self.checked_at.lock().unwrap_or_else(|p| p.into_inner());
        if at.elapsed() < every {
            return false;
        }
        *at = Instant::now();
        true
    }
}

impl App {
    /// The tenant's context, loaded from the store on first use. On a
    /// shared store it is reloaded when another instance changed the
    /// tenant's definitions or settings (checked at most every
    /// `registry_refresh_ms`).
    pub async fn tenant_context(
        &self,
        tenant: &TenantId,
    ) -> Result<Arc<TenantContext>, StoreError> {
        let cached = self.lock_tenants().get(tenant).cloned();
        if let Some(ctx) = cached {
            let every = Duration::from_millis(self.config.registry_refresh_ms);
            if ctx.revision.is_none() || !ctx.due_for_check(every) {
                return Ok(ctx);
            }
            if self.store.tenant_revision(tenant).await? == ctx.revision {
                return Ok(ctx);
            }
            let fresh = self.load_tenant(tenant).await?;
            let mut tenants = self.lock_tenants();
            let slot = tenants
                .entry(tenant.clone())
                .or_insert_with(|| fresh.clone());
            // Never replace a newer snapshot (a concurrent change here).
            if slot.revision <= fresh.revision {
                *slot = fresh;
            }
            return Ok(slot.clone());
        }
        let loaded = self.load_tenant(tenant).await?;
        // A rebuild that raced ahead of this load is newer: keep it.
        Ok(self
            .lock_tenants()
            .entry(tenant.clone())
            .or_insert(loaded)
            .clone())
    }

    /// Runs `write`, then rebuilds the tenant's context from the store, all
    /// under the registry write lock: ingest sees the change as soon as the
    /// write is acknowledged.
    pub async fn change_tenant<T, F, Fut>(&self, tenant: &TenantId, write: F) -> Result<T, ApiError>
    where
        F: FnOnce(Arc<TenantContext>) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let _guard = self.registry_writes.lock().await;
        let before = self.tenant_context(tenant).await?;
        let out = write(before).await;
        // Rebuilt even after a failed write: the store may have moved on.
        let fresh = self.load_tenant(tenant).await?;
        self.lock_tenants().insert(tenant.clone(), fresh);
        out
    }

    async fn load_tenant(&self, tenant: &TenantId) -> Result<Arc<TenantContext>, StoreError> {
        // Read before the definitions: a change racing this load moves the
        // revision past the one recorded, so the next check reloads.
        let revision = self.store.tenant_revision(tenant).await?;
        let definitions = self.store.definitions(tenant).await?;
        let settings = self.store.get_settings(tenant).await?;
        let registry = Arc::new(Registry::build(
            tenant.clone(),
            definitions,
            self.validators.clone(),
        ));
        let processor = EventProcessor {
            vocabulary: registry.clone(),
            mode: settings.validation_mode,
            ..(*self.processor).clone()
        };
        let folds = TenantFolds {
            fingerprint: registry.fold_rules_fingerprint(),
            fold_for: {
                let registry = registry.clone();
                Arc::new(move |t: &str| registry.fold_for(t))
            },
        };
        Ok(Arc::new(TenantContext {
            hasher: EmailHasher::for_tenant(&self.hash_secret, tenant),
            folds,
            registry,
            settings,
            processor,
            revision,
            checked_at: Mutex::new(Instant::now()),
        }))
    }

    /// After a commit that stored events: wake the processing worker, the
    /// publisher, the delivery fan-out and the live tail.
    pub fn after_commit(&self) {
        self.worker_wake.notify_one();
        self.publisher_wake.notify_one();
        self.fan_out_wake.notify_one();
        self.snapshot_wake.notify_one();
        self.waits_wake.notify_one();
        self.tail.wake();
    }

    /// The NATS publisher's cursor name (for its lag).
    pub fn publisher_cursor(&self) -> String {
        herald_workers::publish::cursor_name(&self.config.nats_stream)
    }

    /// Tells long polls and the callback worker that a wait ended here.
    pub fn wait_ended(&self) {
        self.wait_ends.send_modify(|n| *n = n.wrapping_add(1));
        self.wait_callback_wake.notify_one();
    }

    fn lock_tenants(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Arc<TenantContext>>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The snapshot follower reads each tenant's fold rules from its context.
impl FoldRulesSource for App {
    async fn folds(&self, tenant: &TenantId) -> Result<TenantFolds, StoreError> {
        Ok(self.tenant_context(tenant).await?.folds.clone())
    }
}
