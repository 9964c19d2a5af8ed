//! A delivery worker's per-endpoint admission, kept in memory: each
//! callback URL's [`CircuitBreaker`] and [`ConcurrencyBudget`], and each
//! subscription's [`RateLimit`]. An attempt asks [`Endpoints::admit`]
//! before it sends; a refusal says when to try again, and the delivery goes
//! back unattempted, so a slow or failing endpoint only ever holds its own
//! budget of the worker's slots.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use herald_core::Timestamp;

use super::breaker::{
    Admission, BreakerConfig, CircuitBreaker, ConcurrencyBudget, Permit, RateLimit, Slot,
};
use super::later;

/// How long a delivery whose endpoint has its budget in flight waits
/// before it is looked at again.
pub const BUSY_ENDPOINT_WAIT: Duration = Duration::from_secs(1);

/// One callback URL's breaker and budget.
#[derive(Debug)]
struct Endpoint {
    breaker: CircuitBreaker,
    budget: ConcurrencyBudget,
}

/// The admission state of every endpoint a worker has sent to.
#[derive(Debug)]
pub struct Endpoints {
    breaker: BreakerConfig,
    budget: NonZeroU32,
    by_url: Mutex<HashMap<String, Endpoint>>,
    /// By subscription id, with the rate the limit was made for (a changed
    /// subscription gets a new one).
    rates: Mutex<HashMap<String, (f64, RateLimit)>>,
}

/// Why an attempt may not be made now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The endpoint has its budget of requests in flight.
    Busy,
    /// The subscription is at its rate limit.
    RateLimited,
    /// The endpoint's circuit breaker is open.
    BreakerOpen,
}

/// Leave to send one request to an endpoint. Report how it went with
/// [`Pass::record`]; dropping it gives the budget slot back either way.
#[derive(Debug)]
pub struct Pass<'a> {
    endpoints: &'a Endpoints,
    url: String,
    permit: Option<Permit>,
    slot: Option<Slot>,
}

impl Endpoints {
    pub fn new(breaker: BreakerConfig, budget: NonZeroU32) -> Endpoints {
        Endpoints {
            breaker,
            budget,
            by_url: Mutex::default(),
            rates: Mutex::default(),
        }
    }

    /// Asks to send one request of `subscription` to `url` at `now`:
    /// within the endpoint's budget, the subscription's `rate` (deliveries
    /// per second, if limited) and past its breaker, in that order (each
    /// later check only runs when the earlier ones passed, so a refusal
    /// uses up no rate token or probe it does not need).
    pub fn admit(
        &self,
        url: &str,
        subscription: &str,
        rate: Option<f64>,
        now: Timestamp,
    ) -> Result<Pass<'_>, (Refusal, Timestamp)> {
        let slot = {
            let mut by_url = self.by_url.lock().expect("endpoints lock");
            let endpoint = self.endpoint(&mut by_url, url);
            endpoint.budget.try_acquire()
        };
        let Some(slot) = slot else {
            return Err((Refusal::Busy, later(now, BUSY_ENDPOINT_WAIT)));
        };
        let mut pass = Pass {
            endpoints: self,
            url: url.to_string(),
            permit: None,
            slot: Some(slot),
        };
        if let Some(rate) = rate {
            let mut rates = self.rates.lock().expect("rates lock");
            let entry = rates
                .entry(subscription.to_string())
                .or_insert_with(|| (rate, RateLimit::of_rate(rate)));
            if entry.0 != rate {
                *entry = (rate, RateLimit::of_rate(rate));
            }
            if let Err(at) = entry.1.try_acquire(now) {
                return Err((Refusal::RateLimited, at));
            }
        }
        let admission = {
            let mut by_url = self.by_url.lock().expect("endpoints lock");
            self.endpoint(&mut by_url, url).breaker.try_acquire(now)
        };
        match admission {
            Admission::Allowed(permit) => {
                pass.permit = Some(permit);
                Ok(pass)
            }
            Admission::Rejected { retry_at } => Err((Refusal::BreakerOpen, retry_at)),
        }
    }

    /// Requests to `url` in flight now.
    pub fn in_flight(&self, url: &str) -> u32 {
        self.by_url
            .lock()
            .expect("endpoints lock")
            .get(url)
            .map_or(0, |e| e.budget.in_flight())
    }

    fn endpoint<'m>(
        &self,
        by_url: &'m mut HashMap<String, Endpoint>,
        url: &str,
    ) -> &'m mut Endpoint {
        by_url.entry(url.to_string()).or_insert_with(|| Endpoint {
            breaker: CircuitBreaker::new(self.breaker),
            budget: ConcurrencyBudget::new(self.budget),
        })
    }
}

impl Pass<'_> {
    /// Tells the endpoint's breaker how the request went.
    pub fn record(mut self, healthy: bool, now: Timestamp) {
        if let Some(permit) = self.permit.take() {
            let mut by_url = self.endpoints.by_url.lock().expect("endpoints lock");
            if let Some(endpoint) = by_url.get_mut(&self.url) {
                endpoint.breaker.record(permit, healthy, now);
            }
        }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            let mut by_url = self.endpoints.by_url.lock().expect("endpoints lock");
            if let Some(endpoint) = by_url.get_mut(&self.url) {
                endpoint.budget.release(slot);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn an_endpoint_at_its_budget_is_busy_until_a_pass_is_dropped() {
        let e = Endpoints::new(BreakerConfig::default(), NonZeroU32::new(2).unwrap());
        let now = at("2030-01-01T00:00:00Z");
        let a = e.admit("http://a", "s1", None, now).unwrap();
        let _b = e.admit("http://a", "s1", None, now).unwrap();
        assert_eq!(e.in_flight("http://a"), 2);
        let (why, retry) = e.admit("http://a", "s2", None, now).unwrap_err();
        assert_eq!(why, Refusal::Busy);
        assert_eq!(retry, at("2030-01-01T00:00:01Z"));
        // Another endpoint is not affected.
        assert!(e.admit("http://b", "s3", None, now).is_ok());
        a.record(true, now);
        assert_eq!(e.in_flight("http://a"), 1);
        assert!(e.admit("http://a", "s2", None, now).is_ok());
    }

    #[test]
    fn a_rate_limited_subscription_waits_for_its_next_token_without_holding_a_slot() {
        let e = Endpoints::new(BreakerConfig::default(), NonZeroU32::new(8).unwrap());
        let now = at("2030-01-01T00:00:00Z");
        drop(e.admit("http://a", "s1", Some(2.0), now).unwrap());
        drop(e.admit("http://a", "s1", Some(2.0), now).unwrap());
        let (why, retry) = e.admit("http://a", "s1", Some(2.0), now).unwrap_err();
        assert_eq!(why, Refusal::RateLimited);
        assert_eq!(retry, at("2030-01-01T00:00:00.5Z"));
        assert_eq!(e.in_flight("http://a"), 0);
        // Another subscription of the same URL has its own limit.
        assert!(e.admit("http://a", "s2", Some(2.0), now).is_ok());
    }
}
