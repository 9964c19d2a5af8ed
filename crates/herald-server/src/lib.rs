//! Herald's HTTP edge. [`run`] takes a bound listener, a validated
//! [`Config`] and a shutdown future, so the binary only parses flags and
//! binds, and tests bind port 0 (mini-redis style). The plumbing every
//! route shares is in [`http`], one module per resource in [`api`], the
//! shared state in [`app`], first-start secrets in [`bootstrap`]; the
//! background work is `herald-workers`, which [`run`] only spawns.

pub mod api;
pub mod app;
pub mod bootstrap;
pub mod config;
pub mod http;
pub mod self_events;

use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use herald_core::{Clock, EventProcessor, Limits, SystemClock, UuidV7Ids};
use herald_registry::ValidatorCache;
use herald_store::StoreError;
use herald_workers::delivery::http::HttpSender;
use herald_workers::delivery::schedule::SeededJitter;
use herald_workers::delivery::worker::DeliveryWorker;
use herald_workers::fanout::{FAN_OUT_CURSOR, FanOut};
use herald_workers::follower::CommitLogFollower;
use herald_workers::processors::worker::ProcessingWorker;
use herald_workers::projections::{ProjectionCache, SNAPSHOT_CURSOR, SnapshotFollower};
use herald_workers::publish::{self, Publisher};
use herald_workers::replay::ReplayWorker;
use herald_workers::rollups::RollupWorker;
use herald_workers::upkeep::Upkeep;
use herald_workers::waits::callback::WaitCallbacks;
use herald_workers::waits::{WAITS_CURSOR, WaitMatcher, WaitTimeouts};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot, watch};

use crate::http::admission::Admission;
use crate::http::body::BodyLimits;

pub use app::{App, TenantContext};
pub use config::Config;

/// Why the server could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(String),
}

/// Every route of [`http::routes::ROUTES`] with the fallback, audit and
/// body-limit layers, over `app`.
pub fn router(app: App) -> Router {
    http::routes::mount()
        .fallback(|| async {
            http::problem::ApiError::not_found("no such route; see GET /api/openapi.json")
        })
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            http::audit::middleware,
        ))
        // Bodies are read with their own limits (body.rs) to answer 413 as problem+json.
        .layer(DefaultBodyLimit::disable())
        // For layers that run outside a handler's state (collection's CORS).
        .layer(axum::Extension(app.clone()))
        .with_state(app)
}

