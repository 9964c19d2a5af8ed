//! Properties of the registry, through the same `EventProcessor` ingest
//! uses: a random valid instance of a generated schema is accepted (and
//! recorded with the version it was checked against); a mutated one (a
//! wrong type, a missing required field, an undeclared key on a closed
//! object, a number just outside its bounds, a string one character too
//! long, a value outside its enum) is rejected with exactly one error at
//! the right `/data/...` pointer, naming the bound it broke. Also:
//! NATS-style matching, and that a change the compatibility check calls
//! backward compatible really keeps every previously valid payload valid.

use std::sync::Arc;

use herald_core::error::pointer_push;
use herald_core::{EmailHasher, ErrorKind, EventProcessor, ProcessingContext, TenantId, Timestamp};
use herald_registry::{Level, Registry, TypePattern, ValidatorCache, compat, parse_input};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Map, Value, json};

/// A generated schema, kept as a tree so instances and mutations can follow it.
#[derive(Debug, Clone)]
enum Shape {
    Str {
        max_len: usize,
    },
    Int {
        min: i64,
        max: i64,
    },
    Num,
    Bool,
    Enum(Vec<String>),
    Arr(Box<Shape>),
    Obj {
        props: Vec<(String, Shape, bool)>,
        closed: bool,
    },
}

impl Shape {
    fn schema(&self) -> Value {
        match self {
            Shape::Str { max_len } => json!({"type": "string", "maxLength": max_len}),
            Shape::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
            Shape::Num => json!({"type": "number"}),
            Shape::Bool => json!({"type": "boolean"}),
            Shape::Enum(values) => json!({"enum": values}),
            Shape::Arr(item) => json!({"type": "array", "items": item.schema()}),
            Shape::Obj { props, closed } => {
                let mut properties = Map::new();
                let mut required = Vec::new();
                for (k, s, req) in props {
                    properties.insert(k.clone(), s.schema());
                    if *req {
                        required.push(json!(k));
                    }
                }
                let mut o =
                    json!({"type": "object", "properties": properties, "required": required});
                if *closed {
                    o["additionalProperties"] = json!(false);
                }
                o
            }
        }
    }

    /// A value of a type this shape refuses.
    fn wrong_value(&self) -> Value {
        match self {
            Shape::Str { .. } | Shape::Enum(_) => json!(12345),
            _ => json!("not this type"),
        }
    }
}

fn key() -> impl Strategy<Value = String> {
    // `/` and `~` exercise pointer escaping.
    "[a-z/~]{1,5}"
}

fn leaf() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (1usize..12).prop_map(|max_len| Shape::Str { max_len }),
        (-1000i64..1000, 0i64..1000).prop_map(|(min, span)| Shape::Int {
            min,
            max: min + span
        }),
        Just(Shape::Num),
        Just(Shape::Bool),
        prop::collection::btree_set("[A-Z]{1,4}", 1..5)
            .prop_map(|s| Shape::Enum(s.into_iter().collect())),
    ]
}

fn object(inner: impl Strategy<Value = Shape> + Clone) -> impl Strategy<Value = Shape> {
    (
        prop::collection::btree_map(key(), (inner, any::<bool>()), 1..5),
        any::<bool>(),
    )
        .prop_map(|(m, closed)| Shape::Obj {
            props: m.into_iter().map(|(k, (s, r))| (k, s, r)).collect(),
            closed,
        })
}

fn shape() -> impl Strategy<Value = Shape> {
    let nested = leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            inner.clone().prop_map(|s| Shape::Arr(Box::new(s))),
            object(inner),
        ]
    });
    object(nested)
}

fn valid(shape: &Shape) -> BoxedStrategy<Value> {
    match shape {
        Shape::Str { max_len } => {
            proptest::string::string_regex(&format!("[a-zA-Z0-9 é]{{0,{max_len}}}"))
                .expect("regex")
                .prop_map(Value::String)
                .boxed()
        }
        Shape::Int { min, max } => (*min..=*max).prop_map(|n| json!(n)).boxed(),
        Shape::Num => (-1e6f64..1e6).prop_map(|n| json!(n)).boxed(),
        Shape::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Shape::Enum(values) => prop::sample::select(values.clone())
            .prop_map(Value::String)
            .boxed(),
        Shape::Arr(item) => prop::collection::vec(valid(item), 0..4)
            .prop_map(Value::Array)
            .boxed(),
        Shape::Obj { props, .. } => {
            let parts: Vec<BoxedStrategy<Option<(String, Value)>>> = props
                .iter()
                .map(|(k, s, required)| {
                    let k = k.clone();
                    let present = if *required {
                        Just(true).boxed()
                    } else {
                        any::<bool>().boxed()
                    };
                    (present, valid(s))
                        .prop_map(move |(p, v)| p.then(|| (k.clone(), v)))
                        .boxed()
                })
                .collect();
            parts
                .prop_map(|kvs| Value::Object(kvs.into_iter().flatten().collect()))
                .boxed()
        }
    }
}

