use serde_json::{Value, json};

use super::*;
use crate::decode::{Limits, decode_event};
use crate::error::Findings;
use crate::normalize::normalize;
use crate::timestamp::Timestamp;

fn hasher() -> EmailHasher {
    EmailHasher::for_tenant(b"redact-tests", &TenantId::parse("acme").unwrap())
}

fn event(body: Value) -> CanonicalEvent {
    let (raw, _) = decode_event(body, &Limits::default()).expect("a valid test event");
    normalize(
        raw,
        &TenantId::parse("acme").unwrap(),
        Timestamp::parse("2025-12-30T10:00:00Z").unwrap(),
        None,
        &mut Findings::default(),
    )
}

fn redacted(policy: &RedactionPolicy, body: Value) -> CanonicalEvent {
    let mut e = event(body);
    policy.apply(&mut e, &hasher());
    e
}

fn with_head(mut body: Value) -> Value {
    body["event_type"] = "order.placed".into();
    body["category"] = "business".into();
    body
}

fn marker(email: &str) -> String {
    format!("{EMAIL_MARKER}{}", hasher().hash(email))
}

fn policy_with(secret_action: RedactAction, rules: Vec<PathRule>) -> RedactionPolicy {
    RedactionPolicy {
        secret_action,
        rules,
        ..RedactionPolicy::default()
    }
}

#[test]
fn emails_in_every_part_become_hashes() {
    let e = redacted(
        &RedactionPolicy::default(),
        with_head(json!({
            "actor": {"service_name": "svc a@x.io", "role": "b@x.io", "anonymous_id": "c@x.io",
                      "profile": {"contacts": ["d@x.io"]}},
            "user_id": "Owner@X.io",
            "object": {"order_id": "e@x.io", "note7": "for f@x.io"},
            "correlation": {"correlation_id": "g@x.io"},
            "outcome": {"status": "failure", "error_code": "h@x.io", "message": "bounced i@x.io"},
            "evidence": {"trace_url": "https://t/j@x.io", "log_references": ["k@x.io"],
                         "github": {"repository": "l@x.io/repo"}},
            "context": {"user_agent": "m@x.io", "environment": "n@x.io", "team1": {"lead": "o@x.io"}},
            "data": {"to": [{"addr": "p@x.io"}], "q@x.io": 1},
            "metadata": {"reply": "r@x.io"},
        })),
    );
    let stored = String::from_utf8(crate::codec::json::encode(&e)).unwrap();
    assert!(!stored.contains('@'), "{stored}");

    assert_eq!(e.actor.user_id, Some(marker("owner@x.io")));
    assert_eq!(
        e.actor.service_name,
        Some(format!("svc {}", marker("a@x.io")))
    );
    assert_eq!(e.actor.role, Some(marker("b@x.io")));
    assert_eq!(e.object.order_id, Some(marker("e@x.io")));
    assert_eq!(e.object.extra["note7"], format!("for {}", marker("f@x.io")));
    assert_eq!(e.correlation.correlation_id, Some(marker("g@x.io")));
    assert_eq!(e.outcome.error_code, Some(marker("h@x.io")));
    assert_eq!(e.evidence.log_references, vec![marker("k@x.io")]);
    assert_eq!(e.context.environment, marker("n@x.io"));
    assert_eq!(e.context.extra["team1"]["lead"], marker("o@x.io"));
    assert_eq!(e.data["to"][0]["addr"], marker("p@x.io"));
    assert_eq!(
        e.data[marker("q@x.io").as_str()],
        1,
        "keys are scrubbed too"
    );
    assert_eq!(e.metadata["reply"], marker("r@x.io"));
    // The first email of the actor names it; same email, same hash.
    assert_eq!(e.actor.email_hash, Some(hasher().hash("owner@x.io")));
}

