//! `spawn_app()` and friends: the server in-process on 127.0.0.1:0 with a
//! fresh data dir, on either [`Backend`], a client, and shortcuts for
//! tenants, keys, creates and queries.

use std::time::Duration;

use herald_server::config::{Config, Secret};
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::services::Backend;
use crate::wait::wait_until;

/// The root key every spawned server has.
pub const ROOT_KEY: &str = "test-root-key-0123456789";

/// A running server; stops (without waiting) when dropped.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    /// The store it runs on; a restart keeps it.
    pub backend: Backend,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), herald_server::ServerError>>>,
}

/// A tenant and its admin key.
#[derive(Debug)]
pub struct Tenant {
    pub tenant_id: String,
    pub admin_key: String,
}

/// A server on the embedded store.
pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// The same with settings changed by `tweak`.
pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_on(Backend::Sqlite, tweak).await
}

/// A server on `backend`, with settings changed by `tweak`.
pub async fn spawn_on(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_in(tempfile::tempdir().expect("temp dir"), backend, tweak).await
}

/// A server on an existing data dir.
pub async fn spawn_in(
    data_dir: tempfile::TempDir,
    backend: Backend,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config {
        data_dir: data_dir.path().to_path_buf(),
        root_key: Some(Secret(ROOT_KEY.into())),
        worker_idle_ms: 20,
        // Self events are store-wide traffic (the commit log, NATS
        // subjects) that tests counting everything would have to filter
        // out: on only where a test asks (`c.self_events = true`).
        self_events: false,
        ..Config::default()
    };
    backend.apply(&mut config);
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(herald_server::run(listener, config, async move {
        let _ = rx.await;
    }));
    let client = crate::http_client();
    // Ready when it answers: `run` builds its state (keys, store) first.
    wait_until(
        "the server to answer /health",
        Duration::from_secs(30),
        || async {
            assert!(!task.is_finished(), "the server stopped while starting");
            client
                .get(format!("{base}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    TestApp {
        base,
        client,
        data_dir,
        backend,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("request")
    }

    /// `/health` as JSON.
    pub async fn health(&self) -> Value {
        self.client
            .get(self.url("/health"))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("health JSON")
    }

    pub async fn put(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .put(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Registers an event definition and returns it; panics unless 201.
    pub async fn define(&self, key: &str, body: &Value) -> Value {
        let res = self.post("/api/v1/event-definitions", key, body).await;
        let status = res.status();
        let out: Value = res.json().await.unwrap();
        assert_eq!(status, 201, "{out}");
        out
    }

    /// A new tenant, made with the root key.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let res = self
            .post("/api/v1/admin/tenants", ROOT_KEY, &json!({ "name": name }))
            .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        Tenant {
            tenant_id: body["tenant_id"].as_str().unwrap().into(),
            admin_key: body["api_key"].as_str().unwrap().into(),
        }
    }

    /// A new key of `tenant` with `scopes`.
    pub async fn key(&self, tenant: &Tenant, scopes: &[&str]) -> String {
        let res = self
            .post(
                &format!("/api/v1/admin/tenants/{}/keys", tenant.tenant_id),
                ROOT_KEY,
                &json!({ "name": "test", "scopes": scopes }),
            )
            .await;
        assert_eq!(res.status(), 201);
        res.json::<Value>().await.unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// `POST /api/v1/events/create`: the status and the JSON answer.
    pub async fn create(&self, key: &str, body: &Value) -> (u16, Value) {
        let res = self.post("/api/v1/events/create", key, body).await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/v1/events/query`, which must answer 200.
    pub async fn query(&self, key: &str, body: &Value) -> Value {
        let res = self.post("/api/v1/events/query", key, body).await;
        assert_eq!(res.status(), 200, "query {body}");
        res.json().await.unwrap()
    }

    /// Waits until `check` holds, polling; fails after 10 s naming `what`.
    pub async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        wait_until(what, Duration::from_secs(10), check).await
    }

    /// Stops gracefully and starts a new server on the same data dir and store.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    /// The same with settings changed by `tweak` (applied after the store's).
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        self.stop_server().await.expect("clean stop");
        let TestApp {
            data_dir, backend, ..
        } = self;
        spawn_in(data_dir, backend, tweak).await
    }

    /// Stops gracefully, runs `between` on the data dir while nothing runs
    /// (to change the files as an operator might), and starts a new server
    /// on it with `tweak`.
    pub async fn restart_after(
        mut self,
        between: impl FnOnce(&std::path::Path),
        tweak: impl FnOnce(&mut Config),
    ) -> TestApp {
        self.stop_server().await.expect("clean stop");
        let TestApp {
            data_dir, backend, ..
        } = self;
        between(data_dir.path());
        spawn_in(data_dir, backend, tweak).await
    }

    /// Graceful shutdown, as SIGTERM does; returns the server's result.
    pub async fn stop(mut self) -> Result<(), herald_server::ServerError> {
        self.stop_server().await
    }

    async fn stop_server(&mut self) -> Result<(), herald_server::ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task
            .take()
            .expect("running")
            .await
            .expect("server task")
    }
}

/// The smallest event body: a type and a category.
pub fn event(event_type: &str, category: &str) -> Value {
    json!({ "event_type": event_type, "category": category })
}
