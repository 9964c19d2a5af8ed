//! `spawn_app()` and friends: a server on 127.0.0.1:0 with a fresh data dir,
//! a client, and shortcuts for tenants and keys.

use std::time::Duration;

use herald_server::config::{Config, Secret};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ROOT_KEY: &str = "test-root-key-0123456789";

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), herald_server::ServerError>>>,
}

pub struct Tenant {
    pub tenant_id: String,
    pub admin_key: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    spawn_in(tempfile::tempdir().expect("temp dir"), tweak).await
}

/// A server on an existing data dir.
pub async fn spawn_in(data_dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config {
        data_dir: data_dir.path().to_path_buf(),
        root_key: Some(Secret(ROOT_KEY.into())),
        worker_idle_ms: 20,
        ..Config::default()
    };
    tweak(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(herald_server::run(listener, config, async move {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    // Ready when it answers: `run` builds its state (keys, store) first.
    for _ in 0..500 {
        if client
            .get(format!("{base}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    TestApp {
        base,
        client,
        data_dir,
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

    pub async fn create(&self, key: &str, body: &Value) -> (u16, Value) {
        let res = self.post("/api/v1/events/create", key, body).await;
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn query(&self, key: &str, body: &Value) -> Value {
        let res = self.post("/api/v1/events/query", key, body).await;
        assert_eq!(res.status(), 200, "query {body}");
        res.json().await.unwrap()
    }

    /// Waits until `check` holds, polling; fails after 10 s.
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check().await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops gracefully and starts a new server on the same data dir.
    pub async fn restart(self) -> TestApp {
        self.restart_with(|_| {}).await
    }

    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task
            .take()
            .unwrap()
            .await
            .expect("server task")
            .expect("clean stop");
        spawn_in(self.data_dir, tweak).await
    }

    /// Graceful shutdown, as SIGTERM does; returns the server's result.
    pub async fn stop(mut self) -> Result<(), herald_server::ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap().await.expect("server task")
    }
}

pub fn event(event_type: &str, category: &str) -> Value {
    json!({ "event_type": event_type, "category": category })
}
