//! Herald's HTTP server. [`run`] takes a bound listener, a validated
//! [`Config`] and a shutdown future, so the binary only parses flags and
//! binds, and tests bind port 0 (mini-redis style).

pub mod admin;
pub mod admission;
pub mod audit;
pub mod auth;
pub mod body;
pub mod config;
pub mod definitions;
pub mod events;
pub mod openapi;
pub mod params;
pub mod problem;
pub mod publish;
pub mod routes;
pub mod settings;
pub mod worker;

use std::collections::HashMap;
use std::future::{Future, IntoFuture};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use herald_core::{EmailHasher, EventProcessor, Limits, TenantId};
use herald_registry::{Registry, ValidatorCache};
use herald_store::{Store, StoreError, TenantSettings};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};

pub use config::Config;

/// Shared state of one running server.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    /// The rules every tenant starts from (limits, redaction); each
    /// tenant's processor adds its registry and validation mode.
    pub processor: Arc<EventProcessor>,
    pub keys: Arc<auth::KeyCache>,
    pub root_key_hash: [u8; 32],
    hash_secret: Arc<Vec<u8>>,
    tenants: Arc<Mutex<HashMap<TenantId, Arc<TenantContext>>>>,
    /// Compiled payload schemas of every tenant, by (tenant, definition, version).
    pub validators: Arc<ValidatorCache>,
    /// Serialises definition and settings writes with the rebuild of the
    /// tenant context that follows, so a rebuild never installs a snapshot
    /// older than the last write.
    registry_writes: Arc<tokio::sync::Mutex<()>>,
    pub worker_wake: Arc<Notify>,
    /// Woken after each commit that stored events, so they go out at once.
    pub publisher_wake: Arc<Notify>,
    /// The NATS publisher's state, when `HERALD_NATS_URL` is set.
    pub publisher: Option<Arc<publish::PublisherStatus>>,
    pub admission: admission::Admission,
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
    /// The store's revision of the tenant's definitions and settings when
    /// this context was loaded (shared stores only).
    revision: Option<i64>,
    /// When the revision was last compared with the store's.
    checked_at: Mutex<Instant>,
}

impl TenantContext {
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
    pub async fn change_tenant<T, F, Fut>(
        &self,
        tenant: &TenantId,
        write: F,
    ) -> Result<T, problem::ApiError>
    where
        F: FnOnce(Arc<TenantContext>) -> Fut,
        Fut: Future<Output = Result<T, problem::ApiError>>,
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
        Ok(Arc::new(TenantContext {
            hasher: EmailHasher::for_tenant(&self.hash_secret, tenant),
            registry,
            settings,
            processor,
            revision,
            checked_at: Mutex::new(Instant::now()),
        }))
    }

    /// After a commit that stored events: wake the status worker and the
    /// publisher.
    pub fn after_commit(&self) {
        self.worker_wake.notify_one();
        self.publisher_wake.notify_one();
    }

    fn lock_tenants(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Arc<TenantContext>>> {
        self.tenants.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

pub fn router(app: App) -> Router {
    routes::mount()
        .fallback(|| async {
            problem::ApiError::not_found("no such route; see GET /api/openapi.json")
        })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            audit::middleware,
        ))
        // Bodies are read with their own limits (body.rs) to answer 413 as problem+json.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}

async fn health(
    axum::extract::State(app): axum::extract::State<App>,
) -> axum::Json<serde_json::Value> {
    let mut body = serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "store": app.store.kind(),
    });
    if let Some(p) = &app.publisher {
        body["nats"] = serde_json::json!({
            "connected": p.connected(),
            "published": p.published.load(std::sync::atomic::Ordering::Relaxed),
            "last_error": p.error(),
        });
    }
    axum::Json(body)
}

