//! Herald's one integration-test binary: every test spawns the real server
//! on port 0 with its own data directory and talks HTTP to it.

mod binary;
mod commit;
mod crash;
mod helpers;
mod ingest;
mod nats;
mod openapi;
mod problems;
mod query;
mod registry;
mod scaleout;
mod services;
mod shutdown;
mod tenancy;
