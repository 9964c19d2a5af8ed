//! Per-endpoint protection, so one dead or slow subscriber never slows the
//! others: a [`CircuitBreaker`] (closed → open after consecutive failures →
//! half-open with exactly one probe → closed or open again with a longer
//! cooldown), a [`ConcurrencyBudget`] of requests in flight, and a
//! [`RateLimit`] in deliveries per second. All three are plain state a
//! worker keeps per endpoint; time is passed in.

use std::num::NonZeroU32;
use std::time::Duration;

use herald_core::Timestamp;

use super::later;

/// When a breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open the first time.
    pub cooldown: Duration,
    /// Each failed probe doubles the cooldown, up to this.
    pub max_cooldown: Duration,
    /// A probe not reported within this is presumed lost (its worker
    /// died), and the next caller probes instead. Longer than a request's
    /// timeout.
    pub probe_timeout: Duration,
    /// While a probe is out, how soon a refused request asks again: a
    /// probe that succeeds closes the breaker, and what waited behind it
    /// should follow within this, not at the probe timeout.
    pub probe_recheck: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            cooldown: Duration::from_secs(30),
            max_cooldown: Duration::from_secs(30 * 60),
            probe_timeout: Duration::from_secs(120),
            probe_recheck: Duration::from_secs(1),
        }
    }
}

/// Where a breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow; counting failures in a row.
    Closed { consecutive_failures: u32 },
    /// Every request is refused until `until`.
    Open { until: Timestamp },
    /// One probe is out since `probe_started`; everything else is refused.
    HalfOpen { probe_started: Timestamp },
}

/// Leave to send one request; hand it back to [`CircuitBreaker::record`]
/// with the outcome. A permit from before the breaker last changed state
/// counts for nothing: a late answer to a request sent while closed does
/// not decide a probe.
#[derive(Debug, PartialEq, Eq)]
pub struct Permit {
    generation: u64,
    probe: bool,
}

impl Permit {
    /// True for the one request a half-open breaker lets through.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// A breaker's answer to "may I send?".
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    Allowed(Permit),
    /// Refused; ask again at `retry_at`.
    Rejected {
        retry_at: Timestamp,
    },
}

/// One endpoint's circuit breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: BreakerState,
    /// The cooldown the next failed probe starts from.
    cooldown: Duration,
    /// Moves on every change of state; permits carry the one they were given in.
    generation: u64,
}

fn is_before(a: Timestamp, b: Timestamp) -> bool {
    a.unix_nanos() < b.unix_nanos()
}