fn schema_and_instance() -> impl Strategy<Value = (Shape, Value)> {
    shape().prop_flat_map(|s| {
        let v = valid(&s);
        (Just(s), v)
    })
}

/// One way to break a valid instance, and where the error must point.
#[derive(Debug)]
struct Mutation {
    /// JSON pointer below `/data`.
    at: String,
    kind: ErrorKind,
    apply: Apply,
    /// Text the error message must contain (the bound that was broken).
    says: Option<String>,
}

impl Mutation {
    fn replace(at: &str, kind: ErrorKind, value: Value, says: Option<String>) -> Mutation {
        Mutation {
            at: at.to_string(),
            kind,
            apply: Apply::Replace(value),
            says,
        }
    }
}

#[derive(Debug)]
enum Apply {
    Replace(Value),
    Remove,
    Add(Value),
}

/// Every mutation the instance admits, each expected to cause exactly one error.
fn mutations(shape: &Shape, value: &Value, at: &str, out: &mut Vec<Mutation>) {
    let kind = match shape {
        Shape::Enum(_) => ErrorKind::InvalidValue,
        _ => ErrorKind::InvalidType,
    };
    out.push(Mutation::replace(at, kind, shape.wrong_value(), None));
    // Just outside each bound, with the right type: only that bound is broken.
    let outside = ErrorKind::InvalidValue;
    match shape {
        Shape::Int { min, max } => {
            out.push(Mutation::replace(
                at,
                outside,
                json!(max + 1),
                Some(format!("≤ {max}")),
            ));
            out.push(Mutation::replace(
                at,
                outside,
                json!(min - 1),
                Some(format!("≥ {min}")),
            ));
        }
        Shape::Str { max_len } => {
            // Characters, not bytes: `é` is two bytes and counts once.
            let long: String = value
                .as_str()
                .unwrap_or_default()
                .chars()
                .chain(std::iter::repeat('é'))
                .take(max_len + 1)
                .collect();
            out.push(Mutation::replace(
                at,
                outside,
                Value::String(long),
                Some(format!("at most {max_len} characters")),
            ));
        }
        Shape::Enum(values) => {
            // Generated members are upper case, so a lower-cased one is outside.
            let near = value.as_str().unwrap_or("A").to_lowercase();
            out.push(Mutation::replace(
                at,
                outside,
                Value::String(near),
                Some(format!("one of: {}", json!(values))),
            ));
        }
        _ => {}
    }
    match (shape, value) {
        (Shape::Arr(item), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                mutations(item, v, &pointer_push(at, &i.to_string()), out);
            }
        }
        (Shape::Obj { props, closed }, Value::Object(m)) => {
            for (k, s, required) in props {
                let child = pointer_push(at, k);
                if let Some(v) = m.get(k) {
                    if *required {
                        out.push(Mutation {
                            at: child.clone(),
                            kind: ErrorKind::Missing,
                            apply: Apply::Remove,
                            says: None,
                        });
                    }
                    mutations(s, v, &child, out);
                }
            }
            if *closed {
                out.push(Mutation {
                    at: pointer_push(at, "zz_unknown"),
                    kind: ErrorKind::InvalidValue,
                    apply: Apply::Add(json!(true)),
                    says: None,
                });
            }
        }
        _ => {}
    }
}

fn apply(data: &mut Value, m: &Mutation) {
    let (parent, last) = match m.at.rfind('/') {
        Some(i) => (&m.at[..i], &m.at[i + 1..]),
        None => ("", ""),
    };
    match &m.apply {
        Apply::Replace(v) => *data.pointer_mut(&m.at).expect("path exists") = v.clone(),
        Apply::Remove | Apply::Add(_) => {
            let token = last.replace("~1", "/").replace("~0", "~");
            let obj = data
                .pointer_mut(parent)
                .and_then(Value::as_object_mut)
                .expect("parent is an object");
            match &m.apply {
                Apply::Remove => {
                    obj.remove(&token);
                }
                Apply::Add(v) => {
                    obj.insert(token, v.clone());
                }
                Apply::Replace(_) => unreachable!(),
            }
        }
    }
}

fn processor_for(schema: &Value) -> EventProcessor {
    let def = parse_input(
        &json!({"event_type": "prop.checked", "category": "business", "payload_schema": schema}),
        None,
    )
    .expect("generated schemas are valid")
    .into_definition("def_prop".into(), 1, Timestamp::now());
    let registry = Registry::build(
        TenantId::parse("acme").unwrap(),
        vec![def],
        Arc::new(ValidatorCache::new()),
    );
    EventProcessor {
        vocabulary: Arc::new(registry),
        ..EventProcessor::default()
    }
}

