//! The retry schedule as data: a [`RetryPolicy`] is the list of waits
//! between attempts (the first attempt goes at once; each entry is the wait
//! before one more retry), each wait jittered by ±20 % from an injected
//! [`Jitter`] source, so a clock-driven test sees exactly which instant
//! comes next. Also `Retry-After` parsing, and [`next_step`], which turns
//! one attempt's [`Verdict`] into what the worker does next.

use std::time::{Duration, SystemTime};

use herald_core::error::{pointer_push, type_name};
use herald_core::{ErrorKind, FieldError, Timestamp};
use serde_json::{Map, Value};

use super::classify::Verdict;
use super::later;

/// The default waits: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (eight
/// attempts over about 27 hours).
pub const DEFAULT_SCHEDULE_SECONDS: [u64; 7] = [5, 300, 1_800, 7_200, 18_000, 36_000, 36_000];

/// The most retries a policy may ask for.
pub const MAX_RETRIES: usize = 20;

/// The longest single wait a policy may ask for: one day.
pub const MAX_WAIT_SECONDS: u64 = 86_400;

/// How far each wait moves either way: ±20 % of its nominal value.
pub const JITTER_FRACTION: f64 = 0.2;

/// Where the randomness of jitter comes from: each call gives a number in
/// `[0, 1)`. Any `FnMut() -> f64` is one, so a test passes a closure.
pub trait Jitter {
    fn unit(&mut self) -> f64;
}

impl<F: FnMut() -> f64> Jitter for F {
    fn unit(&mut self) -> f64 {
        self()
    }
}

/// A small seeded generator (SplitMix64) for jitter: spreading retries
/// needs no cryptographic quality, and a seed makes a run repeatable.
#[derive(Debug, Clone)]
pub struct SeededJitter(u64);

impl SeededJitter {
    pub fn new(seed: u64) -> SeededJitter {
        SeededJitter(seed)
    }
}

impl Jitter for SeededJitter {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits as a fraction: uniform in [0, 1).
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `nominal` moved by up to ±20 %, by one draw of `jitter`. A draw outside
/// `[0, 1)` (a faulty source) is clamped, so the result always stays within
/// the bounds.
pub fn jittered(nominal: Duration, jitter: &mut impl Jitter) -> Duration {
    let unit = jitter.unit();
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let factor = 1.0 + JITTER_FRACTION * (2.0 * unit - 1.0);
    // Only a nominal wait near `Duration::MAX` overflows; it stays as it is.
    Duration::try_from_secs_f64(nominal.as_secs_f64() * factor).unwrap_or(nominal)
}

/// A subscription's retry schedule: the waits before each retry, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    waits: Vec<Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            waits: DEFAULT_SCHEDULE_SECONDS
                .iter()
                .map(|s| Duration::from_secs(*s))
                .collect(),
        }
    }
}

impl RetryPolicy {
    /// The policy's fields, for an unknown-key message.
    pub const FIELDS: &'static str = "schedule";

    /// Parses `{"schedule": [1, 2, 4]}` found at JSON pointer `at` of a
    /// request body, naming every bad field as a pointer under `at`.
    pub fn from_json(value: &Value, at: &str) -> Result<RetryPolicy, Vec<FieldError>> {
        let error = |field: String, kind, message: String| FieldError {
            field,
            message,
            kind,
        };
        let Value::Object(object) = value else {
            return Err(vec![error(
                at.to_string(),
                ErrorKind::InvalidType,
                format!(
                    "expected an object like {{\"schedule\": [5, 300]}}, got {}",
                    type_name(value)
                ),
            )]);
        };
        let mut errors: Vec<FieldError> = unknown_keys(object, at);
        let schedule_at = pointer_push(at, "schedule");
        let waits = match object.get("schedule") {
            None => {
                errors.push(error(
                    schedule_at,
                    ErrorKind::Missing,
                    "a retry policy needs `schedule`: the wait in seconds before each retry".into(),
                ));
                Vec::new()
            }
            Some(Value::Array(items)) => {
                if items.len() > MAX_RETRIES {
                    errors.push(error(
                        schedule_at.clone(),
                        ErrorKind::InvalidValue,
                        format!(
                            "{} retries asked for; at most {MAX_RETRIES} are allowed",
                            items.len()
                        ),
                    ));
                }
                let mut waits = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let item_at = pointer_push(&schedule_at, &i.to_string());
                    match item.as_u64() {
                        Some(seconds) if seconds <= MAX_WAIT_SECONDS => {
                            waits.push(Duration::from_secs(seconds))
                        }
                        Some(seconds) => errors.push(error(
                            item_at,
                            ErrorKind::InvalidValue,
                            format!(
                                "a wait of {seconds} s is too long; at most {MAX_WAIT_SECONDS} s (one day)"
                            ),
                        )),
                        None if item.is_number() => errors.push(error(
                            item_at,
                            ErrorKind::InvalidValue,
                            format!(
                                "expected a whole number of seconds from 0 to {MAX_WAIT_SECONDS}, got {item}"
                            ),
                        )),
                        None => errors.push(error(
                            item_at,
                            ErrorKind::InvalidType,
                            format!(
                                "expected a whole number of seconds, got {}",
                                type_name(item)
                            ),
                        )),
                    }
                }
                waits
            }
            Some(other) => {
                errors.push(error(
                    schedule_at,
                    ErrorKind::InvalidType,
                    format!(
                        "expected an array of waits in seconds, got {}",
                        type_name(other)
                    ),
                ));
                Vec::new()
            }
        };
        if errors.is_empty() {
            Ok(RetryPolicy { waits })
        } else {
            Err(errors)
        }
    }

    /// The JSON form [`RetryPolicy::from_json`] reads back.
    pub fn to_json(&self) -> Value {
        let seconds: Vec<Value> = self.waits.iter().map(|w| w.as_secs().into()).collect();
        serde_json::json!({ "schedule": seconds })
    }

    /// The waits before each retry, unjittered.
    pub fn waits(&self) -> &[Duration] {
        &self.waits
    }

    /// How many attempts the policy allows in all: the first plus each retry.
    pub fn max_attempts(&self) -> u32 {
        self.waits.len() as u32 + 1
    }
}