#[test]
fn the_actor_email_comes_from_the_actor_first() {
    let p = RedactionPolicy::default();
    let hash = |e: &str| Some(hasher().hash(e));
    // `actor.email` wins over every other email.
    let e = redacted(
        &p,
        with_head(
            json!({"actor": {"user_id": "a@x.io", "email": "Boss@X.io"}, "data": {"n": "c@x.io"}}),
        ),
    );
    assert_eq!(e.actor.email_hash, hash("boss@x.io"));
    assert!(!e.actor.extra.contains_key("email"));
    // Then the named fields, before the extra keys and data.
    let e = redacted(
        &p,
        with_head(
            json!({"actor": {"pal1": "b@x.io", "anonymous_id": "a@x.io"}, "data": {"n": "c@x.io"}}),
        ),
    );
    assert_eq!(e.actor.email_hash, hash("a@x.io"));
    // Then data; an email elsewhere (object, metadata) never names the actor.
    let e = redacted(
        &p,
        with_head(
            json!({"object": {"order_id": "o@x.io"}, "metadata": {"m": "m@x.io"}, "data": {"n": ["c@x.io"]}}),
        ),
    );
    assert_eq!(e.actor.email_hash, hash("c@x.io"));
    let e = redacted(&p, with_head(json!({"object": {"order_id": "o@x.io"}})));
    assert_eq!(e.actor.email_hash, None);
    // A hash the sender computed is kept; an email sent in its place is hashed.
    let given = "ab".repeat(32);
    let e = redacted(
        &p,
        with_head(json!({"actor": {"email_hash": given, "email": "a@x.io"}})),
    );
    assert_eq!(e.actor.email_hash, Some(given));
    let e = redacted(&p, with_head(json!({"actor": {"email_hash": " A@x.io "}})));
    assert_eq!(e.actor.email_hash, hash("a@x.io"));
}

#[test]
fn cards_are_masked_inside_any_text() {
    let e = redacted(
        &RedactionPolicy::default(),
        with_head(json!({
            "outcome": {"status": "failure", "error_class": "Card", "message": "card 4111 1111 1111 1111 declined"},
            "object": {"resource_id": "pm_5500-0000-0000-0004"},
            "data": {"attempts": [{"pan": 340000000000009u64}, "retry 6011000000000004 ok"], "qty": 2},
        })),
    );
    assert_eq!(e.outcome.message.as_deref(), Some("card ****1111 declined"));
    assert_eq!(e.object.resource_id.as_deref(), Some("pm_****0004"));
    assert_eq!(
        e.data,
        json!({"attempts": [{"pan": "****0009"}, "retry ****0004 ok"], "qty": 2})
    );
}

#[test]
fn inline_secrets_are_masked_in_fields_and_text() {
    let e = redacted(
        &RedactionPolicy::default(),
        with_head(json!({
            "context": {"referer": "https://app/cb?code=7&access_token=abc123", "endpoint": "/login"},
            "outcome": {"status": "failure", "error_code": "E1", "message": "Authorization: Bearer eyJ.x.y rejected"},
            "data": {"curl": "curl -H 'X-Api-Key: k9' https://api", "note": "password=hunter2 is weak"},
        })),
    );
    assert_eq!(
        e.context.referer.as_deref(),
        Some("https://app/cb?code=7&access_token=[REDACTED]")
    );
    assert_eq!(e.context.endpoint.as_deref(), Some("/login"));
    assert_eq!(
        e.outcome.message.as_deref(),
        Some("Authorization: [REDACTED] rejected")
    );
    assert_eq!(
        e.data,
        json!({"curl": "curl -H 'X-Api-Key: [REDACTED]' https://api", "note": "password=[REDACTED] is weak"})
    );
    // Under the hash action an inline secret is hashed like a keyed one.
    let e = redacted(
        &policy_with(RedactAction::Hash, vec![]),
        with_head(json!({"data": {"note": "token=abc"}})),
    );
    assert_eq!(
        e.data["note"],
        format!("token=hash:{}", hasher().hash("abc"))
    );
}

#[test]
fn switches_turn_the_built_in_scrubbing_off() {
    let p = RedactionPolicy {
        hash_emails: false,
        mask_card_numbers: false,
        secret_keys: vec![],
        ..RedactionPolicy::default()
    };
    let body = with_head(
        json!({"data": {"to": "a@x.io", "pan": "4111111111111111", "password": "p", "q": "token=t"}}),
    );
    let e = redacted(&p, body);
    assert_eq!(
        e.data,
        json!({"to": "a@x.io", "pan": "4111111111111111", "password": "p", "q": "token=t"})
    );
    assert_eq!(e.actor.email_hash, None);
}

#[test]
fn secret_key_matching_ignores_case_and_separators() {
    let p = RedactionPolicy::default();
    for k in [
        "password",
        "DB_PASSWORD",
        "X-Api-Key",
        "refresh.token",
        "Authorization",
        "client_secret",
    ] {
        assert!(p.is_secret_key(k), "{k}");
    }
    for k in ["author", "tokens", "email", "plan", "passwords_changed"] {
        assert!(!p.is_secret_key(k), "{k}");
    }
}
