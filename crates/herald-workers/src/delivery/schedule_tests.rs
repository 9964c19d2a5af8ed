use proptest::prelude::*;
use serde_json::json;

use super::*;

fn now() -> Timestamp {
    Timestamp::parse("2026-01-01T00:00:00Z").unwrap()
}

fn seconds_after(at: Timestamp, base: Timestamp) -> f64 {
    (at.unix_nanos() - base.unix_nanos()) as f64 / 1e9
}

/// A jitter source that always draws `unit`.
fn fixed(unit: f64) -> impl FnMut() -> f64 {
    move || unit
}

#[test]
fn the_default_schedule_is_eight_attempts() {
    let policy = RetryPolicy::default();
    assert_eq!(policy.max_attempts(), 8);
    let mut mid = fixed(0.5);
    assert_eq!(next_attempt(&policy, 0, now(), &mut mid), Some(now()));
    let waits: Vec<f64> = (1..=7)
        .map(|made| seconds_after(next_attempt(&policy, made, now(), &mut mid).unwrap(), now()))
        .collect();
    assert_eq!(
        waits,
        [5.0, 300.0, 1_800.0, 7_200.0, 18_000.0, 36_000.0, 36_000.0]
    );
    assert_eq!(next_attempt(&policy, 8, now(), &mut mid), None);
}

#[test]
fn jitter_spans_plus_minus_twenty_percent() {
    let policy = RetryPolicy::default();
    let low = next_attempt(&policy, 2, now(), &mut fixed(0.0)).unwrap();
    assert_eq!(seconds_after(low, now()), 240.0);
    let high = next_attempt(&policy, 2, now(), &mut fixed(0.999_999)).unwrap();
    assert!((seconds_after(high, now()) - 360.0).abs() < 0.01);
    // A faulty source is clamped into the band, never outside it.
    for unit in [-3.0, 7.0, f64::NAN, f64::INFINITY] {
        let wait = jittered(Duration::from_secs(100), &mut fixed(unit));
        assert!(
            (80.0..=120.0).contains(&wait.as_secs_f64()),
            "{unit}: {wait:?}"
        );
    }
}

#[test]
fn the_seeded_source_is_repeatable_and_in_range() {
    let draws = |seed| {
        let mut jitter = SeededJitter::new(seed);
        (0..1_000).map(|_| jitter.unit()).collect::<Vec<f64>>()
    };
    assert_eq!(draws(7), draws(7));
    assert_ne!(draws(7), draws(8));
    let all = draws(42);
    assert!(all.iter().all(|u| (0.0..1.0).contains(u)));
    // Spread over the interval, not stuck in one corner.
    assert!(all.iter().any(|u| *u < 0.1) && all.iter().any(|u| *u > 0.9));
}

#[test]
fn a_policy_parses_and_round_trips() {
    let policy = RetryPolicy::from_json(&json!({"schedule": [1, 2, 4]}), "/retry_policy").unwrap();
    assert_eq!(policy.waits(), [1, 2, 4].map(Duration::from_secs));
    assert_eq!(policy.max_attempts(), 4);
    assert_eq!(policy.to_json(), json!({"schedule": [1, 2, 4]}));
    let empty = RetryPolicy::from_json(&json!({"schedule": []}), "").unwrap();
    assert_eq!(empty.max_attempts(), 1);
    assert_eq!(
        RetryPolicy::from_json(&RetryPolicy::default().to_json(), "").unwrap(),
        RetryPolicy::default()
    );
}

#[test]
fn every_bad_field_is_named() {
    let errors = RetryPolicy::from_json(
        &json!({"schedule": [1, -2, 1.5, "3", 86_401, 86_400], "backoff": "x", "a/b": 1}),
        "/retry_policy",
    )
    .unwrap_err();
    let found: Vec<(&str, ErrorKind)> = errors.iter().map(|e| (e.field.as_str(), e.kind)).collect();
    assert_eq!(
        found,
        [
            ("/retry_policy/backoff", ErrorKind::InvalidValue),
            ("/retry_policy/a~1b", ErrorKind::InvalidValue),
            ("/retry_policy/schedule/1", ErrorKind::InvalidValue),
            ("/retry_policy/schedule/2", ErrorKind::InvalidValue),
            ("/retry_policy/schedule/3", ErrorKind::InvalidType),
            ("/retry_policy/schedule/4", ErrorKind::InvalidValue),
        ]
    );
    assert!(errors[5].message.contains("86400"), "{}", errors[5].message);

    let too_many = RetryPolicy::from_json(&json!({"schedule": vec![1; 21]}), "/p").unwrap_err();
    assert_eq!(too_many.len(), 1);
    assert_eq!(too_many[0].field, "/p/schedule");
    assert!(
        too_many[0].message.contains("at most 20"),
        "{}",
        too_many[0].message
    );

    let missing = RetryPolicy::from_json(&json!({}), "/p").unwrap_err();
    assert_eq!(
        (missing[0].field.as_str(), missing[0].kind),
        ("/p/schedule", ErrorKind::Missing)
    );
    let not_array = RetryPolicy::from_json(&json!({"schedule": 5}), "/p").unwrap_err();
    assert_eq!(
        (not_array[0].field.as_str(), not_array[0].kind),
        ("/p/schedule", ErrorKind::InvalidType)
    );
    let not_object = RetryPolicy::from_json(&json!([1]), "/p").unwrap_err();
    assert_eq!(
        (not_object[0].field.as_str(), not_object[0].kind),
        ("/p", ErrorKind::InvalidType)
    );
}