impl CircuitBreaker {
    pub fn new(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker {
            config,
            state: BreakerState::Closed {
                consecutive_failures: 0,
            },
            cooldown: config.cooldown,
            generation: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    fn enter(&mut self, state: BreakerState) {
        self.state = state;
        self.generation += 1;
    }

    /// Asks to send one request at `now`. An open breaker whose cooldown
    /// has passed turns half-open and lets this caller probe.
    pub fn try_acquire(&mut self, now: Timestamp) -> Admission {
        match self.state {
            BreakerState::Closed { .. } => self.permit(false),
            BreakerState::Open { until } if is_before(now, until) => {
                Admission::Rejected { retry_at: until }
            }
            BreakerState::Open { .. } => {
                self.enter(BreakerState::HalfOpen { probe_started: now });
                self.permit(true)
            }
            BreakerState::HalfOpen { probe_started } => {
                let lost_at = later(probe_started, self.config.probe_timeout);
                if is_before(now, lost_at) {
                    let recheck = later(now, self.config.probe_recheck);
                    Admission::Rejected {
                        retry_at: if is_before(recheck, lost_at) {
                            recheck
                        } else {
                            lost_at
                        },
                    }
                } else {
                    self.enter(BreakerState::HalfOpen { probe_started: now });
                    self.permit(true)
                }
            }
        }
    }

    fn permit(&self, probe: bool) -> Admission {
        Admission::Allowed(Permit {
            generation: self.generation,
            probe,
        })
    }

    /// Records how the request sent under `permit` went.
    pub fn record(&mut self, permit: Permit, succeeded: bool, now: Timestamp) {
        if permit.generation != self.generation {
            return;
        }
        match self.state {
            BreakerState::Closed {
                consecutive_failures,
            } => {
                if succeeded {
                    self.state = BreakerState::Closed {
                        consecutive_failures: 0,
                    };
                } else if consecutive_failures + 1 >= self.config.failure_threshold {
                    self.cooldown = self.config.cooldown;
                    self.enter(BreakerState::Open {
                        until: later(now, self.cooldown),
                    });
                } else {
                    self.state = BreakerState::Closed {
                        consecutive_failures: consecutive_failures + 1,
                    };
                }
            }
            BreakerState::HalfOpen { .. } if succeeded => {
                self.cooldown = self.config.cooldown;
                self.enter(BreakerState::Closed {
                    consecutive_failures: 0,
                });
            }
            BreakerState::HalfOpen { .. } => {
                self.cooldown = (self.cooldown * 2).min(self.config.max_cooldown);
                self.enter(BreakerState::Open {
                    until: later(now, self.cooldown),
                });
            }
            // Opening moves the generation, so no current permit exists.
            BreakerState::Open { .. } => {}
        }
    }
}

/// A bound on one endpoint's requests in flight.
#[derive(Debug, Clone)]
pub struct ConcurrencyBudget {
    limit: u32,
    in_flight: u32,
}

/// One request's place in a [`ConcurrencyBudget`]; give it back with
/// [`ConcurrencyBudget::release`].
#[derive(Debug, PartialEq, Eq)]
pub struct Slot(());

impl ConcurrencyBudget {
    pub fn new(limit: NonZeroU32) -> ConcurrencyBudget {
        ConcurrencyBudget {
            limit: limit.get(),
            in_flight: 0,
        }
    }

    /// A slot, or `None` when `limit` requests are already in flight.
    pub fn try_acquire(&mut self) -> Option<Slot> {
        (self.in_flight < self.limit).then(|| {
            self.in_flight += 1;
            Slot(())
        })
    }

    pub fn release(&mut self, slot: Slot) {
        let Slot(()) = slot;
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }
}

/// A token bucket of `per_second` deliveries a second holding up to
/// `burst` tokens, kept as its theoretical arrival time (GCRA) in integer
/// nanoseconds, so no rounding drifts over a long run.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Nanoseconds between two tokens.
    interval: i128,
    /// How far ahead of the arrival time a request may come: `burst - 1`
    /// intervals.
    tolerance: i128,
    /// When the bucket would next be full-rate again; `None` before the
    /// first request.
    theoretical_arrival: Option<i128>,
}

impl RateLimit {
    /// `per_second` deliveries a second, with bursts of up to `burst`.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> RateLimit {
        let interval = 1_000_000_000 / i128::from(per_second.get());
        RateLimit {
            interval,
            tolerance: interval * i128::from(burst.get() - 1),
            theoretical_arrival: None,
        }
    }

    /// `per_second` deliveries a second, bursting up to one second's worth.
    pub fn per_second(per_second: NonZeroU32) -> RateLimit {
        RateLimit::new(per_second, per_second)
    }

    /// `rate` deliveries a second (fractions allowed: `0.5` is one every
    /// two seconds), bursting up to one second's worth (at least one). A
    /// rate that is not a positive number is taken as one a day.
    pub fn of_rate(rate: f64) -> RateLimit {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0 / 86_400.0
        };
        let interval = ((1e9 / rate) as i128).max(1);
        let burst = (rate.floor() as i128).max(1);
        RateLimit {
            interval,
            tolerance: interval * (burst - 1),
            theoretical_arrival: None,
        }
    }

    /// Takes a token at `now`, or says when the next one is free.
    pub fn try_acquire(&mut self, now: Timestamp) -> Result<(), Timestamp> {
        let now_nanos = now.unix_nanos();
        let arrival = self.theoretical_arrival.unwrap_or(now_nanos);
        let earliest = arrival - self.tolerance;
        if now_nanos < earliest {
            let wait = u64::try_from(earliest - now_nanos).unwrap_or(u64::MAX);
            return Err(later(now, Duration::from_nanos(wait)));
        }
        self.theoretical_arrival = Some(arrival.max(now_nanos) + self.interval);
        Ok(())
    }
}

#[cfg(test)]
#[path = "breaker_tests.rs"]
mod tests;
