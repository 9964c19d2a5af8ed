//! Seed 000's correctness properties, one proptest property each, named
//! `property_NN_<short_name>`. Generators (tests/support) produce realistic
//! events across all four categories and both category sets, every alias,
//! and hostile input: unicode and control characters, very long strings,
//! deep nesting, wrong types, missing fields, arbitrary bytes.

mod support;

use std::collections::BTreeSet;

use herald_core::codec::{json as json_codec, proto as proto_codec};
use herald_core::correlation::{self, CorrelationKey};
use herald_core::decode::UNKNOWN_FIELDS_KEY;
use herald_core::{
    Category, ErrorKind, EventSource, EventStatus, OutcomeStatus, StreamId, Timestamp,
    ValidationMode,
};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};
use support::*;

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Every error is well formed: a JSON pointer and a message a person can read.
fn assert_well_formed(r: &herald_core::ValidationResult) {
    assert!(!r.is_valid);
    assert!(!r.errors.is_empty());
    for e in &r.errors {
        assert!(
            is_json_pointer(&e.field),
            "not a JSON pointer: {:?}",
            e.field
        );
        assert!(e.message.trim().len() >= 8, "terse message {:?}", e.message);
    }
}

/// A value the category field might hold: valid names, near misses, wrong types.
fn category_value() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => category().prop_map(|c| Value::from(c.as_str())),
        1 => select(vec!["Business", "SYSTEM", "finance", "", " business", "securit", "deliveries"]).prop_map(Value::from),
        1 => "[a-z]{1,12}".prop_map(Value::from),
        1 => any_json(),
    ]
    .boxed()
}

/// An event-type value: valid names (custom, so the vocabulary stays out of
/// the way) or invalid ones of every kind.
fn event_type_value() -> BoxedStrategy<(Value, bool)> {
    prop_oneof![
        4 => custom_type().prop_map(|t| (Value::from(t), true)),
        1 => select(vec!["", " padded", "trailing ", "order.*", "order.>", "tab\there", "nul\u{0}"]).prop_map(|t| (Value::from(t), false)),
        1 => "[a-z]{257,300}".prop_map(|t| (Value::from(t), false)),
        1 => prop_oneof![any::<i64>().prop_map(Value::from), Just(json!(["x"])), Just(json!({"a": 1})), Just(json!(true))]
            .prop_map(|v| (v, false)),
    ]
    .boxed()
}

/// A timestamp value: valid RFC 3339 or something that is not one.
fn timestamp_value() -> BoxedStrategy<(Value, bool)> {
    prop_oneof![
        3 => ts_spec().prop_map(|t| (Value::from(t.text()), true)),
        1 => select(vec!["yesterday", "2025-13-01T00:00:00Z", "2025-01-01", "1735689600", "2025-01-01T25:00:00Z"]).prop_map(|t| (Value::from(t), false)),
        1 => prop_oneof![any::<i64>().prop_map(Value::from), Just(json!({})), Just(json!(false))].prop_map(|v| (v, false)),
    ]
    .boxed()
}

