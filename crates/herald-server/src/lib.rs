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
pub mod routes;
pub mod settings;
pub mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use herald_core::{EmailHasher, EventProcessor, Limits, TenantId};
use herald_registry::{Registry, ValidatorCache};
use herald_store::{Store, StoreError, TenantSettings};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

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
}

impl App {
    /// The tenant's context, loaded from the store on first use.
    pub async fn tenant_context(
        &self,
        tenant: &TenantId,
    ) -> Result<Arc<TenantContext>, StoreError> {
        if let Some(ctx) = self.lock_tenants().get(tenant) {
            return Ok(ctx.clone());
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
        }))
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
    let store = match app.store {
        Store::Sqlite(_) => "sqlite",
    };
    axum::Json(
        serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION"), "store": store }),
    )
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

/// Builds the state: opens the store, settles the root key and hash secret.
pub fn build(config: Config) -> Result<App, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServerError::Io(format!(
            "cannot create data dir {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let root_key = match &config.root_key {
        Some(k) => k.0.clone(),
        None => {
            let (key, created) = persistent_secret(&config.data_dir, "root.key", || {
                format!("hk_root_{}", auth::random_hex(32))
            })?;
            if created {
                // Printed once, on the run that created it; the file keeps it.
                #[allow(clippy::print_stdout)]
                {
                    println!(
                        "Generated root key (shown once; also kept in {} with mode 0600):\n  {key}",
                        config.data_dir.join("root.key").display()
                    );
                }
            }
            key
        }
    };
    let hash_secret = match &config.hash_secret {
        Some(s) => s.0.clone(),
        None => persistent_secret(&config.data_dir, "hash.key", || auth::random_hex(32))?.0,
    };
    let store = Store::open_sqlite(
        &config.data_dir,
        herald_store::sqlite::SqliteOptions {
            synchronous_full: config.sync_full,
            ..Default::default()
        },
    )?;
    let processor = EventProcessor {
        limits: Limits {
            max_event_bytes: config.max_event_bytes,
            ..Limits::default()
        },
        ..EventProcessor::default()
    };
    let max_inflight = config.max_inflight_events;
    Ok(App {
        config: Arc::new(config),
        store,
        processor: Arc::new(processor),
        keys: Arc::default(),
        root_key_hash: auth::hash_secret(&root_key),
        hash_secret: Arc::new(hash_secret.into_bytes()),
        tenants: Arc::default(),
        validators: Arc::new(ValidatorCache::new()),
        registry_writes: Arc::default(),
        worker_wake: Arc::new(Notify::new()),
        admission: admission::Admission::new(max_inflight, Duration::from_millis(200)),
    })
}

/// Serves until `shutdown` resolves, then stops accepting, finishes
/// in-flight requests and their commits, stops the worker and closes the store.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let app = build(config)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = worker::StatusWorker {
        store: app.store.clone(),
        batch: 500,
    };
    let worker_task = tokio::spawn(worker.run(
        app.worker_wake.clone(),
        Duration::from_millis(app.config.worker_idle_ms),
        stop_rx,
    ));
    let store = app.store.clone();
    tracing::info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "herald listening");
    let served = axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await;
    let _ = stop_tx.send(true);
    let _ = worker_task.await;
    store.close().await;
    tracing::info!("herald stopped");
    served.map_err(|e| ServerError::Io(e.to_string()))
}
