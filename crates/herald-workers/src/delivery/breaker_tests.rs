use proptest::prelude::*;

use super::*;

fn base() -> Timestamp {
    Timestamp::parse("2026-01-01T00:00:00Z").unwrap()
}

/// `base` moved by `seconds` (either way).
fn at(seconds: i64) -> Timestamp {
    Timestamp::from(base().as_offset_date_time() + time::Duration::seconds(seconds))
}

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 3,
        cooldown: Duration::from_secs(10),
        max_cooldown: Duration::from_secs(35),
        probe_timeout: Duration::from_secs(60),
        probe_recheck: Duration::from_secs(2),
    }
}

fn allowed(admission: Admission) -> Permit {
    match admission {
        Admission::Allowed(permit) => permit,
        Admission::Rejected { retry_at } => panic!("rejected until {retry_at}"),
    }
}

fn rejected_until(admission: Admission) -> Timestamp {
    match admission {
        Admission::Rejected { retry_at } => retry_at,
        Admission::Allowed(permit) => panic!("allowed: {permit:?}"),
    }
}

fn fail(breaker: &mut CircuitBreaker, now: Timestamp) {
    let permit = allowed(breaker.try_acquire(now));
    breaker.record(permit, false, now);
}

#[test]
fn opens_after_consecutive_failures_only() {
    let mut breaker = CircuitBreaker::new(config());
    fail(&mut breaker, at(0));
    fail(&mut breaker, at(0));
    // A success in between starts the count again.
    let permit = allowed(breaker.try_acquire(at(0)));
    breaker.record(permit, true, at(0));
    fail(&mut breaker, at(1));
    fail(&mut breaker, at(1));
    assert_eq!(
        breaker.state(),
        BreakerState::Closed {
            consecutive_failures: 2
        }
    );
    fail(&mut breaker, at(2));
    assert_eq!(breaker.state(), BreakerState::Open { until: at(12) });
    assert_eq!(rejected_until(breaker.try_acquire(at(11))), at(12));
}

#[test]
fn half_open_lets_exactly_one_probe_through() {
    let mut breaker = CircuitBreaker::new(config());
    for _ in 0..3 {
        fail(&mut breaker, at(0));
    }
    let probe = allowed(breaker.try_acquire(at(10)));
    assert!(probe.is_probe());
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen {
            probe_started: at(10)
        }
    );
    // Refused while the probe is out: ask again soon (the probe may close
    // the breaker), never after the probe would count as lost.
    assert_eq!(rejected_until(breaker.try_acquire(at(10))), at(12));
    assert_eq!(rejected_until(breaker.try_acquire(at(69))), at(70));
    breaker.record(probe, true, at(11));
    assert_eq!(
        breaker.state(),
        BreakerState::Closed {
            consecutive_failures: 0
        }
    );
    assert!(!allowed(breaker.try_acquire(at(11))).is_probe());
}

#[test]
fn failed_probes_reopen_with_a_growing_capped_cooldown() {
    let mut breaker = CircuitBreaker::new(config());
    for _ in 0..3 {
        fail(&mut breaker, at(0));
    }
    let mut now = 10;
    for cooldown in [20, 35, 35] {
        let probe = allowed(breaker.try_acquire(at(now)));
        breaker.record(probe, false, at(now));
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                until: at(now + cooldown)
            }
        );
        now += cooldown;
    }
    // A successful probe resets the cooldown to its first length.
    let probe = allowed(breaker.try_acquire(at(now)));
    breaker.record(probe, true, at(now));
    for _ in 0..3 {
        fail(&mut breaker, at(now));
    }
    assert_eq!(
        breaker.state(),
        BreakerState::Open {
            until: at(now + 10)
        }
    );
}

#[test]
fn a_lost_probe_is_replaced_after_the_probe_timeout() {
    let mut breaker = CircuitBreaker::new(config());
    for _ in 0..3 {
        fail(&mut breaker, at(0));
    }
    let lost = allowed(breaker.try_acquire(at(10)));
    let second = allowed(breaker.try_acquire(at(70)));
    assert!(second.is_probe());
    // The lost probe's late answer decides nothing.
    breaker.record(lost, true, at(71));
    assert_eq!(
        breaker.state(),
        BreakerState::HalfOpen {
            probe_started: at(70)
        }
    );
    breaker.record(second, false, at(72));
    assert_eq!(breaker.state(), BreakerState::Open { until: at(92) });
}