proptest! {
    #![proptest_config(config())]

    /// Property 1: Event Category Validation — "For any event submitted to
    /// the system, it should be accepted if and only if its category field is
    /// set to one of the valid values: business, system, delivery, or security."
    #[test]
    fn property_01_category_validation(ty in custom_type(), cat in category_value(), alias in type_alias()) {
        let fx = Fixture::new("acme");
        let body = obj(vec![(alias, Value::from(ty)), ("category", cat.clone())]);
        // The seed's four, spelled out: the oracle must not trust the code under test.
        let valid = cat.as_str().is_some_and(|s| ["business", "system", "delivery", "security"].contains(&s));
        match run(&processor(ValidationMode::Permissive), &fx, &body) {
            Ok(p) => {
                prop_assert!(valid, "accepted category {cat}");
                prop_assert_eq!(p.event.category.as_str(), cat.as_str().unwrap());
            }
            Err(r) => {
                prop_assert!(!valid, "rejected valid category {cat}: {:?}", r.errors);
                assert_well_formed(&r);
                let at = errors_at(&r, "/category");
                prop_assert_eq!(at.len(), 1, "{:?}", r.errors);
                if cat.is_string() || cat.is_null() {
                    prop_assert!(mentions_all(&at[0].message, &["business", "system", "delivery", "security"]), "{}", at[0].message);
                }
            }
        }
    }

    /// Property 2: Core Field Validation — "For any event processed by the
    /// system, it should be accepted if and only if all required core fields
    /// (eventId, tenantId, timestamp, category, action) are present and valid."
    /// In Herald the event id and tenant are assigned (never taken from the
    /// body), so the sender's required fields are the action (event_type or an
    /// alias) and the category; a timestamp, when given, must be valid.
    #[test]
    fn property_02_core_field_validation(
        ty in proptest::option::of(event_type_value()),
        alias in type_alias(),
        cat in proptest::option::of(category()),
        ts in proptest::option::of(timestamp_value()),
    ) {
        let fx = Fixture::new("acme");
        let mut body = Map::new();
        if let Some((v, _)) = &ty { body.insert(alias.into(), v.clone()); }
        if let Some(c) = cat { body.insert("category".into(), c.as_str().into()); }
        if let Some((v, _)) = &ts { body.insert("timestamp".into(), v.clone()); }
        let mut want = BTreeSet::new();
        match &ty {
            None => { want.insert("/event_type".to_string()); }
            Some((_, false)) => { want.insert(format!("/{alias}")); }
            Some((_, true)) => {}
        }
        if cat.is_none() { want.insert("/category".to_string()); }
        if let Some((_, false)) = ts { want.insert("/timestamp".to_string()); }

        match run(&processor(ValidationMode::Permissive), &fx, &Value::Object(body.clone())) {
            Ok(p) => {
                prop_assert!(want.is_empty(), "accepted {body:?} though {want:?} are bad");
                prop_assert_eq!(p.event.tenant_id.as_str(), "acme", "tenant comes from the context");
                prop_assert_eq!(p.event.event_id.as_uuid().get_version_num(), 7);
            }
            Err(r) => {
                assert_well_formed(&r);
                prop_assert_eq!(error_fields(&r), want, "every bad core field, each once: {:?}", r.errors);
            }
        }
    }

    /// Property 3: Event Normalization Consistency — "For any raw event input,
    /// processing it should always produce a canonical event structure that
    /// conforms to the defined schema, regardless of input variations."
    #[test]
    fn property_03_normalization_consistency(body in valid_body(false)) {
        let fx = Fixture::new("acme");
        let p = accepted(&processor(ValidationMode::Permissive), &fx, &body);
        let e = &p.event;
        // Conforms: the canonical codec accepts it and gives it back unchanged.
        let decoded = json_codec::decode(&json_codec::encode(e)).expect("canonical JSON decodes");
        prop_assert_eq!(&decoded, e);
        prop_assert_eq!(e.status, EventStatus::Pending);
        prop_assert_eq!(e.processing_timestamp, fx.now);
        let source = body.get("event_source").and_then(Value::as_str).and_then(EventSource::parse);
        prop_assert_eq!(e.event_source, source.unwrap_or(EventSource::Backend));
        let env = object_at(&body, "context").and_then(|c| c.get("environment")).and_then(Value::as_str);
        prop_assert_eq!(e.context.environment.as_str(), env.unwrap_or("production"));
        let status = object_at(&body, "outcome").and_then(|o| o.get("status")).and_then(Value::as_str);
        prop_assert_eq!(e.outcome.status, status.and_then(OutcomeStatus::parse).unwrap_or(OutcomeStatus::Success));
        if let Some(ec) = body.get("event_category").and_then(Value::as_str) {
            prop_assert_eq!(e.event_category.map(|c| c.as_str()), Some(ec));
        }
        // Unknown top-level keys are kept, each with a warning.
        let unknown: Vec<&String> = body.as_object().unwrap().keys().filter(|k| !KNOWN_TOP_LEVEL.contains(&k.as_str())).collect();
        for k in &unknown {
            prop_assert_eq!(e.metadata[UNKNOWN_FIELDS_KEY].get(k.as_str()), body.get(k.as_str()), "{} kept", k);
            prop_assert!(warned_at(&p.warnings, &format!("/{}", escape_token(k))), "warning for {k}: {:?}", p.warnings);
        }
        if unknown.is_empty() {
            prop_assert!(e.metadata.get(UNKNOWN_FIELDS_KEY).is_none());
        }
    }

    /// Property 4: Unique Event ID Assignment — "For any set of events
    /// processed by the system, each event should receive a unique eventId
    /// that is never duplicated."
    #[test]
    fn property_04_unique_event_ids(bodies in proptest::collection::vec(valid_body(false), 1..12), repeats in 1usize..20) {
        let ids = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2).map(|_| s.spawn(|| {
                let fx = Fixture::new("acme");
                let p = processor(ValidationMode::Permissive);
                let mut ids = Vec::new();
                for _ in 0..repeats {
                    for b in &bodies {
                        ids.push(accepted(&p, &fx, b).event.event_id);
                    }
                }
                ids
            })).collect();
            workers.into_iter().flat_map(|w| w.join().expect("worker")).collect::<Vec<_>>()
        });
        let unique: BTreeSet<_> = ids.iter().collect();
        prop_assert_eq!(unique.len(), ids.len(), "duplicate event ids");
        prop_assert!(ids.iter().all(|id| id.as_uuid().get_version_num() == 7));
    }

    /// Property 5: Timestamp Preservation — "For any event with an original
    /// timestamp, processing should preserve that timestamp while adding
    /// processing metadata without modifying the original value." A
    /// timestamp more than 24 hours after receive time is kept, and flagged.
    #[test]
    fn property_05_timestamp_preservation(
        spec in proptest::option::of(ts_spec()),
        now in prop_oneof![timestamp(), Just(fixed_now())],
        head in head(),
    ) {
        let fx = Fixture::new("acme").at(now);
        let mut body = head.body();
        if let Some(spec) = &spec { body.insert("timestamp".into(), spec.text().into()); }
        let p = accepted(&processor(ValidationMode::Permissive), &fx, &Value::Object(body));
        let e = p.event;
        prop_assert_eq!(e.processing_timestamp, now);
        let ahead = spec.as_ref().map_or(0, |s| s.unix_nanos() - now.unix_nanos());
        prop_assert_eq!(warned_at(&p.warnings, "/timestamp"), ahead > 24 * 3600 * 1_000_000_000, "{} ns ahead: {:?}", ahead, p.warnings);
        match spec {
            Some(spec) => {
                prop_assert_eq!(e.timestamp.unix_nanos(), spec.unix_nanos(), "same instant");
                prop_assert_eq!(e.timestamp.offset_seconds(), spec.offset_seconds(), "same offset");
                prop_assert_eq!(e.timestamp.to_rfc3339(), spec.canonical());
                // And it survives both codecs exactly.
                prop_assert_eq!(proto_codec::decode(&proto_codec::encode(&e)).unwrap().timestamp, e.timestamp);
            }
            None => prop_assert_eq!(e.timestamp, now, "defaults to receive time"),
        }
    }

    /// Property 6: Category-Specific Action Support — "For any event with a
    /// valid category, the system should accept category-appropriate actions
    /// ... and reject inappropriate actions." Unknown actions are accepted in
    /// permissive mode and rejected in strict mode (DESIGN.md §2).
    #[test]
    fn property_06_category_specific_actions(
        cat in category(),
        action in prop_oneof![3 => builtin_action().prop_map(|(_, a)| a.to_string()), 1 => custom_type()],
        strict in any::<bool>(),
    ) {
        let mode = if strict { ValidationMode::Strict } else { ValidationMode::Permissive };
        let body = obj(vec![("action", Value::from(action.clone())), ("category", cat.as_str().into())]);
        let should = match owner_of(&action) {
            Some(owner) => owner == cat,
            None => !strict,
        };
        match run(&processor(mode), &Fixture::new("acme"), &body) {
            Ok(p) => {
                prop_assert!(should, "{action} accepted under {cat} ({mode:?})");
                prop_assert_eq!(p.event.event_type.as_str(), action.as_str());
            }
            Err(r) => {
                prop_assert!(!should, "{action} rejected under {cat} ({mode:?}): {:?}", r.errors);
                let at = errors_at(&r, "/event_type");
                prop_assert_eq!(at.len(), 1);
                prop_assert_eq!(at[0].kind, ErrorKind::NotAllowed);
                // The message lists what the category does allow.
                prop_assert!(mentions_all(&at[0].message, &builtins_of(cat)), "{}", at[0].message);
            }
        }
    }

    /// Property 7: Data Field Preservation — "For any event containing actor,
    /// object, or context information, all relevant identifiers should be
    /// preserved in the canonical event structure according to the
    /// category-specific rules."
    #[test]
    fn property_07_data_field_preservation(body in valid_body(false)) {
        let e = accepted(&processor(ValidationMode::Permissive), &Fixture::new("acme"), &body).event;
        let actor = object_at(&body, "actor");
        let object = object_at(&body, "object");
        let context = object_at(&body, "context");
        let user = body.get("user_id").and_then(id_text).or_else(|| first_id(actor, &["user_id", "userId"]));
        prop_assert_eq!(e.actor.user_id.clone(), user);
        prop_assert_eq!(e.actor.service_name.clone(), first_id(actor, &["service_name", "serviceName"]));
        prop_assert_eq!(e.actor.role.clone(), first_id(actor, &["role"]));
        prop_assert_eq!(e.actor.anonymous_id.clone(), first_id(actor, &["anonymous_id", "anonymousId"]));
        prop_assert_eq!(e.actor.email_hash.clone(), first_id(actor, &["email_hash"]));
        prop_assert_eq!(&e.actor.extra, &extras_of(actor, &ACTOR_KEYS));
        prop_assert_eq!(e.object.order_id.clone(), first_id(object, &["order_id", "orderId"]));
        prop_assert_eq!(e.object.request_id.clone(), first_id(object, &["request_id", "requestId"]));
        prop_assert_eq!(e.object.session_id.clone(), first_id(object, &["session_id", "sessionId"]));
        prop_assert_eq!(e.object.ticket_id.clone(), first_id(object, &["ticket_id", "ticketId"]));
        prop_assert_eq!(e.object.resource_id.clone(), first_id(object, &["resource_id", "resourceId"]));
        prop_assert_eq!(&e.object.extra, &extras_of(object, &OBJECT_KEYS));
        prop_assert_eq!(e.context.service.clone(), first_id(context, &["service", "service_name"]));
        prop_assert_eq!(e.context.endpoint.clone(), first_id(context, &["endpoint"]));
        prop_assert_eq!(e.context.version.clone(), first_id(context, &["version"]));
        prop_assert_eq!(e.context.ip.clone(), first_id(context, &["ip"]));
        prop_assert_eq!(e.context.user_agent.clone(), first_id(context, &["user_agent", "userAgent"]));
        prop_assert_eq!(e.context.referer.clone(), first_id(context, &["referer", "referrer"]));
        prop_assert_eq!(&e.context.extra, &extras_of(context, &CONTEXT_KEYS));
        let empty = json!({});
        prop_assert_eq!(&e.data, body.get("data").filter(|d| !d.is_null()).unwrap_or(&empty));
        if let Some(stream) = body.get("stream_id").and_then(Value::as_str) {
            prop_assert_eq!(e.stream_id.as_ref().map(StreamId::as_str), Some(stream));
        }
    }

    /// Property 8: Outcome Classification — "For any event containing outcome
    /// data, it should be classified as success, failure, or pending with
    /// appropriate error details when applicable."
    #[test]
    fn property_08_outcome_classification(
        head in head(),
        status in prop_oneof![3 => outcome_status().prop_map(|s| s.as_str().to_string()), 1 => "[a-z]{3,10}"],
        class in proptest::option::of(id_value()),
        code in proptest::option::of(id_value()),
        message in proptest::option::of(safe_text()),
    ) {
        let mut outcome = Map::new();
        outcome.insert("status".into(), status.clone().into());
        if let Some(c) = &class { outcome.insert("error_class".into(), c.clone()); }
        if let Some(c) = &code { outcome.insert("errorCode".into(), c.clone()); }
        if let Some(m) = &message { outcome.insert("message".into(), m.clone().into()); }
        let mut body = head.body();
        body.insert("outcome".into(), Value::Object(outcome));
        match (OutcomeStatus::parse(&status), run(&processor(ValidationMode::Permissive), &Fixture::new("acme"), &Value::Object(body))) {
            (Some(want), Ok(p)) => {
                let o = &p.event.outcome;
                prop_assert_eq!(o.status, want);
                prop_assert_eq!(o.error_class.clone(), class.as_ref().and_then(id_text));
                prop_assert_eq!(o.error_code.clone(), code.as_ref().and_then(id_text));
                prop_assert_eq!(o.message.clone(), message);
                let undetailed_failure = want == OutcomeStatus::Failure && class.is_none() && code.is_none();
                prop_assert_eq!(warned_at(&p.warnings, "/outcome"), undetailed_failure || (want == OutcomeStatus::Success && (class.is_some() || code.is_some())));
            }
            (None, Err(r)) => {
                let at = errors_at(&r, "/outcome/status");
                prop_assert_eq!(at.len(), 1);
                prop_assert!(mentions_all(&at[0].message, &["success", "failure", "pending"]));
            }
            (want, got) => prop_assert!(false, "status {status}: expected {want:?}, got {got:?}"),
        }
    }

    /// Property 9: Correlation Data Preservation — "For any event containing
    /// correlation identifiers (traceId, spanId, requestId, orderId,
    /// sessionId), all correlation data should be preserved and indexed for
    /// efficient story reconstruction." `correlation::keys` is exactly what
    /// the store indexes.
    #[test]
    fn property_09_correlation_preservation(body in valid_body(false), header in proptest::option::of(valid_traceparent())) {
        let fx = Fixture::new("acme").with_traceparent(header.as_ref().map(|t| t.text.clone()));
        let e = accepted(&processor(ValidationMode::Permissive), &fx, &body).event;
        let corr = object_at(&body, "correlation");
        let object = object_at(&body, "object");
        let given_trace = first_id(corr, &["trace_id", "traceId"]);
        let given_span = first_id(corr, &["span_id", "spanId"]);
        let body_tp = body.get("traceparent").and_then(Value::as_str).and_then(traceparent_ids);
        let header_tp = header.as_ref().and_then(|t| traceparent_ids(&t.text));
        let (trace, span) = match (&given_trace, body_tp.or(header_tp)) {
            (None, Some((t, s))) => (Some(t), given_span.clone().or(Some(s))),
            _ => (given_trace.clone(), given_span.clone()),
        };
        prop_assert_eq!(&e.correlation.trace_id, &trace);
        prop_assert_eq!(&e.correlation.span_id, &span);
        prop_assert_eq!(e.correlation.correlation_id.clone(), first_id(corr, &["correlation_id", "correlationId"]));
        prop_assert_eq!(e.correlation.parent_event_id.clone(), first_id(corr, &["parent_event_id", "parentEventId"]));
        let keys = correlation::keys(&e);
        let expect = [
            (CorrelationKey::TraceId, trace.clone()),
            (CorrelationKey::SpanId, span.clone()),
            (CorrelationKey::RequestId, first_id(object, &["request_id", "requestId"])),
            (CorrelationKey::OrderId, first_id(object, &["order_id", "orderId"])),
            (CorrelationKey::SessionId, first_id(object, &["session_id", "sessionId"])),
            (CorrelationKey::TicketId, first_id(object, &["ticket_id", "ticketId"])),
        ];
        for (key, value) in expect {
            let found = keys.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string());
            prop_assert_eq!(found, value.filter(|v| !v.is_empty()), "{:?} indexed", key);
        }
    }

    /// Property 10: Fallback Correlation Support — "For any event lacking
    /// trace context, the system should support correlation using business
    /// identifiers (userId, orderId, sessionId) as fallback mechanisms."
    #[test]
    fn property_10_fallback_correlation(
        key in select(vec![CorrelationKey::OrderId, CorrelationKey::SessionId, CorrelationKey::UserId, CorrelationKey::RequestId, CorrelationKey::TicketId]),
        shared in "[A-Za-z0-9_-]{1,20}",
        others in proptest::collection::vec("[A-Za-z0-9]{1,12}", 5),
        cats in (category(), category()),
    ) {
        let fx = Fixture::new("acme");
        let p = processor(ValidationMode::Permissive);
        // Two events with no trace context; every id differs but `key`.
        let make = |side: &str, cat: Category| {
            let mut ids: Vec<(CorrelationKey, String)> = [CorrelationKey::OrderId, CorrelationKey::SessionId, CorrelationKey::UserId, CorrelationKey::RequestId, CorrelationKey::TicketId]
                .iter().zip(&others).map(|(k, o)| (*k, format!("{side}-{o}"))).collect();
            for (k, v) in ids.iter_mut() { if *k == key { *v = shared.clone(); } }
            let get = |k: CorrelationKey| ids.iter().find(|(x, _)| *x == k).map(|(_, v)| v.clone()).unwrap();
            obj(vec![
                ("event_type", Value::from(format!("{side}.happened"))),
                ("category", cat.as_str().into()),
                ("user_id", get(CorrelationKey::UserId).into()),
                ("object", json!({"order_id": get(CorrelationKey::OrderId), "session_id": get(CorrelationKey::SessionId),
                                   "request_id": get(CorrelationKey::RequestId), "ticket_id": get(CorrelationKey::TicketId)})),
            ])
        };
        let a = accepted(&p, &fx, &make("a", cats.0)).event;
        let b = accepted(&p, &fx, &make("b", cats.1)).event;
        prop_assert!(!correlation::has_trace_context(&a) && !correlation::has_trace_context(&b));
        prop_assert_eq!(correlation::shared_key(&a, &b), Some((key, shared.clone())));
        let anchor = correlation::extract(&a, time::Duration::minutes(5)).anchor;
        prop_assert!(anchor.is_some_and(|(k, _)| !k.is_trace_context()), "anchored on a business key");
        // An event sharing nothing is not linked.
        let lonely = accepted(&p, &fx, &obj(vec![("event_type", "c.x".into()), ("category", "system".into()), ("user_id", "nobody-else".into())])).event;
        prop_assert_eq!(correlation::shared_key(&a, &lonely), None);
    }

    /// Property 13: Validation Error Handling — "For any invalid event input
    /// (missing fields, invalid types, size violations), the system should
    /// return descriptive error messages and handle failures gracefully."
    #[test]
    fn property_13_validation_error_handling(
        head in head(),
        mutation in 0usize..10,
        pointer in select(vec!["/actor", "/object", "/correlation", "/outcome", "/evidence", "/context", "/metadata",
                               "/event_source", "/timestamp", "/stream_id", "/expected_version", "/schema_version",
                               "/actor/user_id", "/object/order_id", "/outcome/status", "/evidence/log_references", "/correlation/trace_id"]),
        junk in prop_oneof![Just(json!(true)), Just(json!([1, 2])), Just(json!(-1.5)), Just(json!([[{"deep": [[]]}]]))],
        cut in any::<prop::sample::Index>(),
        noise in proptest::collection::vec(any::<u8>(), 0..512),
        deep in (prop_oneof![3 => 118usize..=130, 1 => 1usize..=12, 1 => 128usize..=5000], select(DEEP_PLACES.to_vec()), any::<u64>()),
    ) {
        let fx = Fixture::new("acme");
        let p = processor(ValidationMode::Permissive);
        let mut body = Value::Object(head.body());
        let (expect_field, expect_kind): (String, ErrorKind) = match mutation {
            0 => { set_pointer(&mut body, pointer, junk.clone()); (pointer.to_string(), ErrorKind::InvalidType) }
            1 => { set_pointer(&mut body, "/actor/role", Value::from("r".repeat(5000))); ("/actor/role".into(), ErrorKind::TooLarge) }
            2 => { set_pointer(&mut body, "/data", json!({"blob": "x".repeat(70 * 1024)})); (String::new(), ErrorKind::TooLarge) }
            3 => { body = junk.clone(); (String::new(), ErrorKind::InvalidType) }
            4 => { set_pointer(&mut body, "/correlation/nope", json!(1)); ("/correlation/nope".into(), ErrorKind::InvalidValue) }
            5 => { set_pointer(&mut body, "/event_source", json!("fax")); ("/event_source".into(), ErrorKind::InvalidValue) }
            6 => { set_pointer(&mut body, "/stream_id", json!("no-colon")); ("/stream_id".into(), ErrorKind::InvalidValue) }
            7 => { set_pointer(&mut body, "/expected_version", json!(-3)); ("/expected_version".into(), ErrorKind::InvalidType) }
            8 => {
                // Deep nesting: beyond serde_json's limit an error, never a
                // panic; within it, an event whose stored forms read back.
                let (levels, (place, extra), shape) = deep;
                let bytes = with_deep_value(&body, place, levels, shape);
                let nesting = 1 + extra + levels;
                let result = p.process_json(&bytes, &fx.ctx());
                prop_assert!(json_codec::decode(&bytes).is_err(), "not a canonical event");
                if nesting > 127 {
                    let r = result.expect_err("too deep");
                    assert_well_formed(&r);
                    prop_assert_eq!(&r.errors[0].field, "");
                    prop_assert_eq!(r.errors[0].kind, ErrorKind::InvalidValue);
                    prop_assert!(r.errors[0].message.contains("127"), "{}", r.errors[0].message);
                } else if place == "/zz9" && levels > 124 {
                    // Kept under /metadata/unknown_fields it would not read back.
                    let r = result.expect_err("an unknown field too deep to keep");
                    assert_well_formed(&r);
                    prop_assert!(r.errors.iter().any(|e| e.field == "/zz9" && e.kind == ErrorKind::InvalidValue), "{:?}", r.errors);
                } else {
                    let e = result.map_err(|r| TestCaseError::fail(format!("{:?}", r.errors)))?.event;
                    prop_assert_eq!(&json_codec::decode(&json_codec::encode(&e)).expect("stored JSON reads back"), &e);
                    prop_assert_eq!(&proto_codec::decode(&proto_codec::encode(&e)).expect("stored protobuf reads back"), &e);
                }
                return Ok(());
            }
            _ => {
                // Malformed JSON: the body cut short.
                let bytes = bytes_of(&body);
                let at = cut.index(bytes.len().saturating_sub(1)).max(1);
                let r = p.process_json(&bytes[..at], &fx.ctx()).expect_err("truncated JSON is rejected");
                assert_well_formed(&r);
                prop_assert_eq!(r.errors[0].kind, ErrorKind::Syntax);
                prop_assert!(r.errors[0].message.contains("line") && r.errors[0].message.contains("column"), "{}", r.errors[0].message);
                return Ok(());
            }
        };
        let r = run(&p, &fx, &body).expect_err("invalid input is rejected");
        assert_well_formed(&r);
        let under = format!("{expect_field}/");
        prop_assert!(r.errors.iter().any(|e| (e.field == expect_field || (mutation == 0 && e.field.starts_with(&under))) && e.kind == expect_kind),
            "expected {expect_kind:?} at {expect_field:?}, got {:?}", r.errors);
        prop_assert_eq!(r.is_too_large(), expect_kind == ErrorKind::TooLarge);
        // Untrusted bytes never panic, whatever they are.
        if let Err(r) = p.process_json(&noise, &fx.ctx()) { assert_well_formed(&r); }
    }

    /// Property 15: Sensitive Data Handling — "For any event containing
    /// sensitive data, redaction policies should be applied before storage
    /// according to data minimization principles." Emails, secrets and card
    /// numbers are planted anywhere: named fields of actor, object,
    /// correlation, outcome, evidence and context, their extra keys, nested
    /// data and metadata, array items, object keys, alone or inside longer
    /// text. None survives in the stored event; emails become hashes that
    /// still correlate (same email and tenant, same hash).
    #[test]
    fn property_15_sensitive_data_handling(
        body in valid_body(true),
        plants in proptest::collection::vec((spot(), sensitive()), 1..10),
        data_email in email(),
        other_tenant in "[a-z]{3,8}",
    ) {
        let fx = Fixture::new("acme");
        let p = processor(ValidationMode::Permissive);
        let mut body = body;
        let mut used = BTreeSet::new();
        let mut planted: Vec<Planted> = plants
            .iter()
            .enumerate()
            .filter_map(|(i, (spot, what))| plant(&mut body, i, *spot, what, &mut used))
            .collect();
        set_pointer(&mut body, "/data/note9", Value::from(format!("write to {data_email} today")));
        planted.push(Planted { email: Some((data_email.clone(), Some(ActorRank::Data))), secret: None, card: None });

        let e = accepted(&p, &fx, &body).event;
        let out = String::from_utf8(json_codec::encode(&e)).unwrap();
        let lower = out.to_lowercase();
        let marker = |email: &str| format!("email_hash:{}", fx.hasher.hash(email));
        for planted in &planted {
            if let Some((email, _)) = &planted.email {
                prop_assert!(!lower.contains(&email.to_lowercase()), "email {email} stored: {out}");
                prop_assert!(out.contains(&marker(email)), "email {email} correlates by its hash: {out}");
            }
            if let Some(secret) = &planted.secret {
                prop_assert!(!out.contains(secret.as_str()), "secret {secret} stored: {out}");
            }
            if let Some((digits, written)) = &planted.card {
                prop_assert!(!out.contains(digits.as_str()) && !out.contains(written.as_str()), "card {written} stored: {out}");
                prop_assert!(out.contains(&format!("****{}", &digits[digits.len() - 4..])), "card {written} masked to its last four: {out}");
            }
        }
        let actor_email = object_at(&body, "actor").and_then(|a| a.get("email")).and_then(Value::as_str);
        if let Some(a) = actor_email { prop_assert!(!lower.contains(&a.to_lowercase()), "actor email stored"); }

        // The actor's email: the hash sent, else actor.email, else the first
        // email in the actor's named fields, its extra keys, then data.
        let given_hash = object_at(&body, "actor").and_then(|a| a.get("email_hash")).and_then(Value::as_str);
        let got = e.actor.email_hash.clone().expect("an email names the actor");
        if let Some(want) = given_hash.map(str::to_string).or(actor_email.map(|a| fx.hasher.hash(a))) {
            prop_assert_eq!(got, want);
        } else {
            let ranked: Vec<(ActorRank, &String)> = planted.iter()
                .filter_map(|p| p.email.as_ref().and_then(|(e, r)| r.map(|r| (r, e))))
                .collect();
            let best = ranked.iter().map(|(r, _)| *r).min().expect("data_email at least");
            let candidates: Vec<String> = ranked.iter().filter(|(r, _)| *r == best).map(|(_, e)| fx.hasher.hash(e)).collect();
            prop_assert!(candidates.contains(&got), "actor.email_hash {got} is none of the {best:?} emails");
        }

        // Same email and tenant: same hash, event after event. Another
        // tenant: another hash.
        let again = accepted(&p, &fx, &body).event;
        prop_assert_eq!(&again.actor, &e.actor);
        prop_assert_eq!(&again.data, &e.data);
        prop_assert_eq!(fx.hasher.hash(&data_email), Fixture::new("acme").hasher.hash(&data_email.to_uppercase()));
        prop_assert_ne!(fx.hasher.hash(&data_email), Fixture::new(&format!("t{other_tenant}")).hasher.hash(&data_email));
    }

    /// Property 18: Serialization Round-Trip Consistency — "For any canonical
    /// event, serializing then deserializing it should produce an equivalent
    /// event structure with all field types and data integrity preserved,
    /// supporting both JSON and binary formats."
    #[test]
    fn property_18_serialization_round_trip(
        base in valid_body(false),
        data in any_json(),
        metadata in extra_map(&[]),
        actor_extra in extra_map(&["user_id", "email_hash", "service_name", "role", "anonymous_id"]),
        object_extra in extra_map(&["order_id", "request_id", "session_id", "ticket_id", "resource_id"]),
        context_extra in extra_map(&["environment", "service", "endpoint", "version", "ip", "user_agent", "referer"]),
        texts in (opt_string(), opt_string(), opt_string(), opt_string()),
        times in (timestamp(), timestamp()),
        status in select(EventStatus::ALL.to_vec()),
        stream_version in proptest::option::of(any::<u64>()),
        noise in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut e = accepted(&processor(ValidationMode::Permissive), &Fixture::new("acme"), &base).event;
        e.data = data;
        e.metadata = metadata;
        e.actor.extra = actor_extra;
        e.object.extra = object_extra;
        e.context.extra = context_extra;
        (e.actor.role, e.outcome.message, e.context.user_agent, e.evidence.trace_url) = texts;
        (e.timestamp, e.processing_timestamp) = times;
        e.status = status;
        e.stream_version = stream_version;

        let j = json_codec::encode(&e);
        let back = json_codec::decode(&j).expect("JSON decodes");
        prop_assert_eq!(&back, &e);
        prop_assert_eq!(json_codec::encode(&back), j, "JSON bytes stable");
        let p = proto_codec::encode(&e);
        let back = proto_codec::decode(&p).expect("protobuf decodes");
        prop_assert_eq!(&back, &e);
        prop_assert_eq!(proto_codec::encode(&back), p, "protobuf bytes stable");
        // Untrusted bytes: an error or an event, never a panic.
        let _ = proto_codec::decode(&noise);
        let _ = json_codec::decode(&noise);
        let _ = Timestamp::parse(&String::from_utf8_lossy(&noise));
    }
}

