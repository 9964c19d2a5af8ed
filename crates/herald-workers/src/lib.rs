//! Herald's background work, each a `step()` over the store that a test
//! calls directly plus a thin `run` loop that the server spawns:
//!
//! - [`follower`]: a named durable cursor over the commit order and the
//!   [`CommitLogHandler`](follower::CommitLogHandler) each consumer of
//!   stored events implements;
//! - [`fanout`]: the delivery fan-out, a follower that writes one pending
//!   delivery per matching (event, subscription) with its cursor move;
//! - [`replay`]: the replay worker, which delivers stored events again
//!   to chosen subscriptions with the fan-out's matching, one page a step;
//! - [`publish`]: the NATS JetStream publisher, the follower's first user
//!   (plus the lifecycle outbox);
//! - [`processors`]: processors (webhook, enrich, nats) and the
//!   processing worker that gives every event its lifecycle (`pending` →
//!   `processed` or `failed`), with retries and dead letters;
//! - [`upkeep`]: the store's periodic upkeep;
//! - [`waits`]: workflow waits: the matcher (a follower resolving open
//!   waits from an in-memory index by type), timeouts and callbacks;
//! - [`delivery`]: the pure building blocks of webhook delivery (signing,
//!   retry schedule, outcome classification, circuit breaker and rate
//!   limits, the address guard), time and randomness passed in.

pub mod delivery;
pub mod fanout;
pub mod follower;
pub mod processors;
pub mod projections;
pub mod publish;
pub mod replay;
pub mod rollups;
pub mod tail;
pub mod upkeep;
pub mod waits;
