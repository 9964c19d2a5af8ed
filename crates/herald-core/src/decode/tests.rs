//! Decoding's unit tests: nesting limits, where unknown keys are kept, and
//! category precedence.

use super::*;
use crate::codec::json;
use crate::{EmailHasher, EventProcessor, ProcessingContext, TenantId, Timestamp};

fn nested(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

fn process(body: &str) -> Result<crate::Processed, ValidationResult> {
    let tenant = TenantId::parse("t").unwrap();
    let hasher = EmailHasher::new(b"k");
    let ctx = ProcessingContext {
        tenant_id: &tenant,
        email_hasher: &hasher,
        processing_timestamp: Timestamp::parse("2025-12-30T10:00:00Z").unwrap(),
        ids: &crate::clock::SequentialIds::default(),
        traceparent: None,
    };
    EventProcessor::default().process_json(body.as_bytes(), &ctx)
}

#[test]
fn nesting_beyond_the_limit_is_an_error() {
    let head = r#"{"event_type":"x.y","category":"system","data":"#;
    let ok = process(&format!("{head}{}}}", nested(MAX_NESTING - 1))).expect("127 levels");
    assert_eq!(
        json::decode(&json::encode(&ok.event)).unwrap(),
        ok.event,
        "reads back"
    );
    let r = process(&format!("{head}{}}}", nested(MAX_NESTING))).expect_err("128 levels");
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].kind, ErrorKind::InvalidValue);
    assert!(
        r.errors[0]
            .message
            .starts_with("nested more than 127 arrays and objects deep (at line 1, column"),
        "{}",
        r.errors[0].message
    );
}

#[test]
fn unknown_fields_must_fit_where_they_are_kept() {
    let head = r#"{"event_type":"x.y","category":"system","zz":"#;
    let ok = process(&format!("{head}{}}}", nested(MAX_UNKNOWN_NESTING))).expect("fits");
    assert_eq!(
        json::decode(&json::encode(&ok.event)).unwrap(),
        ok.event,
        "reads back"
    );
    for levels in [MAX_UNKNOWN_NESTING + 1, MAX_NESTING - 1] {
        let r = process(&format!("{head}{}}}", nested(levels))).expect_err("too deep to keep");
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.errors[0].field, "/zz");
        assert!(
            r.errors[0].message.contains("/metadata/unknown_fields/zz"),
            "{}",
            r.errors[0].message
        );
    }
    // A non-object metadata.unknown_fields moves one level down too.
    let body = format!(
        r#"{{"event_type":"x.y","category":"system","other":1,"metadata":{{"unknown_fields":{}}}}}"#,
        nested(MAX_UNKNOWN_NESTING + 1)
    );
    let r = process(&body).expect_err("too deep to keep");
    assert_eq!(r.errors[0].field, "/metadata/unknown_fields");
    // A closed part's unknown key is kept one level deeper still.
    let part = |levels| {
        format!(
            r#"{{"event_type":"x.y","category":"system","correlation":{{"zz":{}}}}}"#,
            nested(levels)
        )
    };
    process(&part(MAX_UNKNOWN_NESTING - 1)).expect("fits");
    let r = process(&part(MAX_UNKNOWN_NESTING)).expect_err("too deep to keep");
    assert_eq!(r.errors[0].field, "/correlation/zz");
    assert!(
        r.errors[0]
            .message
            .contains("/metadata/unknown_fields/correlation/zz"),
        "{}",
        r.errors[0].message
    );
}

fn warning<'p>(p: &'p crate::Processed, field: &str) -> &'p str {
    let found: Vec<_> = p.warnings.iter().filter(|w| w.field == field).collect();
    assert_eq!(found.len(), 1, "{:?}", p.warnings);
    &found[0].message
}

#[test]
fn unknown_keys_in_closed_parts_are_kept_with_a_warning() {
    let p = process(
        r#"{"event_type":"x.y","category":"system",
            "correlation":{"trace_id":"t1","baggage":{"k":"v"}},
            "outcome":{"status":"failure","error_code":"E1","retryable":true},
            "evidence":{"trace_url":"u","ticket":"JIRA-1","github":{"pr":"7","branch":"main"}}}"#,
    )
    .expect("kept, not refused");
    let e = &p.event;
    assert_eq!(e.correlation.trace_id.as_deref(), Some("t1"));
    assert_eq!(
        Value::Object(e.metadata.clone()),
        serde_json::json!({"unknown_fields": {
            "correlation": {"baggage": {"k": "v"}},
            "outcome": {"retryable": true},
            "evidence": {"github": {"branch": "main"}, "ticket": "JIRA-1"},
        }})
    );
    assert_eq!(
        warning(&p, "/correlation/baggage"),
        "unknown field kept as /metadata/unknown_fields/correlation/baggage"
    );
    assert_eq!(
        warning(&p, "/evidence/github/branch"),
        "unknown field kept as /metadata/unknown_fields/evidence/github/branch"
    );
}

#[test]
fn unknown_keys_never_overwrite_what_the_sender_put_there() {
    let p = process(
        r#"{"event_type":"x.y","category":"system","plan":"new","plan_2":"newer",
            "correlation":{"zz":1},
            "metadata":{"unknown_fields":{"plan":"mine","correlation":"also mine"}}}"#,
    )
    .expect("valid");
    assert_eq!(
        Value::Object(p.event.metadata.clone()),
        serde_json::json!({"unknown_fields": {
            "plan": "mine", "correlation": "also mine",
            "correlation_2": {"zz": 1}, "plan_2": "new", "plan_2_2": "newer",
        }})
    );
    assert_eq!(
        warning(&p, "/plan"),
        "unknown field kept as /metadata/unknown_fields/plan_2, since /metadata/unknown_fields/plan was taken"
    );
    assert_eq!(
        warning(&p, "/plan_2"),
        "unknown field kept as /metadata/unknown_fields/plan_2_2, since /metadata/unknown_fields/plan_2 was taken"
    );
    assert_eq!(
        warning(&p, "/correlation/zz"),
        "unknown field kept as /metadata/unknown_fields/correlation_2/zz, since /metadata/unknown_fields/correlation was taken"
    );
}

#[test]
fn an_explicit_category_wins_over_event_category_with_a_warning() {
    let p = process(r#"{"event_type":"x.y","category":"business","event_category":"security"}"#)
        .expect("valid");
    assert_eq!(p.event.category, Category::Business);
    assert_eq!(p.event.event_category, Some(EventCategory::Security));
    assert_eq!(
        warning(&p, "/event_category"),
        "event_category `security` belongs to category security, but category is `business`; \
         category business is used (send the category that event_category derives, or only one of them)"
    );
    // Agreeing, or only one of them: nothing to say.
    for body in [
        r#"{"event_type":"x.y","category":"business","event_category":"payment"}"#,
        r#"{"event_type":"x.y","event_category":"alert"}"#,
    ] {
        assert_eq!(process(body).expect("valid").warnings, vec![], "{body}");
    }
    // A bad category is not replaced by the derived one.
    let r = process(r#"{"event_type":"db_error","category":"finance","event_category":"order"}"#)
        .expect_err("bad category");
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    assert_eq!(r.errors[0].field, "/category");
}