/// Builds the state: opens the store, settles the root key and hash
/// secret, and prepares the NATS publisher when one is configured.
pub async fn build(config: Config) -> Result<(App, Option<Publisher>), ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        ServerError::Io(format!(
            "cannot create data dir {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = bootstrap::open_store(&config, clock.now()).await?;
    let root_key_hash = bootstrap::settle_root_key(&config, &store).await?;
    let hash_secret = bootstrap::settle_hash_secret(&config, &store).await?;
    let publisher = match &config.nats_url {
        Some(url) => Some(
            Publisher::connect(
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
    let tail = herald_workers::tail::TailHub::start(
        store.clone(),
        api::tail::render,
        config.tail_buffer_events,
    )
    .await?;
    let max_inflight = config.max_inflight_events;
    let config_cache_entries = config.projection_cache_entries;
    let body_limits = BodyLimits::from_config(&config);
    let collect = Arc::new(api::collect::CollectState::new(&config));
    let metrics = http::metrics::Metrics::new();
    store.observe_commits(Arc::new(metrics.clone()));
    let self_events = config
        .self_events
        .then(|| self_events::SelfEvents::new(config.self_events_buffer, metrics.clone()));
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
        fan_out_wake: Arc::new(Notify::new()),
        delivery_wake: Arc::new(Notify::new()),
        replay_wake: Arc::new(Notify::new()),
        tail,
        publisher: publisher.as_ref().map(|p| p.status.clone()),
        admission: Admission::new(max_inflight, Duration::from_millis(200)),
        body_limits,
        clock,
        ids: Arc::new(UuidV7Ids::new()),
        projections: Arc::new(ProjectionCache::new(config_cache_entries)),
        snapshot_wake: Arc::new(Notify::new()),
        waits_wake: Arc::new(Notify::new()),
        wait_callback_wake: Arc::new(Notify::new()),
        wait_ends: watch::channel(0).0,
        collect,
        metrics,
        self_events,
    };
    if app.self_events.is_some() {
        self_events::ensure_operator_tenant(&app).await?;
    }
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
    let allowed = app
        .config
        .allowed_networks()
        .map_err(|e| ServerError::Io(format!("delivery_allowed_networks: {e}")))?;
    let sender: Arc<HttpSender> = Arc::new(
        HttpSender::new(allowed)
            .map_err(|e| ServerError::Io(format!("webhook HTTP client: {e}")))?,
    );
    // Jitter only spreads retries out; the seed need not be secret.
    let seed = app.clock.now().unix_nanos() as u64;
    // Processing: every event's lifecycle, and the processors that match it.
    let worker = ProcessingWorker::new(
        app.store.clone(),
        app.clock.clone(),
        sender.clone(),
        Box::new(SeededJitter::new(seed ^ 0x9e37_79b9)),
    )
    .with_nats(publisher.as_ref().map(|p| p.status.clone()))
    .publishing_lifecycle(publisher.is_some());
    let idle = Duration::from_millis(app.config.worker_idle_ms);
    let mut tasks = vec![
        tokio::spawn(worker.run(
            app.worker_wake.clone(),
            idle.min(Duration::from_secs(1)),
            stop_rx.clone(),
        )),
        tokio::spawn(
            Upkeep {
                store: app.store.clone(),
                clock: app.clock.clone(),
            }
            .run(Duration::from_secs(3600), stop_rx.clone()),
        ),
    ];
    // Delivery: the fan-out turns stored events into due deliveries and
    // wakes the worker, which sends them.
    let delivery_wake = app.delivery_wake.clone();
    tasks.push(tokio::spawn(
        FanOut::new(app.clock.clone())
            .waking(delivery_wake.clone())
            .run(
                CommitLogFollower::new(app.store.clone(), FAN_OUT_CURSOR, 500),
                app.store.clone(),
                app.fan_out_wake.clone(),
                idle,
                stop_rx.clone(),
            ),
    ));
    // Projections: a snapshot every `projection_snapshot_every` versions.
    tasks.push(tokio::spawn(
        SnapshotFollower::new(
            app.store.clone(),
            app.clone(),
            app.config.projection_snapshot_every,
        )
        .run(
            CommitLogFollower::new(app.store.clone(), SNAPSHOT_CURSOR, 500),
            app.snapshot_wake.clone(),
            idle,
            stop_rx.clone(),
        ),
    ));
    // Replays: the worker stores a replay's deliveries a page at a time
    // and wakes the delivery worker, like the fan-out.
    tasks.push(tokio::spawn(
        ReplayWorker::new(app.store.clone(), app.clock.clone())
            .waking(delivery_wake.clone())
            .publishing_lifecycle(publisher.is_some())
            .run(app.replay_wake.clone(), idle, stop_rx.clone()),
    ));
    let callback_sender: Arc<dyn herald_workers::delivery::worker::WebhookSender> = sender.clone();
    let deliveries = DeliveryWorker::new(
        app.store.clone(),
        app.clock.clone(),
        sender,
        Box::new(SeededJitter::new(seed)),
    )
    .with_timeout(Duration::from_secs(app.config.delivery_timeout_secs))
    .with_concurrency(app.config.delivery_concurrency)
    .with_endpoint_concurrency(app.config.delivery_endpoint_concurrency)
    .disabling_after((app.config.delivery_disable_after_days > 0).then(|| {
        Duration::from_secs(
            app.config
                .delivery_disable_after_days
                .saturating_mul(86_400),
        )
    }))
    .publishing_lifecycle(publisher.is_some());
    tasks.push(tokio::spawn(deliveries.run(
        delivery_wake,
        idle.min(Duration::from_secs(1)),
        stop_rx.clone(),
    )));
    // Waits: the matcher (and timeouts) wake on local commits and poll for
    // other instances' events and waits; ends wake long polls and the
    // callback worker, which sends through the delivery sender.
    let wait_poll = Duration::from_millis(app.config.wait_poll_ms);
    let on_end: herald_workers::waits::OnEnd = {
        let app = app.clone();
        Arc::new(move || app.wait_ended())
    };
    tasks.push(tokio::spawn(
        WaitMatcher::new(app.clock.clone())
            .on_end(on_end.clone())
            .run(
                CommitLogFollower::new(app.store.clone(), WAITS_CURSOR, 500),
                app.store.clone(),
                WaitTimeouts::new(app.clock.clone()).on_end(on_end),
                app.waits_wake.clone(),
                wait_poll,
                stop_rx.clone(),
            ),
    ));
    tasks.push(tokio::spawn(
        WaitCallbacks::new(
            app.store.clone(),
            app.clock.clone(),
            callback_sender,
            Box::new(SeededJitter::new(seed.rotate_left(17))),
        )
        .with_timeout(Duration::from_secs(app.config.delivery_timeout_secs))
        .run(app.wait_callback_wake.clone(), wait_poll, stop_rx.clone()),
    ));
    // Statistics: the rollups follow the commit log.
    if app.config.rollups {
        tasks.push(tokio::spawn(RollupWorker::new(app.store.clone()).run(
            Duration::from_millis(app.config.rollup_interval_ms),
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(app.tail.clone().run(
        Duration::from_millis(app.config.tail_poll_ms),
        stop_rx.clone(),
    )));
    // Self events: request outcomes stored as the operator tenant's events.
    if let Some(rx) = app.self_events.as_ref().and_then(|s| s.take_receiver()) {
        tasks.push(tokio::spawn(
            self_events::SelfEventDrain::new(app.clone(), rx).run(stop_rx.clone()),
        ));
    }
    tasks.push(tokio::spawn(http::metrics::upkeep(
        app.metrics.clone(),
        Duration::from_secs(5),
        stop_rx.clone(),
    )));
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
    let tail = app.tail.clone();
    let (stopping_tx, stopping_rx) = oneshot::channel::<()>();
    // The peer's address reaches handlers (collection records the client's).
    let serve = axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        // Tail streams never end by themselves: end them, or they
        // would hold the drain until the grace period.
        tail.close();
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
