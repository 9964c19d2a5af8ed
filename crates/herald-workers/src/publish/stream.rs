//! Bringing an existing JetStream stream to the configured settings:
//! JetStream keeps a stream's settings from its creation, so without this a
//! changed retention would be silently ignored.

use async_nats::jetstream;

/// What must change for an existing stream (`current`) to have the
/// configured retention (`max_age`, `max_bytes`, `duplicate_window`) and to
/// take every subject of `wanted`: the updated config (everything else as it
/// was; subjects only ever added, so an operator's extra subjects stay) and
/// a description of each change. `None` when nothing differs.
/// JetStream keeps a stream's settings from its creation, so without this a
/// changed `HERALD_NATS_MAX_AGE_SECS` would be silently ignored.
pub fn reconcile_stream(
    current: &jetstream::stream::Config,
    wanted: &jetstream::stream::Config,
) -> Option<(jetstream::stream::Config, Vec<String>)> {
    let mut updated = current.clone();
    let mut changes = Vec::new();
    if current.max_age != wanted.max_age {
        changes.push(format!(
            "max_age {}s -> {}s",
            current.max_age.as_secs(),
            wanted.max_age.as_secs()
        ));
        updated.max_age = wanted.max_age;
    }
    // JetStream reports "no limit" as -1; 0 means the same to it.
    let bytes = |b: i64| if b <= 0 { -1 } else { b };
    if bytes(current.max_bytes) != bytes(wanted.max_bytes) {
        changes.push(format!(
            "max_bytes {} -> {}",
            bytes(current.max_bytes),
            bytes(wanted.max_bytes)
        ));
        updated.max_bytes = wanted.max_bytes;
    }
    if current.duplicate_window != wanted.duplicate_window {
        changes.push(format!(
            "duplicate_window {}s -> {}s",
            current.duplicate_window.as_secs(),
            wanted.duplicate_window.as_secs()
        ));
        updated.duplicate_window = wanted.duplicate_window;
    }
    for subject in &wanted.subjects {
        if !current
            .subjects
            .iter()
            .any(|have| subject_covers(have, subject))
        {
            changes.push(format!("subjects + {subject}"));
            updated.subjects.push(subject.clone());
        }
    }
    (!changes.is_empty()).then_some((updated, changes))
}

/// Whether every subject `filter` matches is also matched by `pattern`
/// (NATS wildcards: `*` one token, `>` one or more trailing tokens).
pub fn subject_covers(pattern: &str, filter: &str) -> bool {
    let (mut p, mut f) = (pattern.split('.'), filter.split('.'));
    loop {
        match (p.next(), f.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(t)) if t != ">" => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_subject_pattern_covers_what_its_wildcards_match() {
        for (pattern, filter, covers) in [
            ("herald.>", "herald.>", true),
            (">", "herald.>", true),
            ("herald.>", "herald.events.>", true),
            ("*.>", "herald.>", true),
            ("herald.*", "herald.>", false),
            ("herald.events.>", "herald.>", false),
            ("other.>", "herald.>", false),
            ("herald", "herald.>", false),
            ("herald.*.x", "herald.a.x", true),
            ("herald.*.x", "herald.a.y", false),
            ("a.b", "a.b", true),
            ("a.b", "a.b.c", false),
        ] {
            assert_eq!(
                subject_covers(pattern, filter),
                covers,
                "{pattern} ⊇ {filter}"
            );
        }
    }

    #[test]
    fn an_existing_stream_gets_the_configured_retention_and_keeps_the_rest() {
        use jetstream::stream::Config;
        let wanted = Config {
            name: "HERALD".into(),
            subjects: vec!["herald.>".into()],
            max_age: Duration::from_secs(7200),
            max_bytes: -1,
            duplicate_window: Duration::from_secs(600),
            ..Default::default()
        };
        let same = Config {
            max_bytes: 0,
            description: Some("an operator's note".into()),
            ..wanted.clone()
        };
        assert_eq!(reconcile_stream(&same, &wanted), None);

        let current = Config {
            subjects: vec!["old.>".into()],
            max_age: Duration::from_secs(3600),
            max_bytes: 1 << 30,
            duplicate_window: Duration::from_secs(120),
            ..same
        };
        let (updated, changes) = reconcile_stream(&current, &wanted).expect("changes");
        assert_eq!(
            changes,
            [
                "max_age 3600s -> 7200s",
                "max_bytes 1073741824 -> -1",
                "duplicate_window 120s -> 600s",
                "subjects + herald.>"
            ]
        );
        // Subjects are only added; what Herald does not manage is kept.
        assert_eq!(
            updated,
            Config {
                subjects: vec!["old.>".into(), "herald.>".into()],
                description: Some("an operator's note".into()),
                ..wanted
            }
        );
    }
}