fn event(data: Value) -> Value {
    json!({"event_type": "prop.checked", "category": "business", "data": data})
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_valid_instance_is_accepted_and_a_mutated_one_is_rejected_at_its_path(
        (shape, instance) in schema_and_instance(),
        pick in any::<Index>(),
    ) {
        let processor = processor_for(&shape.schema());
        let tenant = TenantId::parse("acme").unwrap();
        let hasher = EmailHasher::new(b"props");
        let ctx = ProcessingContext {
            tenant_id: &tenant,
            email_hasher: &hasher,
            processing_timestamp: Timestamp::now(),
            ids: &herald_core::UuidV7Ids::new(),
            traceparent: None,
        };
        let accepted = processor.process_value(event(instance.clone()), &ctx);
        prop_assert!(accepted.is_ok(), "valid instance refused: {:?}\nschema {}\ninstance {}", accepted.err(), shape.schema(), instance);
        prop_assert_eq!(accepted.unwrap().event.schema_version, Some(1));

        let mut all = Vec::new();
        mutations(&shape, &instance, "", &mut all);
        let m = pick.get(&all);
        let mut broken = instance.clone();
        apply(&mut broken, m);
        let result = processor.validate(&event(broken.clone()));
        let want = format!("/data{}", m.at);
        prop_assert!(!result.is_valid, "mutation {:?} was accepted: {}", m, broken);
        prop_assert_eq!(result.errors.len(), 1, "{:?}", result.errors);
        prop_assert_eq!(&result.errors[0].field, &want, "{:?} on {}", m, broken);
        prop_assert_eq!(result.errors[0].kind, m.kind);
        if let Some(says) = &m.says {
            prop_assert!(result.errors[0].message.contains(says.as_str()), "{:?} for {:?}", result.errors[0], m);
        }
    }

    #[test]
    fn wildcards_match_exactly_what_nats_says(
        tokens in prop::collection::vec("[a-z]{1,4}", 1..6),
        stars in prop::collection::vec(any::<bool>(), 6),
        cut in any::<Index>(),
        extra in "[a-z]{1,4}",
    ) {
        let ty = tokens.join(".");
        let starred: Vec<&str> = tokens.iter().zip(&stars).map(|(t, s)| if *s { "*" } else { t.as_str() }).collect();
        let p = TypePattern::parse(&starred.join(".")).unwrap();
        prop_assert!(p.matches(&ty));
        let longer = format!("{ty}.{extra}");
        prop_assert!(!p.matches(&longer), "`*` is exactly one token");
        if tokens.len() > 1 {
            prop_assert!(!p.matches(&tokens[..tokens.len() - 1].join(".")));
        }
        // `prefix.>` matches iff the type has the prefix and at least one more token.
        let k = cut.index(tokens.len());
        let tail = if k == 0 { ">".to_string() } else { format!("{}.>", tokens[..k].join(".")) };
        let tail = TypePattern::parse(&tail).unwrap();
        prop_assert!(tail.matches(&ty));
        prop_assert!(tail.matches(&longer));
        if k > 0 {
            prop_assert!(!tail.matches(&tokens[..k].join(".")), "`>` needs one more token");
        }
    }

    #[test]
    fn what_compare_calls_backward_compatible_keeps_old_payloads_valid(
        (shape, instance) in schema_and_instance(),
        widen in 0usize..4,
        new_key in "[a-z]{1,5}_new",
        carry in any::<bool>(),
    ) {
        let Shape::Obj { props, closed } = &shape else { unreachable!() };
        // An open object's old payloads may carry keys it never declared,
        // such as the one the new version is about to type.
        let mut instance = instance;
        if !*closed && carry {
            instance[new_key.as_str()] = json!("text");
        }
        let mut wider = props.clone();
        match widen {
            // an optional property
            0 => wider.push((new_key, Shape::Bool, false)),
            // nothing required any more
            1 => wider.iter_mut().for_each(|p| p.2 = false),
            // looser bounds and longer strings
            2 => wider.iter_mut().for_each(|p| match &mut p.1 {
                Shape::Int { min, max } => { *min -= 10; *max += 10 }
                Shape::Str { max_len } => *max_len += 3,
                _ => {}
            }),
            // an integer may now be any number
            _ => wider.iter_mut().for_each(|p| if let Shape::Int { .. } = p.1 { p.1 = Shape::Num }),
        }
        let new = Shape::Obj { props: wider, closed: *closed };
        let def = |v: u32, s: &Shape| parse_input(
            &json!({"event_type": "t", "category": "system", "payload_schema": s.schema()}), None,
        ).unwrap().into_definition("d".into(), v, Timestamp::now());
        let c = compat::compare(&def(1, &shape), &def(2, &new));
        // A typed property added to an open object is the one addition
        // that is breaking; every other widening here is compatible.
        prop_assert_eq!(c.level == Level::Breaking, widen == 0 && !*closed, "{:?}", c);
        let validator = herald_registry::schema::compile(&new.schema()).unwrap();
        if c.level != Level::Breaking {
            prop_assert!(validator.is_valid(&instance), "old payload {} refused by {}", instance, new.schema());
        }
        // And the reverse of a strict widening is breaking.
        let back = compat::compare(&def(2, &new), &def(3, &shape));
        if c.level == Level::Backward {
            prop_assert_eq!(back.level, Level::Breaking, "{:?}", back);
        }
    }
}
