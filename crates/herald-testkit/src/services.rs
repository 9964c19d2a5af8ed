//! The real PostgreSQL a test runs against (`HERALD_TEST_DATABASE_URL`),
//! the loud skip without it, a schema per test, and [`Backend`]: which
//! store a server under test uses.
//!
//! Without the variable a test prints `SKIPPED …` on stderr and passes;
//! under CI (`CI` set) it fails instead, so CI cannot skip silently.

use std::io::Write;

/// A service URL from `var`, or a loud skip. Written to stderr directly,
/// since libtest captures `eprintln!` of passing tests.
pub fn env_url(var: &str, what: &str) -> Option<String> {
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

/// `HERALD_TEST_DATABASE_URL`, or `None` after a loud skip.
pub fn pg_url() -> Option<String> {
    env_url("HERALD_TEST_DATABASE_URL", "Herald on PostgreSQL")
}

/// `HERALD_TEST_NATS_URL`, or `None` after a loud skip.
pub fn nats_url() -> Option<String> {
    env_url("HERALD_TEST_NATS_URL", "publishing to NATS JetStream")
}

/// A name no other test (or test run) uses: `{prefix}_{pid}_{n}_{nanos}`.
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

/// A PostgreSQL schema of one test's own, so tests run in parallel on one
/// database; dropped (with everything in it) when this is.
#[derive(Debug)]
pub struct PgSchema {
    /// The database, as `HERALD_TEST_DATABASE_URL` gave it.
    pub url: String,
    /// The schema's name: lower case, digits and `_`, unique per test.
    pub name: String,
}

impl PgSchema {
    /// A fresh schema name on `url` (nothing is created until a store
    /// migrates it).
    pub fn new(url: &str) -> PgSchema {
        PgSchema::named(url, "it")
    }

    /// The same with another name prefix (a lower-case word).
    pub fn named(url: &str, prefix: &str) -> PgSchema {
        PgSchema {
            url: url.to_string(),
            name: unique(prefix),
        }
    }

    /// A schema on `HERALD_TEST_DATABASE_URL`, or `None` after a loud skip.
    pub fn from_env() -> Option<PgSchema> {
        pg_url().map(|url| PgSchema::new(&url))
    }

    /// A connection of the test's own (not in the schema's search path).
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
        // A runtime of its own on a thread of its own: `Drop` may run inside
        // a test's runtime, which cannot be blocked on.
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
                    drop_schema(&client, &name).await;
                }
            });
        })
        .join();
    }
}

/// Drops `name` with everything in it. The servers of the test may still
/// hold locks in it: their tasks run on the test's runtime, which is
/// blocked while this runs (a current-thread test, or one whose worker
/// threads are all here), so a transaction of theirs can never finish and
/// a plain `DROP` would wait for it forever. The drop waits a little for
/// locks, then ends the sessions holding locks in the schema and tries
/// again; after a few rounds it leaves the schema behind rather than hang.
async fn drop_schema(client: &tokio_postgres::Client, name: &str) {
    let _ = client.batch_execute("SET lock_timeout = '2s'").await;
    for _ in 0..5 {
        let dropped = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .await;
        if dropped.is_ok() {
            return;
        }
        let _ = client
            .execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
                 JOIN pg_class c ON c.oid = l.relation \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND l.pid <> pg_backend_pid()",
                &[&name],
            )
            .await;
    }
    let _ = writeln!(
        std::io::stderr(),
        "could not drop the test schema {name}: its locks were not released"
    );
}

/// The store a server under test uses: the embedded one in its data dir,
/// or PostgreSQL in a schema of the test's own.
#[derive(Debug)]
pub enum Backend {
    Sqlite,
    Postgres(PgSchema),
}

impl Backend {
    /// PostgreSQL, or `None` after a loud skip when it is not configured.
    pub fn postgres() -> Option<Backend> {
        PgSchema::from_env().map(Backend::Postgres)
    }

    /// `sqlite` or `postgres`, as `/health` names the store.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Points an in-process server's config at this store.
    #[cfg(feature = "server")]
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

/// A [`Backend`] as it is: how [`on_each_backend!`] opens one when the
/// tests take the `Backend` itself (a server under test applies it).
pub async fn as_is(backend: Backend) -> Backend {
    backend
}

/// The one convention for running a test on each backend: `mod $test {
/// sqlite, postgres }` for each named `async fn $test(...)`, the body once
/// per store, so a failure names its backend (`nats::some_test::postgres`).
/// The PostgreSQL run skips loudly without `HERALD_TEST_DATABASE_URL` (and
/// fails under `CI`, see [`pg_url`]).
///
/// `on_each_backend!(a, b)` hands each test the [`Backend`] (a server's
/// tests spawn an app on it). `on_each_backend!(open = f; a, b)` hands it
/// `f(backend).await` instead, `f` being an `async fn(Backend) -> T` of the
/// calling module (a store's tests open the store on it). The calling crate
/// needs `tokio` (for `#[tokio::test]`).
#[macro_export]
macro_rules! on_each_backend {
    (@each [$open:path] $($test:ident),*) => {$(
        mod $test {
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test($open($crate::Backend::Sqlite).await).await
            }

            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = $crate::Backend::postgres() {
                    super::$test($open(backend).await).await
                }
            }
        }
    )*};
    (open = $open:ident; $($test:ident),* $(,)?) => {
        $crate::on_each_backend!(@each [super::$open] $($test),*);
    };
    ($($test:ident),* $(,)?) => {
        $crate::on_each_backend!(@each [$crate::services::as_is] $($test),*);
    };
}

#[cfg(test)]
mod tests {
    use super::Backend;

    /// The test's own name (libtest names the thread after it), which ends
    /// in the backend the macro generated it for.
    fn generated_for() -> String {
        let name = std::thread::current().name().unwrap_or("").to_string();
        name.rsplit("::").next().unwrap_or("").to_string()
    }

    async fn each_run_gets_the_backend_it_is_named_after(backend: Backend) {
        assert_eq!(backend.name(), generated_for());
    }

    /// What an `open` function makes of a backend, to see it applied.
    #[derive(Debug)]
    struct Opened(&'static str);

    async fn open(backend: Backend) -> Opened {
        Opened(backend.name())
    }

    async fn open_is_applied_to_the_backend_it_is_named_after(opened: Opened) {
        assert_eq!(opened.0, generated_for());
    }

    crate::on_each_backend!(each_run_gets_the_backend_it_is_named_after);
    crate::on_each_backend!(open = open; open_is_applied_to_the_backend_it_is_named_after);
}
