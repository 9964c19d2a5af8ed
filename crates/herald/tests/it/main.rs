//! Herald's one integration-test binary: every test spawns the real server
//! on port 0 with its own data directory and talks HTTP to it (through
//! `herald-testkit`), or runs the real binary (`binary.rs`).

mod binary;
mod body_limits;
mod cli;
mod collect_cloudevents;
mod collect_frontend;
mod collect_rudderstack;
mod collect_segment;
mod commit;
mod crash;
mod delivery;
mod delivery_faults;
mod delivery_kit;
mod delivery_processes;
mod dlq;
mod ingest;
mod metrics;
mod nats;
mod openapi;
mod problems;
mod processors;
mod query;
mod registry;
mod replay;
mod scaleout;
mod shutdown;
mod statistics;
mod stories;
mod streams;
mod subscriptions;
mod tail;
mod tenancy;
mod waits;