#[test]
fn late_answers_from_before_a_trip_are_ignored() {
    let mut breaker = CircuitBreaker::new(config());
    let slow = allowed(breaker.try_acquire(at(0)));
    for _ in 0..3 {
        fail(&mut breaker, at(1));
    }
    let probe = allowed(breaker.try_acquire(at(11)));
    // Sent while closed, answered during the probe: not the probe's answer.
    breaker.record(slow, true, at(12));
    assert!(matches!(breaker.state(), BreakerState::HalfOpen { .. }));
    breaker.record(probe, false, at(13));
    assert!(matches!(breaker.state(), BreakerState::Open { .. }));
}

/// A reference breaker written as flat fields and whole seconds.
#[derive(Debug)]
struct Model {
    failures: u32,
    open_until: Option<i64>,
    probe_since: Option<i64>,
    cooldown: i64,
    epoch: u64,
}

impl Model {
    const THRESHOLD: u32 = 3;
    const COOLDOWN: i64 = 10;
    const MAX_COOLDOWN: i64 = 35;
    const PROBE_TIMEOUT: i64 = 60;
    const PROBE_RECHECK: i64 = 2;

    fn new() -> Model {
        Model {
            failures: 0,
            open_until: None,
            probe_since: None,
            cooldown: Self::COOLDOWN,
            epoch: 0,
        }
    }

    /// `Ok((epoch, is_probe))` or `Err(retry_at)`.
    fn acquire(&mut self, now: i64) -> Result<(u64, bool), i64> {
        if let Some(until) = self.open_until {
            if now < until {
                return Err(until);
            }
            self.open_until = None;
            self.probe_since = Some(now);
            self.epoch += 1;
            return Ok((self.epoch, true));
        }
        if let Some(since) = self.probe_since {
            if now < since + Self::PROBE_TIMEOUT {
                return Err((now + Self::PROBE_RECHECK).min(since + Self::PROBE_TIMEOUT));
            }
            self.probe_since = Some(now);
            self.epoch += 1;
            return Ok((self.epoch, true));
        }
        Ok((self.epoch, false))
    }

    fn record(&mut self, epoch: u64, succeeded: bool, now: i64) {
        if epoch != self.epoch {
            return;
        }
        if self.probe_since.take().is_some() {
            self.epoch += 1;
            self.failures = 0;
            if succeeded {
                self.cooldown = Self::COOLDOWN;
            } else {
                self.cooldown = (self.cooldown * 2).min(Self::MAX_COOLDOWN);
                self.open_until = Some(now + self.cooldown);
            }
        } else if succeeded {
            self.failures = 0;
        } else {
            self.failures += 1;
            if self.failures >= Self::THRESHOLD {
                self.failures = 0;
                self.cooldown = Self::COOLDOWN;
                self.open_until = Some(now + self.cooldown);
                self.epoch += 1;
            }
        }
    }

