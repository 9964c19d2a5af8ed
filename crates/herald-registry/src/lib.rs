//! Herald's event-definition registry: the source of truth for every event
//! type. Definitions (exact types or NATS-style patterns), their JSON
//! Schemas for `data`, versions and the compatibility between them, and a
//! per-tenant [`Registry`] snapshot that plugs into ingest as the tenant's
//! `herald_core::Vocabulary`. Pure: no IO, no async; the server stores
//! definitions and builds snapshots.

pub mod cache;
pub mod compat;
pub mod definition;
pub mod pattern;
pub mod registry;
pub mod schema;

pub use cache::ValidatorCache;
pub use compat::{Change, Compatibility, Level};
pub use definition::{DefinitionInput, EventDefinition, ProjectionRule, parse_input};
pub use pattern::TypePattern;
pub use registry::{BUILTIN_PREFIX, DefinitionFilter, Entry, Registry, builtin_definitions};