fn unknown_keys(object: &Map<String, Value>, at: &str) -> Vec<FieldError> {
    object
        .keys()
        .filter(|key| key.as_str() != "schedule")
        .map(|key| FieldError {
            field: pointer_push(at, key),
            kind: ErrorKind::InvalidValue,
            message: format!(
                "unknown retry policy field; known fields: {}",
                RetryPolicy::FIELDS
            ),
        })
        .collect()
}

/// When the next attempt is due after `attempts_made` attempts, or `None`
/// when the policy is exhausted (the delivery becomes a dead letter). The
/// first attempt (`attempts_made == 0`) is due at once; retry `k` waits the
/// policy's `k`-th entry, jittered.
pub fn next_attempt(
    policy: &RetryPolicy,
    attempts_made: u32,
    now: Timestamp,
    jitter: &mut impl Jitter,
) -> Option<Timestamp> {
    let Some(retry) = attempts_made.checked_sub(1) else {
        return Some(now);
    };
    let nominal = policy.waits.get(retry as usize)?;
    Some(later(now, jittered(*nominal, jitter)))
}

/// What the worker does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// The endpoint took it: done.
    Delivered,
    /// The endpoint is gone (410): disable the subscription, keep the
    /// delivery as a dead letter.
    DisableSubscription,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// The policy is exhausted: a dead letter.
    DeadLetter,
}

/// Turns one attempt's verdict into the next step. `attempts_made` counts
/// the attempt just classified. A `Retry-After` wait replaces the
/// schedule's wait but still uses up one retry, so an endpoint that answers
/// 429 for ever still ends in the dead-letter queue.
pub fn next_step(
    policy: &RetryPolicy,
    attempts_made: u32,
    verdict: Verdict,
    now: Timestamp,
    jitter: &mut impl Jitter,
) -> NextStep {
    match verdict {
        Verdict::Delivered => NextStep::Delivered,
        Verdict::Disable => NextStep::DisableSubscription,
        Verdict::Retry => match next_attempt(policy, attempts_made, now, jitter) {
            Some(at) => NextStep::RetryAt(at),
            None => NextStep::DeadLetter,
        },
        Verdict::RetryAfter(wait) => {
            if (attempts_made as usize) > policy.waits.len() {
                NextStep::DeadLetter
            } else {
                NextStep::RetryAt(later(now, wait))
            }
        }
    }
}

/// The longest `Retry-After` Herald honours by default: one hour.
pub const DEFAULT_RETRY_AFTER_CAP: Duration = Duration::from_secs(3_600);

/// Parses a `Retry-After` value, either delta-seconds (`120`) or an
/// HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`, relative to `now`; a date
/// in the past means at once), capped at `cap`. `None` when the value is
/// neither, so the schedule applies.
pub fn parse_retry_after(value: &str, now: Timestamp, cap: Duration) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits but too many for a u64: longer than any cap.
        let seconds = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds).min(cap));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    // An HTTP-date is never before 1970, so this holds.
    let date_nanos = date.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_nanos() as i128;
    let wait_nanos = (date_nanos - now.unix_nanos()).max(0);
    let wait = u64::try_from(wait_nanos).map_or(cap, Duration::from_nanos);
    Some(wait.min(cap))
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