/// Reads a generated secret from `dir/name`, or creates it (0600) with
/// `make`. Returns the secret and whether it was just created.
fn persistent_secret(
    dir: &Path,
    name: &str,
    make: impl FnOnce() -> String,
) -> Result<(String, bool), ServerError> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok((s.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(ServerError::Io(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    }
    let secret = make();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    use std::io::Write;
    let mut file = options
        .open(&path)
        .map_err(|e| ServerError::Io(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(secret.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| ServerError::Io(format!("cannot write {}: {e}", path.display())))?;
    Ok((secret, true))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Prints a generated root key, once, on the run that created it.
#[allow(clippy::print_stdout)]
fn announce_root_key(key: &str, file: &Path) {
    println!(
        "Generated root key (shown once; also kept in {} with mode 0600):\n  {key}",
        file.display()
    );
}

/// The root key's SHA-256. Configured, or generated once: into the data dir
/// for the embedded store; for a shared store, generated by the first
/// instance and its hash kept in the database for the others.
async fn settle_root_key(config: &Config, store: &Store) -> Result<[u8; 32], ServerError> {
    if let Some(k) = &config.root_key {
        return Ok(auth::hash_secret(&k.0));
    }
    let file = config.data_dir.join("root.key");
    if !store.is_shared() {
        let (key, created) = persistent_secret(&config.data_dir, "root.key", || {
            format!("hk_root_{}", auth::random_hex(32))
        })?;
        if created {
            announce_root_key(&key, &file);
        }
        return Ok(auth::hash_secret(&key));
    }
    let local = std::fs::read_to_string(&file)
        .ok()
        .map(|s| s.trim().to_string());
    let candidate = local
        .clone()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| format!("hk_root_{}", auth::random_hex(32)));
    let (stored, created) = store
        .shared_secret("root_key_sha256", &hex(&auth::hash_secret(&candidate)))
        .await?
        .ok_or_else(|| ServerError::Io("shared store without shared secrets".into()))?;
    if created && local.is_none() {
        persistent_secret(&config.data_dir, "root.key", || candidate.clone())?;
        announce_root_key(&candidate, &file);
    } else if !created {
        tracing::info!(
            "root key: the one the first instance on this database generated (printed once there, kept in its data dir); set HERALD_ROOT_KEY to choose your own"
        );
    }
    unhex32(&stored).ok_or_else(|| ServerError::Io("stored root key hash is corrupt".into()))
}

/// The key of the per-tenant email hashes: configured, or generated once
/// (data dir; or the database, shared by every instance).
async fn settle_hash_secret(config: &Config, store: &Store) -> Result<String, ServerError> {
    if let Some(s) = &config.hash_secret {
        return Ok(s.0.clone());
    }
    let (local, _) = persistent_secret(&config.data_dir, "hash.key", || auth::random_hex(32))?;
    if !store.is_shared() {
        return Ok(local);
    }
    Ok(store
        .shared_secret("hash_secret", &local)
        .await?
        .map(|(s, _)| s)
        .unwrap_or(local))
}

/// Opens the configured store: PostgreSQL when `database_url` is set, else
/// the embedded SQLite in the data dir.
async fn open_store(config: &Config) -> Result<Store, ServerError> {
    Ok(match &config.database_url {
        Some(url) => {
            Store::open_postgres(
                herald_store::postgres::PgOptions {
                    schema: config.database_schema.clone(),
                    pool_size: config.database_pool_size,
                    ..herald_store::postgres::PgOptions::new(&url.0)
                },
                time::OffsetDateTime::now_utc(),
            )
            .await?
        }
        None => Store::open_sqlite(
            &config.data_dir,
            herald_store::sqlite::SqliteOptions {
                synchronous_full: config.sync_full,
                ..Default::default()
            },
        )?,
    })
}

/// Builds the state: opens the store, settles the root key and hash
/// secret, and prepares the NATS publisher when one is configured.
pub async fn build(config: Config) -> Result<(App, Option<publish::Publisher>), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServerError::Io(format!(
            "cannot create data dir {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let store = open_store(&config).await?;
    let root_key_hash = settle_root_key(&config, &store).await?;
    let hash_secret = settle_hash_secret(&config, &store).await?;
    let publisher = match &config.nats_url {
        Some(url) => Some(
            publish::Publisher::connect(
                store.clone(),
                publish::NatsSettings {
                    url: url.clone(),
                    stream: config.nats_stream.clone(),
                    subject_prefix: config.nats_subject_prefix.clone(),
                    max_age: (config.nats_max_age_secs > 0)
                        .then(|| Duration::from_secs(config.nats_max_age_secs)),
                    max_bytes: (config.nats_max_bytes > 0).then_some(config.nats_max_bytes as i64),
                    duplicate_window: Duration::from_secs(config.nats_duplicate_window_secs),
                },
            )
            .await
            .map_err(|e| ServerError::Io(e.to_string()))?,
        ),
        None => None,
    };
    let processor = EventProcessor {
        limits: Limits {
            max_event_bytes: config.max_event_bytes,
            ..Limits::default()
        },
        ..EventProcessor::default()
    };
    let max_inflight = config.max_inflight_events;
    let app = App {
        config: Arc::new(config),
        store,
        processor: Arc::new(processor),
        keys: Arc::default(),
        root_key_hash,
        hash_secret: Arc::new(hash_secret.into_bytes()),
        tenants: Arc::default(),
        validators: Arc::new(ValidatorCache::new()),
        registry_writes: Arc::default(),
        worker_wake: Arc::new(Notify::new()),
        publisher_wake: Arc::new(Notify::new()),
        publisher: publisher.as_ref().map(|p| p.status.clone()),
        admission: admission::Admission::new(max_inflight, Duration::from_millis(200)),
    };
    Ok((app, publisher))
}

/// Serves until `shutdown` resolves, then stops accepting, finishes
/// in-flight requests and their commits, stops the worker and closes the store.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let (app, publisher) = build(config).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = worker::StatusWorker {
        store: app.store.clone(),
        batch: 500,
        lifecycle: publisher.is_some(),
    };
    let idle = Duration::from_millis(app.config.worker_idle_ms);
    let mut tasks = vec![
        tokio::spawn(worker.run(app.worker_wake.clone(), idle, stop_rx.clone())),
        tokio::spawn(worker::maintain(
            app.store.clone(),
            Duration::from_secs(3600),
            stop_rx.clone(),
        )),
    ];
    if let Some(p) = publisher {
        tasks.push(tokio::spawn(p.run(
            app.publisher_wake.clone(),
            idle.min(Duration::from_millis(200)),
            stop_rx,
        )));
    }
    let store = app.store.clone();
    let grace = Duration::from_secs(app.config.shutdown_grace_secs);
    tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "herald listening");
    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    let serve = axum::serve(listener, router(app))
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stopping_tx.send(());
        })
        .into_future();
    // A client that never finishes its request must not hold the process
    // up forever: after the grace period its connection is closed. Nothing
    // it sent was acknowledged, so nothing acknowledged is lost.
    let deadline = async move {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = serve => served,
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still in flight after the shutdown grace period; closing their connections");
            Ok(())
        }
    };
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    store.close().await;
    tracing::info!("herald stopped");
    served.map_err(|e| ServerError::Io(e.to_string()))
}
