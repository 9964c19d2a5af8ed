//! The real `herald` binary as a child process, for the tests that need a
//! process to kill or signal (crash, SIGTERM).

use std::process::Stdio;
use std::time::Duration;

use herald_testkit::wait_until;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

pub const ROOT: &str = "binary-test-root-key-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `herald serve` on a free port over `dir`, once it answers `/health`.
pub async fn start(dir: &std::path::Path) -> (Child, String) {
    start_with(dir, &[]).await
}

/// The same with more `HERALD_*` settings.
pub async fn start_with(dir: &std::path::Path, env: &[(&str, String)]) -> (Child, String) {
    start_logging(dir, env, Stdio::null()).await
}

/// The same, its log (stderr) going to `log`.
pub async fn start_logging(
    dir: &std::path::Path,
    env: &[(&str, String)],
    log: Stdio,
) -> (Child, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("HERALD_DATA_DIR", dir)
        .env("HERALD_ROOT_KEY", ROOT)
        .env("HERALD_LOG_LEVEL", "warn")
        // As in the in-process kit: self events only where a test asks
        // (they are store-wide traffic that counting tests would see).
        .env("HERALD_SELF_EVENTS", "false")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start herald");
    let base = format!("http://127.0.0.1:{port}");
    let client = herald_testkit::http_client();
    // Shared with the condition, which checks the child has not exited.
    let child = std::sync::Mutex::new(child);
    wait_until(
        &format!("herald to answer /health on {base}"),
        Duration::from_secs(30),
        || async {
            if let Ok(Some(status)) = child.lock().unwrap().try_wait() {
                panic!("herald exited before it was healthy: {status}");
            }
            client
                .get(format!("{base}/health"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    (child.into_inner().unwrap(), base)
}

/// Sends SIGTERM to our own child, by PID.
pub fn sigterm(child: &Child) {
    let pid = child.id().expect("running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success(), "kill -TERM {pid}");
}

/// SIGTERM, then the exit code within 30 s (`why` says what a hang means).
pub async fn stop_with_sigterm(child: &mut Child, why: &str) -> Option<i32> {
    sigterm(child);
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect(why)
        .unwrap()
        .code()
}

/// A new tenant's admin key.
pub async fn tenant(client: &reqwest::Client, base: &str, name: &str) -> String {
    let res = client
        .post(format!("{base}/api/v1/admin/tenants"))
        .bearer_auth(ROOT)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    body["api_key"].as_str().unwrap().to_string()
}

/// Every event of the key's tenant, through cursor paging.
pub async fn all_events(client: &reqwest::Client, base: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let res = client
            .post(format!("{base}/api/v1/events/query"))
            .bearer_auth(key)
            .json(&json!({"limit": 1000, "cursor": cursor}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        if page["has_more"] != true {
            return out;
        }
        cursor = page["next_cursor"].clone();
    }
}
