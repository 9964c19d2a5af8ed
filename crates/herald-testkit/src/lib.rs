//! Herald's test kit, for tests only (`publish = false`).
//!
//! - [`services`]: the real PostgreSQL from `HERALD_TEST_DATABASE_URL` (a
//!   loud `SKIPPED` without it, a failure under `CI`), a schema per test,
//!   and [`Backend`], the store a server under test uses;
//!   [`on_each_backend!`] runs one test body on each (`<test>::sqlite`,
//!   `<test>::postgres`), handed the `Backend` or, with `open = f;`, what
//!   `f` opens on it: the one convention of the server's and the store's
//!   suites.
//! - [`nats`]: a JetStream stream per test on `HERALD_TEST_NATS_URL`, and
//!   a reader. [`proxy`]: a TCP proxy that can cut a connection.
//! - [`app`] (feature `server`, on by default): `spawn_app()`, the server
//!   in-process on port 0 with a temp data dir.
//! - [`store`]: a fresh store on one backend, for the tests below the
//!   server.
//! - [`wait`]: bounded waits on a condition, never a fixed sleep.
//! - [`problem`]: checks of a problem+json answer.
//! - [`receiver`]: a real HTTP webhook receiver feeding a channel.
//!
//! herald-store's tests sit below the server: they take the kit with
//! `default-features = false`, which leaves out [`app`] and its dependency
//! on herald-server.

#[cfg(feature = "server")]
pub mod app;
pub mod nats;
pub mod problem;
pub mod proxy;
pub mod receiver;
pub mod services;
pub mod store;
pub mod wait;

#[cfg(feature = "server")]
pub use app::{ROOT_KEY, Tenant, TestApp, event, spawn_app, spawn_in, spawn_on, spawn_with};
pub use nats::{NatsStream, Stored, msg_ids};
pub use problem::{Problem, assert_problem, read_problem};
pub use proxy::{Mode, Proxy};
pub use receiver::{Received, WebhookReceiver};
pub use services::{Backend, PgSchema, nats_url, pg_url, unique};
pub use store::{StoreUnderTest, open_store};
pub use wait::{stays, wait_for, wait_until};

/// An HTTP client for tests. reqwest is built with rustls and no crypto
/// provider of its own (Herald's https webhooks use ring), so the process's
/// provider is installed first; installing again changes nothing.
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

/// Installs ring as the process's rustls crypto provider, which any
/// reqwest client needs before it is built; idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
