//! Herald's correctness properties, one proptest property each, named
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
    ErrorKind, EventProcessor, EventSource, EventStatus, Github, Limits, OutcomeStatus,
    RedactionPolicy, StreamId, Timestamp, ValidationMode,
};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Map, Value, json};
use support::*;

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// Whether `stored` holds `own`: equal, or (objects) holding each of its keys.
fn contains(stored: Option<&Value>, own: &Value) -> bool {
    match (stored, own) {
        (Some(Value::Object(s)), Value::Object(o)) => o.iter().all(|(k, v)| contains(s.get(k), v)),
        (Some(s), o) => s == o,
        (None, _) => false,
    }
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

/// A value the event_category field might hold: the seventeen names, near
/// misses (a category that is not an event category among them), wrong types.
fn event_category_value() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => select(event_category_names()).prop_map(Value::from),
        1 => select(vec!["Payment", "USER_ACTION", "page-view", "", " order", "devices", "business", "delivery"]).prop_map(Value::from),
        1 => "[a-z_]{1,12}".prop_map(Value::from),
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

/// Pointers where a value of the wrong JSON type can go.
const WRONG_TYPE_AT: [&str; 27] = [
    "/actor",
    "/object",
    "/correlation",
    "/outcome",
    "/evidence",
    "/context",
    "/metadata",
    "/evidence/github",
    "/event_source",
    "/timestamp",
    "/stream_id",
    "/expected_version",
    "/schema_version",
    "/tenant_id",
    "/traceparent",
    "/idempotency_key",
    "/user_id",
    "/actor/user_id",
    "/object/order_id",
    "/correlation/trace_id",
    "/outcome/status",
    "/outcome/message",
    "/context/ip",
    "/evidence/trace_url",
    "/evidence/log_references",
    "/category",
    "/event_category",
];

/// Named fields with a snake_case key and a camelCase alias.
const CAMEL_PAIRS: [(&str, &str, &str); 5] = [
    ("object", "order_id", "orderId"),
    ("correlation", "span_id", "spanId"),
    ("context", "user_agent", "userAgent"),
    ("outcome", "error_code", "errorCode"),
    ("evidence/github", "commit_sha", "commitSha"),
];

/// One thing wrong with an event, among others.
#[derive(Debug, Clone)]
enum Fault {
    WrongType(&'static str, Value),
    TooLong(&'static str),
    NotAllowed(&'static str, &'static str),
    BadStreamId(&'static str),
    NegativeVersion(i64),
    BadTimestamp(&'static str),
    SchemaVersion(u64),
    LogReferenceItem(Value),
    UserIdDisagrees,
    AliasDisagrees(prop::sample::Index),
    CamelDisagrees(&'static str, &'static str, &'static str),
    EmptyEnvironment,
    VersionWithoutStream,
    /// Not a fault any more: kept with a warning.
    UnknownInPart(&'static str),
}

/// An error a fault must cause: where, what kind, and what its message says.
#[derive(Debug)]
struct Expected {
    field: String,
    kind: ErrorKind,
    says: Vec<String>,
}

fn expect(field: impl Into<String>, kind: ErrorKind, says: impl Into<String>) -> Expected {
    Expected {
        field: field.into(),
        kind,
        says: vec![says.into()],
    }
}

/// Whether pointer `b` is `a` or inside it.
fn nested_in(a: &str, b: &str) -> bool {
    b == a || b.starts_with(&format!("{a}/"))
}

fn fault() -> BoxedStrategy<Fault> {
    let junk = prop_oneof![
        Just(json!(true)),
        Just(json!([1, 2])),
        Just(json!(-1.5)),
        Just(json!([[{"deep": [[]]}]]))
    ];
    prop_oneof![
        5 => (select(WRONG_TYPE_AT.to_vec()), junk).prop_map(|(p, j)| Fault::WrongType(p, j)),
        1 => select(vec!["/actor/role", "/outcome/message", "/context/endpoint", "/object/order_id", "/idempotency_key"]).prop_map(Fault::TooLong),
        3 => select(vec![("/event_source", "fax"), ("/outcome/status", "meh"), ("/event_category", "finance"), ("/category", "finance")])
            .prop_map(|(p, v)| Fault::NotAllowed(p, v)),
        1 => select(vec!["no-colon", ":1", "order:"]).prop_map(Fault::BadStreamId),
        1 => (i64::MIN..0).prop_map(Fault::NegativeVersion),
        1 => select(vec!["yesterday", "2025-13-01T00:00:00Z", "2025-01-01"]).prop_map(Fault::BadTimestamp),
        1 => select(vec![0u64, 1 << 32, u64::MAX]).prop_map(Fault::SchemaVersion),
        1 => prop_oneof![Just(json!(7)), Just(json!(true)), Just(json!({"a": 1}))].prop_map(Fault::LogReferenceItem),
        1 => Just(Fault::UserIdDisagrees),
        1 => any::<prop::sample::Index>().prop_map(Fault::AliasDisagrees),
        1 => select(CAMEL_PAIRS.to_vec()).prop_map(|(s, a, b)| Fault::CamelDisagrees(s, a, b)),
        1 => Just(Fault::EmptyEnvironment),
        1 => Just(Fault::VersionWithoutStream),
        1 => select(vec!["/correlation/zz9", "/outcome/zz9", "/evidence/zz9", "/evidence/github/zz9"]).prop_map(Fault::UnknownInPart),
    ]
    .boxed()
}

impl Fault {
    /// The pointers it writes (two faults touching nested pointers clash).
    fn touches(&self) -> Vec<String> {
        match self {
            Fault::WrongType(p, _)
            | Fault::TooLong(p)
            | Fault::NotAllowed(p, _)
            | Fault::UnknownInPart(p) => vec![p.to_string()],
            Fault::BadStreamId(_) => vec!["/stream_id".into()],
            Fault::NegativeVersion(_) => vec!["/expected_version".into()],
            Fault::BadTimestamp(_) => vec!["/timestamp".into()],
            Fault::SchemaVersion(_) => vec!["/schema_version".into()],
            Fault::LogReferenceItem(_) => vec!["/evidence/log_references".into()],
            Fault::UserIdDisagrees => vec!["/user_id".into(), "/actor/user_id".into()],
            Fault::AliasDisagrees(_) => {
                EVENT_TYPE_ALIASES.iter().map(|a| format!("/{a}")).collect()
            }
            Fault::CamelDisagrees(s, a, b) => vec![format!("/{s}/{a}"), format!("/{s}/{b}")],
            Fault::EmptyEnvironment => vec!["/context/environment".into()],
            Fault::VersionWithoutStream => vec!["/expected_version".into(), "/stream_id".into()],
        }
    }

    /// Writes the fault into `body`; the errors it must cause.
    fn apply(&self, body: &mut Value, head: &Head) -> Vec<Expected> {
        use ErrorKind::*;
        match self {
            Fault::WrongType(p, junk) => {
                set_pointer(body, p, junk.clone());
                let t = json_type(junk);
                let message = match *p {
                    "/actor" | "/object" | "/correlation" | "/outcome" | "/evidence"
                    | "/context" | "/metadata" | "/evidence/github" => {
                        format!("expected a JSON object, got {t}")
                    }
                    "/timestamp" => format!(
                        "expected an RFC 3339 timestamp string like 2025-12-30T10:00:00Z, got {t}"
                    ),
                    "/expected_version" if t == "number" => format!(
                        "expected a non-negative integer or one of \"any\", \"no_stream\", \"stream_exists\", got non-integer number {junk}"
                    ),
                    "/expected_version" => format!(
                        "expected a non-negative integer or one of \"any\", \"no_stream\", \"stream_exists\", got {t}"
                    ),
                    "/schema_version" if t == "number" => {
                        format!("expected a non-negative integer, got non-integer number {junk}")
                    }
                    "/schema_version" => {
                        format!("expected a non-negative integer, got {t}")
                    }
                    "/user_id"
                    | "/actor/user_id"
                    | "/object/order_id"
                    | "/correlation/trace_id" => {
                        format!("expected a string (or an integer) identifier, got {t}")
                    }
                    "/evidence/log_references" => match junk {
                        Value::Array(items) => {
                            return items
                                .iter()
                                .enumerate()
                                .map(|(i, item)| {
                                    expect(
                                        format!("{p}/{i}"),
                                        InvalidType,
                                        format!("expected a string, got {}", json_type(item)),
                                    )
                                })
                                .collect();
                        }
                        _ => format!("expected an array of strings, got {t}"),
                    },
                    _ => format!("expected a string, got {t}"),
                };
                vec![expect(*p, InvalidType, message)]
            }
            Fault::TooLong(p) => {
                set_pointer(body, p, Value::from("r".repeat(5000)));
                vec![Expected {
                    field: p.to_string(),
                    kind: TooLarge,
                    says: vec!["5000 bytes".into(), "at most 4096 bytes".into()],
                }]
            }
            Fault::NotAllowed(p, v) => {
                set_pointer(body, p, Value::from(*v));
                let allowed = match *p {
                    "/event_source" => {
                        "frontend, backend, system, iot_device, external_api, scheduled".to_string()
                    }
                    "/outcome/status" => "success, failure, pending".to_string(),
                    "/event_category" => event_category_names().join(", "),
                    _ => CATEGORY_NAMES.join(", "),
                };
                vec![expect(
                    *p,
                    InvalidValue,
                    format!("`{v}` is not allowed; expected one of: {allowed}"),
                )]
            }
            Fault::BadStreamId(v) => {
                set_pointer(body, "/stream_id", Value::from(*v));
                vec![expect(
                    "/stream_id",
                    InvalidValue,
                    "`{entity_type}:{entity_id}`",
                )]
            }
            Fault::NegativeVersion(n) => {
                set_pointer(body, "/expected_version", Value::from(*n));
                vec![expect(
                    "/expected_version",
                    InvalidType,
                    format!("got negative integer {n}"),
                )]
            }
            Fault::BadTimestamp(v) => {
                set_pointer(body, "/timestamp", Value::from(*v));
                vec![expect(
                    "/timestamp",
                    InvalidValue,
                    format!("expected an RFC 3339 timestamp like 2025-12-30T10:00:00Z, got `{v}`"),
                )]
            }
            Fault::SchemaVersion(v) => {
                set_pointer(body, "/schema_version", Value::from(*v));
                vec![expect(
                    "/schema_version",
                    InvalidValue,
                    "schema_version is a positive integer below 2^32",
                )]
            }
            Fault::LogReferenceItem(item) => {
                set_pointer(body, "/evidence/log_references", json!(["ok", item]));
                vec![expect(
                    "/evidence/log_references/1",
                    InvalidType,
                    format!("expected a string, got {}", json_type(item)),
                )]
            }
            Fault::UserIdDisagrees => {
                set_pointer(body, "/user_id", json!("u-top"));
                set_pointer(body, "/actor/user_id", json!("u-actor"));
                vec![expect(
                    "/user_id",
                    InvalidValue,
                    "user_id `u-top` disagrees with actor.user_id `u-actor`; send one",
                )]
            }
            Fault::AliasDisagrees(i) => {
                let others: Vec<&str> = EVENT_TYPE_ALIASES
                    .iter()
                    .copied()
                    .filter(|a| *a != head.alias)
                    .collect();
                let second = *i.get(&others);
                set_pointer(body, &format!("/{second}"), json!("zz9.other"));
                let rank = |a: &str| EVENT_TYPE_ALIASES.iter().position(|x| *x == a);
                let (first, later) = if rank(second) < rank(head.alias) {
                    (second, head.alias)
                } else {
                    (head.alias, second)
                };
                vec![expect(
                    format!("/{later}"),
                    InvalidValue,
                    format!("`{later}` is an alias of `{first}` and disagrees with it"),
                )]
            }
            Fault::CamelDisagrees(section, snake, camel) => {
                set_pointer(body, &format!("/{section}/{snake}"), json!("v-1"));
                set_pointer(body, &format!("/{section}/{camel}"), json!("v-2"));
                vec![expect(
                    format!("/{section}/{camel}"),
                    InvalidValue,
                    format!("`{camel}` is an alias of `{snake}` and disagrees with it"),
                )]
            }
            Fault::EmptyEnvironment => {
                set_pointer(body, "/context/environment", json!(""));
                vec![expect(
                    "/context/environment",
                    InvalidValue,
                    "environment must not be empty",
                )]
            }
            Fault::VersionWithoutStream => {
                set_pointer(body, "/expected_version", json!(3));
                vec![expect(
                    "/expected_version",
                    InvalidValue,
                    "expected_version needs a stream_id",
                )]
            }
            Fault::UnknownInPart(p) => {
                set_pointer(body, p, json!(1));
                Vec::new()
            }
        }
    }
}

proptest! {
    // Cheap, and seventeen event categories to cover: four times the cases.
    #![proptest_config(ProptestConfig { cases: 1024, ..config() })]

    /// Property 1: Event Category Validation — "For any event submitted to
    /// the system, it should be accepted if and only if its category field is
    /// set to one of the valid values: business, system, delivery, or security."
    /// The category may also come from `event_category`, which derives it
    /// (`EVENT_CATEGORY_TABLE`) when `category` is absent; an explicit
    /// category wins over a disagreeing `event_category`, with a warning.
    #[test]
    fn property_01_category_validation(
        ty in custom_type(),
        cat in prop_oneof![2 => Just(None), 1 => category_value().prop_map(Some)],
        ec in prop_oneof![1 => Just(None), 3 => event_category_value().prop_map(Some)],
        alias in type_alias(),
    ) {
        let fx = Fixture::new("acme");
        let mut body = Map::new();
        body.insert(alias.into(), Value::from(ty));
        if let Some(c) = &cat { body.insert("category".into(), c.clone()); }
        if let Some(e) = &ec { body.insert("event_category".into(), e.clone()); }
        // A null is the same as leaving the field out.
        let cat_given = cat.as_ref().filter(|v| !v.is_null());
        let ec_given = ec.as_ref().filter(|v| !v.is_null());
        // The four categories and the derivation table, spelled out: the
        // oracle must not trust the code under test.
        let cat_name = cat_given.and_then(Value::as_str).filter(|s| CATEGORY_NAMES.contains(s));
        let derived = ec_given.and_then(Value::as_str).and_then(derived_category);
        let cat_bad = cat_given.is_some() && cat_name.is_none();
        let ec_bad = ec_given.is_some() && derived.is_none();
        let missing = cat_given.is_none() && ec_given.is_none();
        let want = cat_name.or(derived);
        match run(&processor(ValidationMode::Permissive), &fx, &Value::Object(body.clone())) {
            Ok(p) => {
                prop_assert!(!cat_bad && !ec_bad && !missing, "accepted {body:?}");
                prop_assert_eq!(Some(p.event.category.as_str()), want);
                prop_assert_eq!(p.event.event_category.map(|c| c.as_str()), ec_given.and_then(Value::as_str));
                let disagree = cat_name.is_some() && derived.is_some() && cat_name != derived;
                let warned: Vec<_> = p.warnings.iter().filter(|w| w.field == "/event_category").collect();
                prop_assert_eq!(warned.len(), usize::from(disagree), "{:?}", p.warnings);
                if disagree {
                    let (c, ec, d) = (cat_name.unwrap(), ec_given.and_then(Value::as_str).unwrap(), derived.unwrap());
                    prop_assert!(mentions_all(&warned[0].message, &[&format!("`{ec}`"), &format!("`{c}`"), d, &format!("category {c} is used")]),
                        "names both and says which wins: {}", warned[0].message);
                }
            }
            Err(r) => {
                prop_assert!(cat_bad || ec_bad || missing, "rejected {body:?}: {:?}", r.errors);
                assert_well_formed(&r);
                let mut want_fields = BTreeSet::new();
                if cat_bad || missing { want_fields.insert("/category".to_string()); }
                if ec_bad { want_fields.insert("/event_category".to_string()); }
                prop_assert_eq!(error_fields(&r), want_fields, "{:?}", r.errors);
                for (field, value, allowed) in [("/category", cat_given, CATEGORY_NAMES.to_vec()), ("/event_category", ec_given, event_category_names())] {
                    let Some(e) = errors_at(&r, field).first().copied() else { continue };
                    prop_assert_eq!(errors_at(&r, field).len(), 1);
                    match value {
                        Some(Value::String(s)) => {
                            prop_assert_eq!(e.kind, ErrorKind::InvalidValue);
                            let listed = allowed.join(", ");
                            prop_assert!(e.message.ends_with(&format!("expected one of: {listed}")), "lists every allowed value: {}", e.message);
                            if s.len() <= 64 {
                                prop_assert!(e.message.contains(&format!("`{s}` is not allowed")), "{}", e.message);
                            }
                        }
                        Some(other) => {
                            prop_assert_eq!(e.kind, ErrorKind::InvalidType);
                            prop_assert_eq!(&e.message, &format!("expected a string, got {}", json_type(other)));
                        }
                        None => {
                            prop_assert_eq!(e.kind, ErrorKind::Missing);
                            prop_assert!(mentions_all(&e.message, &CATEGORY_NAMES) && e.message.contains("event_category"), "{}", e.message);
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

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
    /// Input the schema has no place for is kept, not dropped: unknown keys
    /// at the top level and in the closed parts (correlation, outcome,
    /// evidence, evidence.github) go under `metadata.unknown_fields` at
    /// their own path, each with a warning saying where, and never over a
    /// value the sender already put there.
    #[test]
    fn property_03_normalization_consistency(
        body in valid_body(false),
        part_unknown in proptest::collection::vec((select(vec!["correlation", "outcome", "evidence", "evidence/github"]), safe_key(), safe_json()), 0..4),
        own in proptest::option::of(prop_oneof![
            3 => proptest::collection::vec((any::<prop::sample::Index>(), safe_json(), any::<bool>()), 0..4).prop_map(Some),
            1 => Just(None),
        ]),
        own_scalar in safe_text(),
    ) {
        let fx = Fixture::new("acme");
        let mut body = body;
        for (part, key, value) in &part_unknown {
            set_pointer(&mut body, &format!("/{part}/{}", escape_token(key)), value.clone());
        }
        // Where the unknown keys will want to go, from the body alone: their
        // path as sent.
        let mut unknown: Vec<(Vec<String>, Value)> = Vec::new();
        for (part, known) in [("correlation", &CORRELATION_KEYS[..]), ("outcome", &OUTCOME_KEYS), ("evidence/github", &GITHUB_KEYS), ("evidence", &EVIDENCE_KEYS)] {
            let Some(Value::Object(m)) = body.pointer(&format!("/{part}")) else { continue };
            for (k, v) in m.iter().filter(|(k, _)| !known.contains(&k.as_str())) {
                let mut path: Vec<String> = part.split('/').map(String::from).collect();
                path.push(k.clone());
                unknown.push((path, v.clone()));
            }
        }
        for (k, v) in body.as_object().unwrap().iter().filter(|(k, _)| !KNOWN_TOP_LEVEL.contains(&k.as_str())) {
            unknown.push((vec![k.clone()], v.clone()));
        }
        let pointer = |path: &[String]| path.iter().map(|t| format!("/{}", escape_token(t))).collect::<String>();
        // The sender's own metadata.unknown_fields: an object whose keys
        // take some of those places (a part's name, as an object, shares
        // it and takes one of its keys), or not an object at all.
        let own_value = own.map(|own| match own {
            Some(entries) => {
                let mut targets: Vec<String> = unknown.iter().map(|(path, _)| path[0].clone()).collect();
                targets.extend(["_previous".to_string(), "correlation".into(), "evidence".into()]);
                let mut m = Map::new();
                for (i, v, nest) in entries {
                    let target = i.get(&targets).clone();
                    let inner = unknown.iter().find(|(path, _)| nest && path.len() > 1 && path[0] == target);
                    let v = match inner {
                        Some((path, _)) => obj(vec![(path[1].as_str(), v)]),
                        None => v,
                    };
                    m.insert(target, v);
                }
                Value::Object(m)
            }
            None => Value::from(own_scalar.clone()),
        });
        if let Some(own) = &own_value {
            let metadata = body.as_object_mut().unwrap().entry("metadata").or_insert_with(|| json!({}));
            metadata.as_object_mut().unwrap().insert(UNKNOWN_FIELDS_KEY.into(), own.clone());
        }

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

        let stored: Value = serde_json::from_slice(&json_codec::encode(e)).unwrap();
        // The sender's own value is all still there (a non-object one one level down).
        match &own_value {
            Some(Value::Object(own)) => for (k, v) in own {
                let at = format!("/metadata/unknown_fields/{}", escape_token(k));
                prop_assert!(contains(stored.pointer(&at), v), "the sender's {at} kept: {stored}");
            },
            // Moved only when there is something to keep beside it.
            Some(scalar) if unknown.is_empty() => prop_assert_eq!(stored.pointer("/metadata/unknown_fields"), Some(scalar)),
            Some(scalar) => prop_assert_eq!(stored.pointer("/metadata/unknown_fields/_previous"), Some(scalar)),
            None => {}
        }
        // Each unknown key once, at the place its warning names, whole.
        let mut places = BTreeSet::new();
        for (path, value) in &unknown {
            let sent_at = pointer(path);
            let warned: Vec<_> = p.warnings.iter().filter(|w| w.field == sent_at).collect();
            prop_assert_eq!(warned.len(), 1, "one warning for {}: {:?}", sent_at, p.warnings);
            let message = &warned[0].message;
            let rest = message.strip_prefix("unknown field kept as ").unwrap_or_else(|| panic!("{message}"));
            let wanted = format!("/metadata/unknown_fields{sent_at}");
            let kept_at = match rest.split_once(", since ") {
                None => {
                    prop_assert_eq!(rest, wanted.as_str());
                    rest
                }
                Some((kept_at, why)) => {
                    // The step of the path that was taken: the place itself,
                    // or one above it that holds something other than an object.
                    let taken = why.strip_suffix(" was taken").unwrap_or_else(|| panic!("{message}"));
                    prop_assert!(wanted == taken || wanted.starts_with(&format!("{taken}/")), "{}", message);
                    let there = stored.pointer(taken);
                    prop_assert!(there.is_some_and(|v| taken == wanted || !v.is_object()), "{taken} really was taken: {stored}");
                    prop_assert_ne!(kept_at, wanted.as_str());
                    kept_at
                }
            };
            prop_assert_eq!(stored.pointer(kept_at), Some(value), "{} kept whole at {}", sent_at, kept_at);
            prop_assert!(places.insert(kept_at.to_string()), "{kept_at} used twice");
        }
        // With no sender's value in the way, every key is where it was sent.
        if own_value.is_none() {
            prop_assert!(p.warnings.iter().all(|w| !w.message.contains("was taken")), "{:?}", p.warnings);
        }
        if unknown.is_empty() && own_value.is_none() {
            prop_assert!(e.metadata.get(UNKNOWN_FIELDS_KEY).is_none());
        }
    }

    /// Property 4: Unique Event ID Assignment — "For any set of events
    /// processed by the system, each event should receive a unique eventId
    /// that is never duplicated." Two threads share the production id
    /// source, as a server's requests do, and every event is received at the
    /// same instant: the hardest case for a time-based id.
    #[test]
    fn property_04_unique_event_ids(bodies in proptest::collection::vec(valid_body(false), 1..12), repeats in 1usize..20) {
        let source: std::sync::Arc<dyn herald_core::IdSource> = std::sync::Arc::new(herald_core::UuidV7Ids::default());
        let ids = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2).map(|_| s.spawn(|| {
                let fx = Fixture::new("acme").with_ids(source.clone());
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
    /// permissive mode and rejected in strict mode.
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
        // Evidence: the camelCase and raw_s3_pointer spellings too.
        let evidence = object_at(&body, "evidence");
        let github = evidence.and_then(|ev| ev.get("github")).and_then(Value::as_object);
        prop_assert_eq!(&e.evidence.github, &github.map(|g| Github {
            commit_sha: first_id(Some(g), &["commit_sha", "commitSha"]),
            pr: first_id(Some(g), &["pr"]),
            repository: first_id(Some(g), &["repository"]),
        }));
        prop_assert_eq!(e.evidence.raw_pointer.clone(), first_id(evidence, &["raw_pointer", "raw_s3_pointer"]));
        prop_assert_eq!(e.evidence.trace_url.clone(), first_id(evidence, &["trace_url"]));
        let logs: Vec<String> = evidence.and_then(|ev| ev.get("log_references")).and_then(Value::as_array)
            .map(|l| l.iter().map(|v| v.as_str().expect("generated as text").to_string()).collect()).unwrap_or_default();
        prop_assert_eq!(&e.evidence.log_references, &logs);
        // The idempotency key under any of its names (message_id, messageId).
        let key = IDEMPOTENCY_ALIASES.iter().find_map(|k| body.get(*k)).and_then(Value::as_str);
        prop_assert_eq!(e.idempotency_key.as_deref(), key);
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
    /// the store indexes: all nine correlation keys. Trace context may
    /// also come from a W3C `traceparent`, in the body or the request
    /// header: an explicit `correlation.trace_id` wins, then the body's, then
    /// the header's; one that is invalid, or names a trace that lost, is a
    /// warning saying so, never dropped in silence.
    #[test]
    fn property_09_correlation_preservation(
        body in valid_body(true),
        body_tp in proptest::option::of(prop_oneof![valid_traceparent().prop_map(Ok), invalid_traceparent().prop_map(Err)]),
        header in proptest::option::of(prop_oneof![valid_traceparent().prop_map(Ok), invalid_traceparent().prop_map(Err)]),
    ) {
        let text = |t: &Result<TraceParentText, String>| match t { Ok(t) => t.text.clone(), Err(s) => s.clone() };
        let mut body = body;
        let map = body.as_object_mut().unwrap();
        map.remove("traceparent");
        if let Some(tp) = &body_tp { map.insert("traceparent".into(), text(tp).into()); }
        let fx = Fixture::new("acme").with_traceparent(header.as_ref().map(text));
        let p = accepted(&processor(ValidationMode::Permissive), &fx, &body);
        let e = &p.event;
        let corr = object_at(&body, "correlation");
        let object = object_at(&body, "object");
        let actor = object_at(&body, "actor");
        let given_trace = first_id(corr, &["trace_id", "traceId"]);
        let given_span = first_id(corr, &["span_id", "spanId"]);
        let ids = |t: &Option<Result<TraceParentText, String>>| t.as_ref().and_then(|t| traceparent_ids(&text(t)));
        let (body_ids, header_ids) = (ids(&body_tp), ids(&header));
        let (trace, span, winner) = match (&given_trace, body_ids.clone().or(header_ids.clone())) {
            (None, Some((t, s))) => (Some(t), given_span.clone().or(Some(s)), if body_ids.is_some() { "traceparent" } else { "traceparent header" }),
            _ => (given_trace.clone(), given_span.clone(), "correlation.trace_id"),
        };
        prop_assert_eq!(&e.correlation.trace_id, &trace);
        prop_assert_eq!(&e.correlation.span_id, &span);
        prop_assert_eq!(e.correlation.correlation_id.clone(), first_id(corr, &["correlation_id", "correlationId"]));
        prop_assert_eq!(e.correlation.parent_event_id.clone(), first_id(corr, &["parent_event_id", "parentEventId"]));

        // Each traceparent not used says why: not valid, or another trace won.
        for (field, origin, tp, parsed) in [("/traceparent", "traceparent", &body_tp, &body_ids), ("", "traceparent header", &header, &header_ids)] {
            let warned: Vec<_> = p.warnings.iter().filter(|w| w.field == field && w.message.contains("traceparent")).collect();
            match (tp, parsed) {
                (None, _) => prop_assert!(warned.is_empty(), "{:?}", p.warnings),
                (Some(_), None) => {
                    prop_assert_eq!(warned.len(), 1, "{:?}", p.warnings);
                    prop_assert!(warned[0].message.starts_with(&format!("{origin} `")) && warned[0].message.contains("is not a valid W3C traceparent"), "{}", warned[0].message);
                }
                (Some(_), Some((t, _))) if Some(t) != trace.as_ref() => {
                    prop_assert_eq!(warned.len(), 1, "{:?}", p.warnings);
                    let kept = trace.as_deref().unwrap();
                    prop_assert!(mentions_all(&warned[0].message, &[&format!("{origin} names trace {t}"), &format!("{winner} gives trace {kept}"), &format!("{winner} is used")]), "{}", warned[0].message);
                }
                (Some(_), Some(_)) => prop_assert!(warned.is_empty(), "used, or the same trace: {:?}", p.warnings),
            }
        }

        let user = body.get("user_id").and_then(id_text).or_else(|| first_id(actor, &["user_id", "userId"]));
        let email_hash = first_id(actor, &["email_hash"])
            .or_else(|| actor.and_then(|a| a.get("email")).and_then(Value::as_str).map(|m| fx.hasher.hash(m)));
        let keys = correlation::keys(e);
        let expect = [
            (CorrelationKey::TraceId, trace.clone()),
            (CorrelationKey::SpanId, span.clone()),
            (CorrelationKey::CorrelationId, first_id(corr, &["correlation_id", "correlationId"])),
            (CorrelationKey::RequestId, first_id(object, &["request_id", "requestId"])),
            (CorrelationKey::OrderId, first_id(object, &["order_id", "orderId"])),
            (CorrelationKey::SessionId, first_id(object, &["session_id", "sessionId"])),
            (CorrelationKey::TicketId, first_id(object, &["ticket_id", "ticketId"])),
            (CorrelationKey::UserId, user),
            (CorrelationKey::EmailHash, email_hash),
        ];
        prop_assert_eq!(expect.len(), CorrelationKey::ALL.len(), "every correlation key indexed");
        for (key, value) in expect {
            let found = keys.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string());
            prop_assert_eq!(found, value.filter(|v| !v.is_empty()), "{:?} indexed", key);
        }
    }

    /// Property 10: Fallback Correlation Support — "For any event lacking
    /// trace context, the system should support correlation using business
    /// identifiers (userId, orderId, sessionId) as fallback mechanisms."
    /// Without a trace, a story anchors on the strongest business key the
    /// event has (correlation, request, order, session, ticket, user, email
    /// hash, in that order; a span id never), and two events sharing only a
    /// business key are linked by exactly that key. With a trace, the trace
    /// is the anchor. The window to look for related events is the event's
    /// time plus and minus the one asked for.
    #[test]
    fn property_10_fallback_correlation(
        bodies in (valid_body(true), valid_body(true)),
        key in select(BUSINESS_KEYS.to_vec()),
        shared in ident(),
        shared_hash in hex(64),
        traced in proptest::option::of((0usize..3, valid_traceparent())),
        window in 1i64..=86_400,
    ) {
        let fx = Fixture::new("acme");
        let p = processor(ValidationMode::Permissive);
        let (mut a, mut b) = bodies;
        // Neither event has trace context; the business keys of the two
        // differ, but for `key`, which they share.
        for (body, side) in [(&mut a, "a"), (&mut b, "b")] {
            strip_trace_context(body);
            distinguish_business_keys(body, side);
            let value = if key == CorrelationKey::EmailHash { shared_hash.clone() } else { shared.clone() };
            set_business_key(body, key, value);
        }
        let ea = accepted(&p, &fx, &a).event;
        let eb = accepted(&p, &fx, &b).event;
        prop_assert!(!correlation::has_trace_context(&ea) && !correlation::has_trace_context(&eb));
        let want_shared = if key == CorrelationKey::EmailHash { &shared_hash } else { &shared };
        prop_assert_eq!(correlation::shared_key(&ea, &eb), Some((key, want_shared.clone())));

        // The anchor is the strongest business key, read from the body.
        let data = correlation::extract(&ea, time::Duration::seconds(window));
        let strongest = strongest_business_key(&a, &fx.hasher);
        prop_assert_eq!(&data.anchor, &strongest);
        prop_assert!(strongest.is_some(), "the shared key at least");
        prop_assert!(BUSINESS_KEYS.iter().position(|k| *k == strongest.as_ref().unwrap().0) <= BUSINESS_KEYS.iter().position(|k| *k == key));
        // The window: the event's own time, give or take `window` seconds.
        let t = ea.timestamp.unix_nanos();
        prop_assert_eq!(data.temporal.start.unix_nanos(), t - i128::from(window) * 1_000_000_000);
        prop_assert_eq!(data.temporal.end.unix_nanos(), t + i128::from(window) * 1_000_000_000);
        // The primary and secondary keys, as the body sent them.
        let (object, actor) = (object_at(&a, "object"), object_at(&a, "actor"));
        prop_assert_eq!(data.primary.trace_id, None);
        prop_assert_eq!(data.primary.request_id, first_id(object, &["request_id", "requestId"]));
        prop_assert_eq!(data.primary.order_id, first_id(object, &["order_id", "orderId"]));
        prop_assert_eq!(data.primary.session_id, first_id(object, &["session_id", "sessionId"]));
        prop_assert_eq!(data.secondary.user_id, a.get("user_id").and_then(id_text).or_else(|| first_id(actor, &["user_id", "userId"])));
        prop_assert_eq!(data.secondary.service_name, first_id(actor, &["service_name", "serviceName"]));

        // Contrast: the same event with a trace (in correlation, the body's
        // traceparent or the header) anchors on the trace.
        if let Some((how, tp)) = traced {
            let mut traced_body = a.clone();
            let mut fx = Fixture::new("acme");
            match how {
                0 => set_pointer(&mut traced_body, "/correlation/trace_id", Value::from(tp.trace_id.clone())),
                1 => set_pointer(&mut traced_body, "/traceparent", Value::from(tp.text.clone())),
                _ => fx = fx.with_traceparent(Some(tp.text.clone())),
            }
            let et = accepted(&p, &fx, &traced_body).event;
            prop_assert!(correlation::has_trace_context(&et));
            let anchor = correlation::extract(&et, time::Duration::seconds(window)).anchor;
            prop_assert_eq!(anchor, Some((CorrelationKey::TraceId, tp.trace_id.clone())));
            // And still links to the untraced one by the shared business key.
            prop_assert_eq!(correlation::shared_key(&et, &eb), Some((key, want_shared.clone())));
        }

        // An event sharing nothing is not linked.
        let lonely = accepted(&p, &fx, &obj(vec![("event_type", "c.x".into()), ("category", "system".into()), ("user_id", "nobody-else".into())])).event;
        prop_assert_eq!(correlation::shared_key(&ea, &lonely), None);
    }

    /// Property 13: Validation Error Handling — "For any invalid event input
    /// (missing fields, invalid types, size violations), the system should
    /// return descriptive error messages and handle failures gracefully."
    /// Several faults at once, anywhere in the event, are all reported in one
    /// answer, each at its pointer, with a message that says what was
    /// expected and what came (the allowed values, for a closed set).
    /// Faults that make the whole body unreadable (too large, not an object,
    /// nested too deep, cut short, random bytes) are one error for the body.
    #[test]
    fn property_13_validation_error_handling(
        head in head(),
        faults in proptest::collection::vec(fault(), 1..7),
        whole in proptest::option::of(0usize..5),
        junk in prop_oneof![Just(json!(true)), Just(json!([1, 2])), Just(json!(-1.5)), Just(json!([[{"deep": [[]]}]]))],
        cut in any::<prop::sample::Index>(),
        noise in proptest::collection::vec(any::<u8>(), 0..512),
        deep in (prop_oneof![3 => 118usize..=130, 1 => 1usize..=12, 1 => 128usize..=5000], select(DEEP_PLACES.to_vec()), any::<u64>()),
    ) {
        let fx = Fixture::new("acme");
        let p = processor(ValidationMode::Permissive);
        let mut body = Value::Object(head.body());
        if let Some(whole) = whole {
            match whole {
                0 => {
                    set_pointer(&mut body, "/data", json!({"blob": "x".repeat(70 * 1024)}));
                    let r = run(&p, &fx, &body).expect_err("too large");
                    assert_well_formed(&r);
                    prop_assert!(r.is_too_large());
                    prop_assert_eq!(r.errors.len(), 1);
                    prop_assert_eq!(&r.errors[0].field, "");
                    prop_assert!(r.errors[0].message.contains(&format!("event is {} bytes", bytes_of(&body).len())) && r.errors[0].message.contains("the limit is 65536 bytes"), "{}", r.errors[0].message);
                }
                1 => {
                    let r = run(&p, &fx, &junk).expect_err("not an object");
                    assert_well_formed(&r);
                    prop_assert_eq!(r.errors.len(), 1);
                    prop_assert_eq!(r.errors[0].kind, ErrorKind::InvalidType);
                    prop_assert_eq!(&r.errors[0].message, &format!("an event is a JSON object, got {}", json_type(&junk)));
                }
                2 => {
                    // Deep nesting: beyond serde_json's limit an error, never a
                    // panic; within it, an event whose stored forms read back.
                    let (levels, (place, extra), shape) = deep;
                    let bytes = with_deep_value(&body, place, levels, shape);
                    let nesting = 1 + extra + levels;
                    // A kept unknown key sits under metadata.unknown_fields,
                    // two levels deeper than it was sent.
                    let kept_deeper = place == "/zz9" || ["/correlation/", "/outcome/", "/evidence/"].iter().any(|p| place.starts_with(p));
                    let result = p.process_json(&bytes, &fx.ctx());
                    prop_assert!(json_codec::decode(&bytes).is_err(), "not a canonical event");
                    if nesting > 127 {
                        let r = result.expect_err("too deep");
                        assert_well_formed(&r);
                        prop_assert_eq!(&r.errors[0].field, "");
                        prop_assert_eq!(r.errors[0].kind, ErrorKind::InvalidValue);
                        prop_assert!(r.errors[0].message.contains("nested more than 127 arrays and objects deep"), "{}", r.errors[0].message);
                    } else if kept_deeper && nesting + 2 > 127 {
                        let r = result.expect_err("an unknown field too deep to keep");
                        assert_well_formed(&r);
                        prop_assert!(r.errors.iter().any(|e| e.field == place && e.kind == ErrorKind::InvalidValue
                            && e.message.contains(&format!("/metadata/unknown_fields{place}"))), "{:?}", r.errors);
                    } else {
                        let e = result.map_err(|r| TestCaseError::fail(format!("{:?}", r.errors)))?.event;
                        prop_assert_eq!(&json_codec::decode(&json_codec::encode(&e)).expect("stored JSON reads back"), &e);
                        prop_assert_eq!(&proto_codec::decode(&proto_codec::encode(&e)).expect("stored protobuf reads back"), &e);
                    }
                }
                3 => {
                    // Malformed JSON: the body cut short.
                    let bytes = bytes_of(&body);
                    let at = cut.index(bytes.len().saturating_sub(1)).max(1);
                    let r = p.process_json(&bytes[..at], &fx.ctx()).expect_err("truncated JSON is rejected");
                    assert_well_formed(&r);
                    prop_assert_eq!(r.errors[0].kind, ErrorKind::Syntax);
                    prop_assert!(r.errors[0].message.starts_with("malformed JSON at line 1, column "), "{}", r.errors[0].message);
                }
                _ => {
                    // Untrusted bytes never panic, whatever they are.
                    if let Err(r) = p.process_json(&noise, &fx.ctx()) { assert_well_formed(&r); }
                }
            }
            return Ok(());
        }

        // Several faults at once, none inside another's field.
        let mut applied: Vec<Fault> = Vec::new();
        for f in faults {
            let clash = applied.iter().any(|g| g.touches().iter().any(|a| f.touches().iter().any(|b| nested_in(a, b) || nested_in(b, a))));
            if !clash { applied.push(f); }
        }
        let mut want: Vec<Expected> = Vec::new();
        let mut warn_at = Vec::new();
        for f in &applied {
            want.extend(f.apply(&mut body, &head));
            if let Fault::UnknownInPart(at) = f { warn_at.push(*at); }
        }
        if want.is_empty() {
            // Only unknown keys in closed parts: kept, not refused.
            let ok = accepted(&p, &fx, &body);
            for at in warn_at {
                prop_assert!(warned_at(&ok.warnings, at), "{at} kept with a warning: {:?}", ok.warnings);
            }
            return Ok(());
        }
        let r = run(&p, &fx, &body).expect_err("invalid input is rejected");
        assert_well_formed(&r);
        let want_fields: BTreeSet<String> = want.iter().map(|w| w.field.clone()).collect();
        prop_assert_eq!(error_fields(&r), want_fields, "every fault, and nothing else: {:?} from {:?}", r.errors, applied);
        for w in &want {
            let at = errors_at(&r, &w.field);
            prop_assert_eq!(at.len(), 1, "{:?}", r.errors);
            prop_assert_eq!(at[0].kind, w.kind, "{:?}", at[0]);
            for fragment in &w.says {
                prop_assert!(at[0].message.contains(fragment.as_str()), "{:?} should say {:?}", at[0].message, fragment);
            }
        }
        prop_assert_eq!(r.is_too_large(), want.iter().any(|w| w.kind == ErrorKind::TooLarge));
        // An unknown key in a closed part is kept, not refused, even here.
        for at in warn_at {
            prop_assert!(warned_at(&r.warnings, at), "{at} kept with a warning: {:?}", r.warnings);
        }
    }

    /// Property 15: Sensitive Data Handling — "For any event containing
    /// sensitive data, redaction policies should be applied before storage
    /// according to data minimization principles." The policy is generated
    /// too: secrets dropped, masked or hashed; email hashing, card masking
    /// and secret scrubbing each on or off; the tenant's own secret keys;
    /// path rules with any action. Emails, secrets and card numbers are
    /// planted anywhere (named fields of every part, their extra keys,
    /// nested data and metadata, array items, object keys, alone or inside
    /// text, and emails in the idempotency key), and each must be stored
    /// exactly as the policy says; emails become hashes that still correlate
    /// (same email and tenant, same hash). Path rules then do what each
    /// action says at every place their path matches, and nothing else.
    #[test]
    fn property_15_sensitive_data_handling(
        body in valid_body(true),
        plants in proptest::collection::vec((spot(), sensitive()), 1..10),
        data_email in email(),
        idem in proptest::option::of((select(IDEMPOTENCY_ALIASES.to_vec()), email(), 0..EMAIL_TEMPLATES.len())),
        policy in redaction_policy(),
        other_tenant in "[a-z]{3,8}",
    ) {
        let fx = Fixture::new("acme");
        let builtin = RedactionPolicy { rules: Vec::new(), ..policy.clone() };
        let with = |redaction: &RedactionPolicy| EventProcessor { redaction: redaction.clone(), ..processor(ValidationMode::Permissive) };
        let mut body = body;
        let mut used = BTreeSet::new();
        let mut planted: Vec<Planted> = plants
            .iter()
            .enumerate()
            .filter_map(|(i, (spot, what))| plant(&mut body, i, *spot, what, &mut used))
            .collect();
        let data_plant = Sensitive::Email { email: data_email.clone(), template: 1 };
        planted.extend(plant(&mut body, 99, Spot::Keyed("/data"), &data_plant, &mut used));
        if let Some((alias, email, template)) = &idem {
            let map = body.as_object_mut().unwrap();
            for a in IDEMPOTENCY_ALIASES { map.remove(a); }
            map.insert(alias.to_string(), format!("retry/{}", EMAIL_TEMPLATES[*template].replace("{}", email)).into());
        }

        // The built-in scrubbing, plant by plant, exactly as the policy says.
        let e = accepted(&with(&builtin), &fx, &body).event;
        let stored: Value = serde_json::from_slice(&json_codec::encode(&e)).unwrap();
        for plant in &planted {
            let want = plant.stored(&builtin, &fx.hasher);
            match (&plant.at, &want) {
                (PlantedAt::Value(at), Stored::Is(v)) => prop_assert_eq!(stored.pointer(at), Some(v), "{:?} at {}: {}", plant.what, at, stored),
                (PlantedAt::Value(at), Stored::Gone) => prop_assert!(stored.pointer(at).is_none(), "{:?} dropped from {}: {}", plant.what, at, stored),
                (PlantedAt::KeyOf(at), Stored::Is(Value::String(key))) => prop_assert!(
                    stored.pointer(at).and_then(Value::as_object).is_some_and(|m| m.contains_key(key)), "key {} in {}: {}", key, at, stored),
                other => prop_assert!(false, "no such plant: {other:?}"),
            }
        }
        let out = String::from_utf8(json_codec::encode(&e)).unwrap();
        let lower = out.to_lowercase();
        let marker = |email: &str| format!("email_hash:{}", fx.hasher.hash(email));
        for plant in &planted {
            if let Some((email, _)) = &plant.email {
                prop_assert_eq!(!lower.contains(&email.to_lowercase()), builtin.hash_emails, "email {} stored iff not hashed: {}", email, out);
            }
        }

        // The idempotency key: emails hashed in place, deterministically.
        if let Some((_, email, template)) = &idem {
            let written = if builtin.hash_emails { marker(email) } else { email.clone() };
            prop_assert_eq!(e.idempotency_key.clone(), Some(format!("retry/{}", EMAIL_TEMPLATES[*template].replace("{}", &written))));
            let elsewhere = accepted(&with(&builtin), &Fixture::new(&format!("t{other_tenant}")), &body).event;
            prop_assert_eq!(elsewhere.idempotency_key != e.idempotency_key, builtin.hash_emails, "another tenant, another hash");
        }

        // The actor's email: the hash sent, else actor.email, else the first
        // email in the actor's named fields, its extra keys, then data.
        let actor_email = object_at(&body, "actor").and_then(|a| a.get("email")).and_then(Value::as_str);
        let given_hash = object_at(&body, "actor").and_then(|a| a.get("email_hash")).and_then(Value::as_str);
        if !builtin.hash_emails {
            prop_assert_eq!(e.actor.email_hash.as_deref(), given_hash);
            prop_assert_eq!(e.actor.extra.get("email").and_then(Value::as_str), actor_email, "kept as sent");
        } else {
            let got = e.actor.email_hash.clone().expect("an email names the actor");
            prop_assert!(!e.actor.extra.contains_key("email"));
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
        }

        // Path rules: what the tenant's rules say, applied to that, and
        // nothing more.
        let full = accepted(&with(&policy), &fx, &body).event;
        let mut want = stored.clone();
        for rule in &policy.rules {
            apply_rule(&mut want, rule, &fx.hasher);
        }
        let mut got: Value = serde_json::from_slice(&json_codec::encode(&full)).unwrap();
        got["event_id"] = want["event_id"].clone();
        prop_assert_eq!(&got, &want, "rules {:?}", policy.rules);

        // Same email and tenant: same hash, event after event. Another
        // tenant: another hash.
        let mut again = accepted(&with(&policy), &fx, &body).event;
        again.event_id = full.event_id;
        prop_assert_eq!(&again, &full);
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

    /// Not a numbered property: size limits hold at their configured boundary,
    /// whatever it is. An event of exactly `max_event_bytes` is accepted and
    /// one byte more is refused as too large (HTTP 413), through both entry
    /// points; a named field of exactly `max_field_bytes` (bytes, not
    /// characters) is accepted and one byte more is refused at its pointer.
    #[test]
    fn size_limits_hold_at_the_boundary(
        body in valid_body(false),
        slack in 0usize..3000,
        multibyte in any::<bool>(),
        field in select(vec!["/actor/role", "/object/order_id", "/context/endpoint", "/outcome/message", "/idempotency_key", "/correlation/trace_id"]),
        field_limit in 8usize..=4096,
    ) {
        let fx = Fixture::new("acme");
        // Text of exactly `n` bytes, two-byte characters where asked.
        let text = |n: usize| if multibyte { format!("{}{}", "é".repeat(n / 2), "x".repeat(n % 2)) } else { "x".repeat(n) };

        // The whole event: padded to the limit, then one byte over.
        let mut body = body;
        set_pointer(&mut body, "/metadata/pad9", Value::from(""));
        let limit = bytes_of(&body).len() + slack;
        let p = EventProcessor { limits: Limits { max_event_bytes: limit, ..Limits::default() }, ..processor(ValidationMode::Permissive) };
        set_pointer(&mut body, "/metadata/pad9", Value::from(text(slack)));
        prop_assert_eq!(bytes_of(&body).len(), limit);
        let at_limit = run(&p, &fx, &body);
        prop_assert!(at_limit.is_ok(), "exactly {} bytes: {:?}", limit, at_limit.err());
        prop_assert!(p.validate(&body).is_valid);
        set_pointer(&mut body, "/metadata/pad9", Value::from(format!("{}y", text(slack))));
        prop_assert_eq!(bytes_of(&body).len(), limit + 1);
        for r in [run(&p, &fx, &body).expect_err("one byte over"), p.validate(&body)] {
            prop_assert!(r.is_too_large());
            prop_assert_eq!(r.errors.len(), 1);
            prop_assert_eq!(r.errors[0].kind, ErrorKind::TooLarge);
            prop_assert_eq!(&r.errors[0].field, "");
            prop_assert!(r.errors[0].message.starts_with(&format!("event is {} bytes; the limit is {limit} bytes", limit + 1)), "{}", r.errors[0].message);
        }

        // One named field.
        let p = EventProcessor { limits: Limits { max_field_bytes: field_limit, ..Limits::default() }, ..processor(ValidationMode::Permissive) };
        let mut small = json!({"event_type": "x.y", "category": "system"});
        set_pointer(&mut small, field, Value::from(text(field_limit)));
        let at_limit = run(&p, &fx, &small);
        prop_assert!(at_limit.is_ok(), "{} of exactly {} bytes: {:?}", field, field_limit, at_limit.err());
        set_pointer(&mut small, field, Value::from(format!("{}y", text(field_limit))));
        let r = run(&p, &fx, &small).expect_err("one byte over");
        prop_assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        prop_assert_eq!(&r.errors[0].field, field);
        prop_assert_eq!(r.errors[0].kind, ErrorKind::TooLarge);
        prop_assert_eq!(&r.errors[0].message, &format!("{} bytes; this field holds at most {field_limit} bytes", field_limit + 1));
        prop_assert!(r.is_too_large());
    }

    /// Not a numbered property: `process_json` reads bytes straight into the
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