#[test]
fn next_step_follows_the_verdict() {
    let policy = RetryPolicy::from_json(&json!({"schedule": [10, 20]}), "").unwrap();
    let step = |made, verdict| next_step(&policy, made, verdict, now(), &mut fixed(0.5));
    assert_eq!(step(1, Verdict::Delivered), NextStep::Delivered);
    assert_eq!(step(1, Verdict::Disable), NextStep::DisableSubscription);
    let in_ten = Timestamp::from(now().as_offset_date_time() + time::Duration::seconds(10));
    assert_eq!(step(1, Verdict::Retry), NextStep::RetryAt(in_ten));
    assert_eq!(step(3, Verdict::Retry), NextStep::DeadLetter);
    // Retry-After replaces the wait, unjittered, but still uses a retry.
    let in_99 = Timestamp::from(now().as_offset_date_time() + time::Duration::seconds(99));
    let asked = Verdict::RetryAfter(Duration::from_secs(99));
    assert_eq!(step(2, asked), NextStep::RetryAt(in_99));
    assert_eq!(step(3, asked), NextStep::DeadLetter);
}

#[test]
fn retry_after_reads_seconds_and_dates_with_a_cap() {
    let at = Timestamp::parse("2015-10-21T07:27:00.250Z").unwrap();
    let cap = Duration::from_secs(600);
    assert_eq!(
        parse_retry_after("120", at, cap),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after(" 0 ", at, cap), Some(Duration::ZERO));
    assert_eq!(parse_retry_after("601", at, cap), Some(cap));
    assert_eq!(
        parse_retry_after("99999999999999999999999", at, cap),
        Some(cap)
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at, cap),
        Some(Duration::from_millis(59_750))
    );
    // The obsolete forms HTTP still asks recipients to read.
    assert_eq!(
        parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", at, cap),
        Some(Duration::from_millis(59_750))
    );
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", at, cap),
        Some(Duration::ZERO)
    );
    assert_eq!(
        parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", at, cap),
        Some(cap)
    );
    for bad in ["", "-5", "1.5", "soon", "Wed, 21 Oct 2015"] {
        assert_eq!(parse_retry_after(bad, at, cap), None, "{bad:?}");
    }
}

proptest! {
    #[test]
    fn jitter_stays_within_twenty_percent(nominal_ms in 0u64..200_000_000, unit in 0.0f64..1.0) {
        let nominal = Duration::from_millis(nominal_ms);
        let wait = jittered(nominal, &mut fixed(unit)).as_secs_f64();
        let n = nominal.as_secs_f64();
        prop_assert!(wait >= 0.0);
        prop_assert!(wait >= n * 0.8 - 1e-6 && wait <= n * 1.2 + 1e-6, "{} -> {}", n, wait);
    }

    #[test]
    fn every_retry_lands_within_its_band_and_the_policy_ends_on_time(
        schedule in proptest::collection::vec(0u64..=MAX_WAIT_SECONDS, 0..=MAX_RETRIES),
        seed in any::<u64>(),
    ) {
        let policy = RetryPolicy::from_json(&json!({ "schedule": schedule }), "").unwrap();
        let mut jitter = SeededJitter::new(seed);
        prop_assert_eq!(next_attempt(&policy, 0, now(), &mut jitter), Some(now()));
        for (retry, nominal) in schedule.iter().enumerate() {
            let at = next_attempt(&policy, retry as u32 + 1, now(), &mut jitter).unwrap();
            let wait = seconds_after(at, now());
            let n = *nominal as f64;
            prop_assert!(wait >= n * 0.8 - 1e-6 && wait <= n * 1.2 + 1e-6, "retry {}: {} vs {}", retry, wait, n);
        }
        let made = schedule.len() as u32 + 1;
        prop_assert_eq!(policy.max_attempts(), made);
        prop_assert_eq!(next_attempt(&policy, made, now(), &mut jitter), None);
        prop_assert_eq!(next_step(&policy, made, Verdict::Retry, now(), &mut jitter), NextStep::DeadLetter);
        prop_assert_eq!(
            next_step(&policy, made, Verdict::RetryAfter(Duration::from_secs(1)), now(), &mut jitter),
            NextStep::DeadLetter
        );
    }
}
