//! Webhook delivery's pure building blocks: no IO, no async, no wall clock
//! and no global randomness. Time, randomness and DNS answers are passed
//! in, so the delivery worker built on them runs under a controlled clock
//! with a fake sender in tests.
//!
//! How the pieces fit, one worker `step()` per batch of due deliveries:
//!
//! 1. Claim due deliveries under a lease longer than the request timeout,
//!    so one delivery never runs twice at once (at-least-once overall).
//! 2. Per endpoint, ask the [`breaker::CircuitBreaker`], the
//!    [`breaker::ConcurrencyBudget`] and the [`breaker::RateLimit`]; a
//!    refusal puts the delivery back, due when the refusal says, without
//!    counting an attempt.
//! 3. Check the URL with [`network::check_url`]: every resolved address
//!    public or in `HERALD_DELIVERY_ALLOWED_NETWORKS`; connect only to the
//!    addresses it returns. A refusal is an attempt failed as `refused`.
//! 4. Build the request with [`signature::webhook_body`] and
//!    [`signature::build_request`] (Standard Webhooks headers, signed with
//!    every current secret of the endpoint), and send it.
//! 5. [`classify::classify`] the result: verdict, error class, snippet;
//!    report success or failure to the breaker with the permit.
//! 6. Record the attempt and take [`schedule::next_step`]: delivered,
//!    retry at a jittered time from the subscription's
//!    [`schedule::RetryPolicy`] (or the endpoint's `Retry-After`), disable
//!    the subscription on 410, or a dead letter once the policy is spent.

use std::time::Duration;

use herald_core::Timestamp;

pub mod breaker;
pub mod classify;
pub mod endpoints;
pub mod http;
pub mod network;
pub mod schedule;
pub mod signature;
pub mod worker;

/// `at + by`. A time past the calendar's end cannot be written down, so
/// the sum saturates at `at`: such a retry is due at once rather than lost.
fn later(at: Timestamp, by: Duration) -> Timestamp {
    time::Duration::try_from(by)
        .ok()
        .and_then(|by| at.as_offset_date_time().checked_add(by))
        .map_or(at, Timestamp::from)
}