proptest! {
    #![proptest_config(config())]

    /// Not a seed property: `process_json` reads bytes straight into the
    /// decoder's slots, `process_value` takes a parsed value apart. Both
    /// must give the same answer, findings and all, for any body: valid,
    /// with junk at any pointer, repeated keys, or any JSON at all.
    #[test]
    fn bytes_and_values_decode_alike(
        body in prop_oneof![
            3 => valid_body(true),
            2 => (valid_body(false), select(vec!["/actor", "/object/order_id", "/correlation", "/outcome/status", "/evidence/github",
                    "/context", "/metadata", "/data", "/event_type", "/category", "/timestamp", "/zz9", "/actor/email"]), any_json())
                .prop_map(|(mut b, at, junk)| { set_pointer(&mut b, at, junk); b }),
            1 => any_json(),
        ],
        repeat in proptest::option::of((any::<prop::sample::Index>(), any_json())),
    ) {
        let fx = Fixture::new("acme");
        let p = processor(ValidationMode::Permissive);
        let mut bytes = bytes_of(&body);
        // A key repeated at the end of the top-level object: the last value wins.
        if let (Some((at, junk)), Some(map)) = (&repeat, body.as_object())
            && !map.is_empty()
        {
            let key = map.keys().nth(at.index(map.len())).unwrap();
            bytes.pop();
            bytes.extend(format!(",{}:{}}}", Value::from(key.as_str()), junk).as_bytes());
        }
        let value: Value = serde_json::from_slice(&bytes).expect("valid JSON");
        let from_bytes = p.process_json(&bytes, &fx.ctx());
        let from_value = p.process_value(value, &fx.ctx());
        match (from_bytes, from_value) {
            (Ok(mut a), Ok(b)) => {
                a.event.event_id = b.event.event_id;
                prop_assert_eq!(a, b);
            }
            (a, b) => prop_assert_eq!(a, b),
        }
    }
}
