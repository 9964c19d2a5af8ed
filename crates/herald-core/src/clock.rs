//! Time and ids as values passed in, never read from the environment by the
//! code that uses them: a [`Clock`] says what time it is, an [`IdSource`]
//! mints event ids. Production uses [`SystemClock`] and [`UuidV7Ids`];
//! tests use [`ManualClock`] (time moves only when the test says so) and
//! [`SequentialIds`] (the same ids every run), so leases, retry schedules
//! and timeouts can be tested without waiting for them.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use time::Duration;

use crate::model::EventId;
use crate::timestamp::Timestamp;

/// What time it is.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The machine's wall clock (UTC).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that stands still until told to move.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(at: Timestamp) -> ManualClock {
        ManualClock(Mutex::new(at))
    }

    /// Sets the time (backwards too: a clock that jumps back is a case to test).
    pub fn set(&self, at: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Moves the time on by `by` and returns the new time.
    pub fn advance(&self, by: Duration) -> Timestamp {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now = Timestamp::from(now.as_offset_date_time() + by);
        *now
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where event ids come from.
pub trait IdSource: Send + Sync + fmt::Debug {
    /// A fresh id for an event accepted at `at`; ids from one source never
    /// repeat and, for non-decreasing `at`, never decrease.
    fn event_id(&self, at: Timestamp) -> EventId;
}

/// UUIDv7 ids whose time part is the given instant, with a counter that
/// keeps ids minted in the same millisecond in order (uuid's `ContextV7`).
#[derive(Debug, Default)]
pub struct UuidV7Ids(Mutex<uuid::ContextV7>);

impl UuidV7Ids {
    pub const fn new() -> UuidV7Ids {
        UuidV7Ids(Mutex::new(uuid::ContextV7::new()))
    }
}

impl IdSource for UuidV7Ids {
    fn event_id(&self, at: Timestamp) -> EventId {
        let (secs, nanos) = unix_parts(at);
        let ts = uuid::Timestamp::from_unix(&self.0, secs, nanos);
        EventId::from_v7(uuid::Uuid::new_v7(ts))
    }
}

/// Deterministic ids for tests: the time part is `at`'s millisecond, the
/// rest a counter, so a run mints the same ids every time.
#[derive(Debug, Default)]
pub struct SequentialIds(AtomicU64);

impl IdSource for SequentialIds {
    fn event_id(&self, at: Timestamp) -> EventId {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        let (secs, nanos) = unix_parts(at);
        let millis = secs.saturating_mul(1000) + u64::from(nanos / 1_000_000);
        // Version and variant bits land in bytes 6 and 8, above the counter's
        // low bytes, so ids still grow with `n`.
        let mut rand = [0u8; 10];
        rand[2..].copy_from_slice(&n.to_be_bytes());
        EventId::from_v7(uuid::Builder::from_unix_timestamp_millis(millis, &rand).into_uuid())
    }
}

fn unix_parts(at: Timestamp) -> (u64, u32) {
    let nanos = at.as_offset_date_time().unix_timestamp_nanos().max(0) as u128;
    (
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(at("2026-01-01T00:00:00Z"));
        assert_eq!(clock.now(), at("2026-01-01T00:00:00Z"));
        assert_eq!(clock.now(), at("2026-01-01T00:00:00Z"));
        let later = clock.advance(Duration::seconds(90));
        assert_eq!(later, at("2026-01-01T00:01:30Z"));
        assert_eq!(clock.now(), later);
        clock.set(at("2025-12-31T23:59:59Z"));
        assert_eq!(clock.now(), at("2025-12-31T23:59:59Z"));
    }

    #[test]
    fn uuid_v7_ids_carry_the_given_time_and_stay_ordered_within_a_millisecond() {
        let ids = UuidV7Ids::default();
        let t = at("2026-03-04T05:06:07.123456Z");
        let minted: Vec<EventId> = (0..1000).map(|_| ids.event_id(t)).collect();
        let millis = t.as_offset_date_time().unix_timestamp_nanos() / 1_000_000;
        for id in &minted {
            let (secs, nanos) = id.as_uuid().get_timestamp().unwrap().to_unix();
            // The counter may carry into the next milliseconds, never back.
            let got = i128::from(secs) * 1000 + i128::from(nanos / 1_000_000);
            assert!((millis..millis + 5).contains(&got), "{got} vs {millis}");
        }
        assert!(minted.windows(2).all(|w| w[0] < w[1]), "ids out of order");
    }

    #[test]
    fn sequential_ids_repeat_across_runs_and_never_within_one() {
        let t = at("2026-03-04T05:06:07Z");
        let a = SequentialIds::default();
        let b = SequentialIds::default();
        let first: Vec<EventId> = (0..5).map(|_| a.event_id(t)).collect();
        let second: Vec<EventId> = (0..5).map(|_| b.event_id(t)).collect();
        assert_eq!(first, second);
        let mut sorted = first.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 5);
        assert!(first.windows(2).all(|w| w[0] < w[1]));
        // They are valid ids Herald would accept back.
        assert_eq!(EventId::parse(&first[3].to_string()), Ok(first[3]));
    }
}