    fn state(&self) -> BreakerState {
        match (self.open_until, self.probe_since) {
            (Some(until), _) => BreakerState::Open { until: at(until) },
            (None, Some(since)) => BreakerState::HalfOpen {
                probe_started: at(since),
            },
            (None, None) => BreakerState::Closed {
                consecutive_failures: self.failures,
            },
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Move the clock (backwards too: a clock that jumps back is a case).
    Advance(i64),
    Acquire,
    /// Answer the outstanding permit at this index (modulo their number).
    Answer(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (-5i64..90).prop_map(Op::Advance),
        3 => Just(Op::Acquire),
        3 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Answer(i, ok)),
    ]
}

proptest! {
    #[test]
    fn the_breaker_follows_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let mut breaker = CircuitBreaker::new(config());
        let mut model = Model::new();
        let mut now = 0i64;
        // Outstanding permits, each beside the model's (epoch, is_probe).
        let mut outstanding: Vec<(Permit, (u64, bool))> = Vec::new();
        for op in ops {
            match op {
                Op::Advance(by) => now += by,
                Op::Acquire => match (breaker.try_acquire(at(now)), model.acquire(now)) {
                    (Admission::Allowed(permit), Ok(expected)) => {
                        prop_assert_eq!(permit.is_probe(), expected.1);
                        if permit.is_probe() {
                            // No other probe of the current state is still out.
                            prop_assert!(outstanding.iter().all(|(p, _)| !p.is_probe() || p.generation != permit.generation));
                        }
                        outstanding.push((permit, expected));
                    }
                    (Admission::Rejected { retry_at }, Err(expected)) => {
                        prop_assert_eq!(retry_at, at(expected));
                        prop_assert!(retry_at.unix_nanos() > at(now).unix_nanos());
                    }
                    (got, expected) => prop_assert!(false, "breaker {:?}, model {:?}", got, expected),
                },
                Op::Answer(i, succeeded) => {
                    if !outstanding.is_empty() {
                        let (permit, (epoch, _)) = outstanding.swap_remove(i % outstanding.len());
                        breaker.record(permit, succeeded, at(now));
                        model.record(epoch, succeeded, now);
                    }
                }
            }
            prop_assert_eq!(breaker.state(), model.state());
        }
    }

    #[test]
    fn a_rate_limit_never_admits_more_than_its_rate_and_burst(
        per_second in 1u32..50,
        burst in 1u32..8,
        gaps_ms in proptest::collection::vec(0i64..400, 1..200),
    ) {
        let mut limit = RateLimit::new(NonZeroU32::new(per_second).unwrap(), NonZeroU32::new(burst).unwrap());
        let interval = 1_000_000_000 / i128::from(per_second);
        let tolerance = interval * i128::from(burst - 1);
        let mut now_ms = 0i64;
        let mut admitted: Vec<i128> = Vec::new();
        for gap in gaps_ms {
            now_ms += gap;
            let now = Timestamp::from(base().as_offset_date_time() + time::Duration::milliseconds(now_ms));
            let before = limit.clone();
            match limit.try_acquire(now) {
                Ok(()) => admitted.push(now.unix_nanos()),
                Err(retry_at) => {
                    prop_assert!(retry_at.unix_nanos() > now.unix_nanos());
                    // The answer is exact: a token is free at that instant.
                    let mut probe = before;
                    prop_assert_eq!(probe.try_acquire(retry_at), Ok(()));
                }
            }
        }
        // k admissions within a window of length w need (k-1)·interval ≤ w + tolerance.
        for i in 0..admitted.len() {
            for j in i..admitted.len() {
                let k = (j - i + 1) as i128;
                prop_assert!((k - 1) * interval <= admitted[j] - admitted[i] + tolerance);
            }
        }
    }
}

#[test]
fn a_rate_limit_bursts_then_paces() {
    let mut limit = RateLimit::new(NonZeroU32::new(2).unwrap(), NonZeroU32::new(3).unwrap());
    for _ in 0..3 {
        assert_eq!(limit.try_acquire(at(0)), Ok(()));
    }
    let half = Timestamp::from(base().as_offset_date_time() + time::Duration::milliseconds(500));
    assert_eq!(limit.try_acquire(at(0)), Err(half));
    assert_eq!(limit.try_acquire(half), Ok(()));
    assert!(limit.try_acquire(half).is_err());
    // Idle long enough, the whole burst is back (and no more).
    for _ in 0..3 {
        assert_eq!(limit.try_acquire(at(100)), Ok(()));
    }
    assert!(limit.try_acquire(at(100)).is_err());
}

#[test]
fn a_concurrency_budget_bounds_requests_in_flight() {
    let mut budget = ConcurrencyBudget::new(NonZeroU32::new(2).unwrap());
    let first = budget.try_acquire().unwrap();
    let second = budget.try_acquire().unwrap();
    assert_eq!(budget.try_acquire(), None);
    assert_eq!(budget.in_flight(), 2);
    budget.release(first);
    let third = budget.try_acquire().unwrap();
    budget.release(second);
    budget.release(third);
    assert_eq!(budget.in_flight(), 0);
}
