//! Rate limits of collection: requests a second per write key and per
//! client address, each a token bucket (herald-workers' `RateLimit`, time
//! passed in) bursting up to one second's worth. A public key is in every
//! visitor's page, so without them anyone could flood its tenant; beyond
//! either limit the answer is 429 with `Retry-After`.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;

use herald_core::Timestamp;
use herald_workers::delivery::breaker::RateLimit;

use crate::http::problem::ApiError;

/// Buckets kept at most per map; past it, the buckets idle for over a
/// second (full again, so forgetting them changes nothing) are dropped.
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug)]
struct Buckets<K> {
    per_second: NonZeroU32,
    map: Mutex<HashMap<K, (RateLimit, Timestamp)>>,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    fn new(per_second: u32) -> Self {
        Buckets {
            per_second: NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `key` at `now`, or says when one is free.
    fn take(&self, key: &K, now: Timestamp) -> Result<(), Timestamp> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_BUCKETS && !map.contains_key(key) {
            let idle = now.unix_nanos() - 1_000_000_000;
            map.retain(|_, (_, last)| last.unix_nanos() > idle);
        }
        let (bucket, last) = map
            .entry(key.clone())
            .or_insert_with(|| (RateLimit::per_second(self.per_second), now));
        *last = now;
        bucket.try_acquire(now)
    }
}

/// The two limits.
#[derive(Debug)]
pub struct RateLimits {
    by_key: Buckets<String>,
    by_ip: Buckets<IpAddr>,
}

impl RateLimits {
    pub fn new(key_rate: u32, ip_rate: u32) -> RateLimits {
        RateLimits {
            by_key: Buckets::new(key_rate),
            by_ip: Buckets::new(ip_rate),
        }
    }

    /// One request from `ip` at `now` (checked before the body is read, so
    /// a flood from one address costs little and leaves the key's budget).
    pub fn admit_ip(&self, ip: IpAddr, now: Timestamp) -> Result<(), ApiError> {
        self.by_ip.take(&ip, now).map_err(|until| {
            ApiError::too_many_requests(
                format!(
                    "too many requests from this client address (limit {} a second); retry after the Retry-After delay",
                    self.by_ip.per_second
                ),
                seconds_until(now, until),
            )
        })
    }

    /// One request with write key `key_id` at `now`.
    pub fn admit_key(&self, key_id: &str, now: Timestamp) -> Result<(), ApiError> {
        self.by_key.take(&key_id.to_string(), now).map_err(|until| {
            ApiError::too_many_requests(
                format!(
                    "too many requests with write key {key_id} (limit {} a second); retry after the Retry-After delay",
                    self.by_key.per_second
                ),
                seconds_until(now, until),
            )
        })
    }
}

/// Whole seconds from `now` to `until`, at least one.
fn seconds_until(now: Timestamp, until: Timestamp) -> u32 {
    let nanos = (until.unix_nanos() - now.unix_nanos()).max(0);
    u32::try_from((nanos + 999_999_999) / 1_000_000_000)
        .unwrap_or(u32::MAX)
        .max(1)
}
