//! Generators and the "nothing dropped" oracle shared by the decoders'
//! property tests.

#![allow(dead_code)]

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON, with object keys drawn from `keys` (the names a decoder
/// maps, so every branch is taken) and a few others.
pub fn json(keys: &'static [&'static str], depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9 .:/@-]{0,12}".prop_map(Value::from),
    ];
    let key = prop_oneof![
        4 => proptest::sample::select(keys).prop_map(str::to_string),
        1 => "[a-z_]{1,8}",
    ];
    leaf.prop_recursive(depth, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// An object with keys from `keys`.
pub fn object(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::collection::vec((proptest::sample::select(keys), json(keys, 3)), 0..10)
        .prop_map(|kv| {
            Value::Object(
                kv.into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect::<Map<_, _>>(),
            )
        })
        .boxed()
}

/// Every scalar of `v` (strings, numbers, booleans; not nulls), as text.
pub fn scalars(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Null => {}
        Value::Array(a) => a.iter().for_each(|x| scalars(x, out)),
        Value::Object(m) => m.values().for_each(|x| scalars(x, out)),
        other => out.push(other.to_string()),
    }
}

/// The scalars of `input` missing from `output`, counted with multiplicity.
pub fn dropped(input: &Value, output: &Value) -> Vec<String> {
    let (mut i, mut o) = (Vec::new(), Vec::new());
    scalars(input, &mut i);
    scalars(output, &mut o);
    let mut missing = Vec::new();
    for s in i {
        match o.iter().position(|x| *x == s) {
            Some(p) => {
                o.swap_remove(p);
            }
            None => missing.push(s),
        }
    }
    missing
}
