//! The store contract, one file per concern: each holds the `impl Store`
//! block of its methods, which say what the method promises and call the
//! backend's. A new concern is one file here plus one per backend.

mod audit;
pub(crate) mod backlog;
pub(crate) mod cursors;
pub(crate) mod dead_letters;
mod definitions;
pub(crate) mod deliveries;
mod events;
pub(crate) mod lifecycle;
mod processing;
pub(crate) mod processors;
pub(crate) mod replays;
mod settings;
mod shared;
pub mod stats;
mod stories;
pub(crate) mod streams;
mod subscriptions;
mod tenants;
pub(crate) mod waits;

pub use shared::PublisherLease;
