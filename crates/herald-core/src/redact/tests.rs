use serde_json::{Value, json};

use super::*;
use crate::clock::{IdSource, SequentialIds};
use crate::decode::{Limits, decode_event};
use crate::error::Findings;
use crate::normalize::normalize;
use crate::timestamp::Timestamp;

fn hasher() -> EmailHasher {
    EmailHasher::for_tenant(b"redact-tests", &TenantId::parse("acme").unwrap())
}

fn event(body: Value) -> CanonicalEvent {
    let (raw, _) = decode_event(body, &Limits::default()).expect("a valid test event");
    let now = Timestamp::parse("2025-12-30T10:00:00Z").unwrap();
    normalize(
        raw,
        SequentialIds::default().event_id(now),
        &TenantId::parse("acme").unwrap(),
        now,
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

fn rule(path: &str, action: RedactAction) -> PathRule {
    PathRule {
        path: path.into(),
        action,
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
fn a_query_finds_a_field_by_its_stored_text() {
    let p = RedactionPolicy::default();
    let e = redacted(
        &p,
        with_head(
            json!({"user_id": "Ada@Example.com", "object": {"order_id": "ord 4111 1111 1111 1111"}}),
        ),
    );
    assert_eq!(
        e.actor.user_id,
        Some(p.stored_text("ada@example.com", &hasher()))
    );
    assert_eq!(
        e.object.order_id,
        Some(p.stored_text("ord 4111 1111 1111 1111", &hasher()))
    );
    assert_eq!(p.stored_text("user_4821", &hasher()), "user_4821");
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

/// A body with secrets at several depths of the free-form parts.
fn secrets_body() -> Value {
    with_head(json!({
        "actor": {"user_id": "u1", "session_token": "st-1"},
        "object": {"order_id": "o1", "webhook": {"signing_secret": "ss-1", "url": "https://h"}},
        "context": {"db": {"Password": "pw-1", "host": "db1"}},
        "data": {"a": {"b": [{"api_key": "ak-1", "keep": 1}, {"list": [{"Authorization": {"basic": "x"}}]}]},
                 "none_token": null, "ok9": {"token": null, "n": 1, "pwd": "p"}},
        "metadata": {"deep": {"er": {"refreshToken": 12345}}},
    }))
}

#[test]
fn secret_action_mask_on_nested_paths() {
    let e = redacted(&policy_with(RedactAction::Mask, vec![]), secrets_body());
    assert_eq!(e.actor.extra["session_token"], MASK);
    assert_eq!(
        e.object.extra["webhook"],
        json!({"signing_secret": MASK, "url": "https://h"})
    );
    assert_eq!(
        e.context.extra["db"],
        json!({"Password": MASK, "host": "db1"})
    );
    assert_eq!(
        e.data,
        json!({"a": {"b": [{"api_key": MASK, "keep": 1}, {"list": [{"Authorization": MASK}]}]},
               "none_token": null, "ok9": {"token": null, "n": 1, "pwd": MASK}})
    );
    assert_eq!(e.metadata["deep"]["er"]["refreshToken"], MASK);
    assert_eq!(e.actor.user_id.as_deref(), Some("u1"));
}

#[test]
fn secret_action_drop_on_nested_paths() {
    let e = redacted(&policy_with(RedactAction::Drop, vec![]), secrets_body());
    assert!(!e.actor.extra.contains_key("session_token"));
    assert_eq!(e.object.extra["webhook"], json!({"url": "https://h"}));
    assert_eq!(e.context.extra["db"], json!({"host": "db1"}));
    // A null secret stays: there is nothing to hide.
    assert_eq!(
        e.data,
        json!({"a": {"b": [{"keep": 1}, {"list": [{}]}]}, "none_token": null,
               "ok9": {"token": null, "n": 1}})
    );
    assert_eq!(e.metadata["deep"]["er"], json!({}));
}

#[test]
fn secret_action_hash_on_nested_paths() {
    let h = hasher();
    let e = redacted(&policy_with(RedactAction::Hash, vec![]), secrets_body());
    assert_eq!(
        e.actor.extra["session_token"],
        format!("hash:{}", h.hash("st-1"))
    );
    assert_eq!(
        e.data["a"]["b"][0]["api_key"],
        format!("hash:{}", h.hash("ak-1"))
    );
    // A non-string secret is hashed as its JSON text.
    assert_eq!(
        e.data["a"]["b"][1]["list"][0]["Authorization"],
        format!("hash:{}", h.hash(r#"{"basic":"x"}"#))
    );
    assert_eq!(
        e.metadata["deep"]["er"]["refreshToken"],
        format!("hash:{}", h.hash("12345"))
    );
    // Same secret, same tenant: same hash (it stays correlatable).
    let again = redacted(&policy_with(RedactAction::Hash, vec![]), secrets_body());
    assert_eq!(again.data, e.data);
}

#[test]
fn tenant_secret_keys_match_whatever_their_spelling() {
    let p = RedactionPolicy {
        secret_keys: vec!["MEMBER_PIN".into(), "door code".into()],
        ..RedactionPolicy::default()
    };
    let e = redacted(
        &p,
        with_head(json!({"data": {"member-pin": 1234, "DoorCode": "77", "password": "kept"}})),
    );
    assert_eq!(
        e.data,
        json!({"member-pin": MASK, "DoorCode": MASK, "password": "kept"})
    );
}

fn rules_body() -> Value {
    with_head(json!({
        "actor": {"user_id": "u-1", "role": "admin", "nick": "ada"},
        "object": {"order_id": "o-1", "ticket_id": "t-1"},
        "context": {"ip": "10.0.0.1", "region": {"city": "Oslo", "zip": "0150"}},
        "data": {"customer": {"phone": "+47 555", "name": "Ada", "tier": 2},
                 "items": [{"sku": "A", "price": 3}, {"sku": "B", "price": 4}],
                 "a/b": {"c~d": "x"}},
        "metadata": {"src": {"host": "h1", "port": 80}},
    }))
}

#[test]
fn rule_drop_on_nested_paths() {
    let p = policy_with(
        RedactAction::Mask,
        vec![
            rule("/data/customer/phone", RedactAction::Drop),
            rule("/data/items/*/price", RedactAction::Drop),
            rule("/data/a~1b/c~0d", RedactAction::Drop),
            rule("/metadata/src/host", RedactAction::Drop),
            rule("/context/region/city", RedactAction::Drop),
            rule("/actor/user_id", RedactAction::Drop),
            rule("/object/order_id", RedactAction::Drop),
            rule("/actor/nick", RedactAction::Drop),
        ],
    );
    let e = redacted(&p, rules_body());
    assert_eq!(
        e.data,
        json!({"customer": {"name": "Ada", "tier": 2},
               "items": [{"sku": "A"}, {"sku": "B"}], "a/b": {}})
    );
    // The remaining keys keep the sender's order.
    let keys: Vec<&String> = e.data["customer"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["name", "tier"]);
    assert_eq!(e.metadata["src"], json!({"port": 80}));
    assert_eq!(e.context.extra["region"], json!({"zip": "0150"}));
    assert_eq!(e.actor.user_id, None);
    assert_eq!(e.object.order_id, None);
    assert_eq!(e.object.ticket_id.as_deref(), Some("t-1"));
    assert!(!e.actor.extra.contains_key("nick"));

    // An array item by index.
    let p = policy_with(
        RedactAction::Mask,
        vec![rule("/data/items/0", RedactAction::Drop)],
    );
    assert_eq!(
        redacted(&p, rules_body()).data["items"],
        json!([{"sku": "B", "price": 4}])
    );
}

#[test]
fn rule_mask_on_nested_paths() {
    let p = policy_with(
        RedactAction::Mask,
        vec![
            rule("/data/customer/*", RedactAction::Mask),
            rule("/data/items/1/sku", RedactAction::Mask),
            rule("/context/ip", RedactAction::Mask),
            rule("/context/region/zip", RedactAction::Mask),
            rule("/actor/role", RedactAction::Mask),
        ],
    );
    let e = redacted(&p, rules_body());
    assert_eq!(
        e.data["customer"],
        json!({"phone": MASK, "name": MASK, "tier": MASK})
    );
    assert_eq!(
        e.data["items"],
        json!([{"sku": "A", "price": 3}, {"sku": MASK, "price": 4}])
    );
    assert_eq!(e.context.ip.as_deref(), Some(MASK));
    assert_eq!(e.context.extra["region"]["zip"], MASK);
    assert_eq!(e.actor.role.as_deref(), Some(MASK));
}

#[test]
fn rule_hash_on_nested_paths() {
    let h = hasher();
    let p = policy_with(
        RedactAction::Mask,
        vec![
            rule("/data/customer/phone", RedactAction::Hash),
            rule("/data/items/*/price", RedactAction::Hash),
            rule("/metadata/src", RedactAction::Hash),
            rule("/object/ticket_id", RedactAction::Hash),
        ],
    );
    let e = redacted(&p, rules_body());
    assert_eq!(
        e.data["customer"]["phone"],
        format!("hash:{}", h.hash("+47 555"))
    );
    assert_eq!(
        e.data["items"],
        json!([{"sku": "A", "price": format!("hash:{}", h.hash("3"))},
               {"sku": "B", "price": format!("hash:{}", h.hash("4"))}])
    );
    assert_eq!(
        e.metadata["src"],
        format!("hash:{}", h.hash(r#"{"host":"h1","port":80}"#))
    );
    assert_eq!(e.object.ticket_id, Some(format!("hash:{}", h.hash("t-1"))));
}

#[test]
fn rules_outside_the_free_parts_or_missing_paths_change_nothing() {
    let p = policy_with(
        RedactAction::Mask,
        vec![
            rule("/correlation/trace_id", RedactAction::Drop),
            rule("/data/nowhere/deep", RedactAction::Mask),
            rule("/data/items/9", RedactAction::Drop),
            rule("/data/items/x", RedactAction::Drop),
        ],
    );
    let mut body = rules_body();
    body["correlation"] = json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"});
    let e = redacted(&p, body.clone());
    let mut plain = redacted(&RedactionPolicy::default(), body);
    plain.event_id = e.event_id;
    assert_eq!(e, plain);
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

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, failure_persistence: None, ..Default::default() })]

    /// The ending filter never changes the answer: a key matches exactly
    /// when it ends (normalised) with one of the secret keys.
    #[test]
    fn secret_key_filter_agrees_with_comparing_all(
        secrets in proptest::collection::vec("[a-cA-C_. -]{0,4}", 0..5),
        key in "[a-cA-C_. -]{0,7}",
    ) {
        let want = secrets.iter().any(|s| ends_with_normalised(&key, s));
        proptest::prop_assert_eq!(SecretKeys::new(&secrets).matches(&key), want);
    }
}

#[test]
fn emails_in_the_idempotency_key_are_hashed_in_place() {
    let body = |key: &str| with_head(json!({"idempotency_key": key}));
    let p = RedactionPolicy::default();
    let e = redacted(&p, body("signup/Ada@Example.com/2"));
    assert_eq!(
        e.idempotency_key,
        Some(format!("signup/{}/2", marker("ada@example.com")))
    );
    // Deterministic, so a retry finds the first event; other text (a card,
    // an inline secret) stays, so different keys never become equal.
    assert_eq!(
        redacted(&p, body("signup/ada@example.com/2")).idempotency_key,
        e.idempotency_key
    );
    let plain = "order 4111 1111 1111 1111 token=abc";
    assert_eq!(
        redacted(&p, body(plain)).idempotency_key.as_deref(),
        Some(plain)
    );
    let off = RedactionPolicy {
        hash_emails: false,
        ..RedactionPolicy::default()
    };
    assert_eq!(
        redacted(&off, body("signup/ada@example.com"))
            .idempotency_key
            .as_deref(),
        Some("signup/ada@example.com")
    );
}

#[test]
fn with_email_hashing_off_the_actor_email_stays() {
    let off = RedactionPolicy {
        hash_emails: false,
        ..RedactionPolicy::default()
    };
    let e = redacted(
        &off,
        with_head(json!({"actor": {"email": "ada@example.com"}})),
    );
    assert_eq!(e.actor.extra["email"], "ada@example.com");
    assert_eq!(e.actor.email_hash, None);
}

#[test]
fn a_wildcard_rule_covers_named_fields_too() {
    let p = policy_with(
        RedactAction::Mask,
        vec![
            rule("/actor/*", RedactAction::Hash),
            rule("/context/*", RedactAction::Drop),
        ],
    );
    let e = redacted(&p, rules_body());
    let h = hasher();
    assert_eq!(e.actor.user_id, Some(format!("hash:{}", h.hash("u-1"))));
    assert_eq!(e.actor.role, Some(format!("hash:{}", h.hash("admin"))));
    assert_eq!(e.actor.extra["nick"], format!("hash:{}", h.hash("ada")));
    assert_eq!(e.context.ip, None);
    assert!(e.context.extra.is_empty());
    assert_eq!(e.context.environment, "production", "not addressable");
}

#[test]
fn hashes_ignore_case_and_surrounding_space_at_any_length() {
    let h = hasher();
    for lower in [
        "ada@example.com".to_string(),
        format!("{}@example.com", "a".repeat(150)),
    ] {
        let mixed = format!(" {} ", lower.to_uppercase());
        assert_eq!(h.hash(&mixed), h.hash(&lower), "{lower}");
    }
    assert_ne!(h.hash("ada@example.com"), h.hash("ada@example.co"));
}
