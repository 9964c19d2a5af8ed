//! The real PostgreSQL and NATS JetStream the scale-out tests run against
//! (`HERALD_TEST_DATABASE_URL`, `HERALD_TEST_NATS_URL`; `.ci/run` sets
//! both), a schema per test, the store a test runs on ([`Backend`]), a
//! JetStream reader, and a loopback TCP proxy that can cut a connection to
//! NATS or swallow its replies.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A service URL from `var`, or a loud skip: written to stderr directly,
/// since libtest captures `eprintln!` of passing tests. Under CI (`CI` set)
/// a missing URL fails the test instead.
fn env_url(var: &str, what: &str) -> Option<String> {
    use std::io::Write;
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            let test = std::thread::current()
                .name()
                .unwrap_or("a test")
                .to_string();
            assert!(
                std::env::var_os("CI").is_none(),
                "{test}: CI is set but {var} is not; {what} must be tested in CI"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {what} was NOT tested; set {var} to run it"
            );
            None
        }
    }
}

pub fn pg_url() -> Option<String> {
    env_url("HERALD_TEST_DATABASE_URL", "Herald on PostgreSQL")
}

pub fn nats_url() -> Option<String> {
    env_url("HERALD_TEST_NATS_URL", "publishing to NATS JetStream")
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// A PostgreSQL schema for one test, dropped afterwards.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    pub fn new(url: &str) -> PgSchema {
        PgSchema {
            url: url.to_string(),
            name: unique("it"),
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("HERALD_TEST_DATABASE_URL is set but PostgreSQL is unreachable");
        tokio::spawn(conn);
        client
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok((client, conn)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// The store a server under test uses: the embedded one in its data dir,
/// or PostgreSQL in a schema of the test's own.
pub enum Backend {
    Sqlite,
    Postgres(PgSchema),
}

impl Backend {
    /// PostgreSQL, or `None` after a loud skip when it is not configured.
    pub fn postgres() -> Option<Backend> {
        pg_url().map(|url| Backend::Postgres(PgSchema::new(&url)))
    }

    /// Points an in-process server's config at this store.
    pub fn apply(&self, config: &mut herald_server::Config) {
        if let Backend::Postgres(schema) = self {
            config.database_url = Some(herald_server::config::Secret(schema.url.clone()));
            config.database_schema = schema.name.clone();
            config.database_pool_size = 4;
        }
    }

    /// The same as `HERALD_*` variables, for the real binary.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match self {
            Backend::Sqlite => Vec::new(),
            Backend::Postgres(schema) => vec![
                ("HERALD_DATABASE_URL", schema.url.clone()),
                ("HERALD_DATABASE_SCHEMA", schema.name.clone()),
                ("HERALD_DATABASE_POOL_SIZE", "4".to_string()),
            ],
        }
    }
}

/// One message as JetStream stored it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub msg_id: String,
    pub payload: serde_json::Value,
}

/// A JetStream stream of one test, deleted afterwards.
pub struct NatsStream {
    pub js: jetstream::Context,
    pub name: String,
    pub prefix: String,
}

impl NatsStream {
    pub async fn new(url: &str) -> NatsStream {
        let client = async_nats::connect(url)
            .await
            .expect("HERALD_TEST_NATS_URL is set but NATS is unreachable");
        let name = unique("IT").to_uppercase();
        NatsStream {
            js: jetstream::new(client),
            prefix: name.to_lowercase().replace('_', "-"),
            name,
        }
    }

    /// Whether Herald has created the stream yet.
    pub async fn exists(&self) -> bool {
        self.js.get_stream(&self.name).await.is_ok()
    }

    /// The stream's configuration as JetStream reports it now.
    pub async fn config(&self) -> Option<jetstream::stream::Config> {
        let stream = self.js.get_stream(&self.name).await.ok()?;
        Some(stream.cached_info().config.clone())
    }

    /// Every message on subjects matching `filter` (relative to the prefix,
    /// like `events.>`), in stream order, read by a fresh consumer.
    pub async fn read(&self, filter: &str) -> Vec<Stored> {
        self.read_subjects(&format!("{}.{filter}", self.prefix))
            .await
    }

    /// Every message on subjects matching the whole `filter`, in stream order.
    pub async fn read_subjects(&self, filter: &str) -> Vec<Stored> {
        let Ok(stream) = self.js.get_stream(&self.name).await else {
            return Vec::new();
        };
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::Config {
                filter_subject: filter.to_string(),
                ack_policy: jetstream::consumer::AckPolicy::None,
                deliver_policy: jetstream::consumer::DeliverPolicy::All,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut out = Vec::new();
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(1000)
                .expires(Duration::from_millis(300))
                .messages()
                .await
                .expect("fetch");
            let before = out.len();
            while let Some(Ok(m)) = batch.next().await {
                out.push(Stored {
                    subject: m.subject.to_string(),
                    msg_id: m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Msg-Id"))
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    payload: serde_json::from_slice(&m.payload).unwrap_or_default(),
                });
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// Reads until `filter` holds at least `n` messages, for up to 30 s.
    pub async fn wait_for(&self, filter: &str, n: usize) -> Vec<Stored> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.read(filter).await;
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "JetStream holds {} messages on {filter}, expected {n}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for NatsStream {
    fn drop(&mut self) {
        let (js, name) = (self.js.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let _ = js.delete_stream(&name).await;
            });
        })
        .join();
    }
}

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Pass,
    /// Closes every connection and refuses new ones (NATS is "down").
    Down,
    /// Forwards requests but swallows every reply: publishes reach the
    /// server, their acks never come back.
    SwallowReplies,
}

/// A loopback TCP proxy in front of a real server.
pub struct Proxy {
    pub url: String,
    mode: Arc<Mutex<Mode>>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target_url: &str) -> Proxy {
        let target = target_url
            .trim_start_matches("nats://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("nats://{}", listener.local_addr().unwrap());
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (m, c) = (mode.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *m.lock().unwrap() == Mode::Down {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let mode = m.clone();
                c.lock()
                    .unwrap()
                    .push(tokio::spawn(pipe(client, server, mode)));
            }
        });
        Proxy {
            url,
            mode,
            conns,
            accept,
        }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
        if mode == Mode::Down {
            for c in self.conns.lock().unwrap().drain(..) {
                c.abort();
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

async fn pipe(client: TcpStream, server: TcpStream, mode: Arc<Mutex<Mode>>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if sw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if *mode.lock().unwrap() == Mode::SwallowReplies {
                        continue;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
