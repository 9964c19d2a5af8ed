//! Whether a new definition version is backward compatible with the one
//! before it: every event the old version accepted is still accepted. Only
//! additions (an optional property, a wider type, a looser bound, a new
//! source) are compatible; a newly required field, a removed property, a
//! narrowed type, enum or bound, a new `pattern`/`format`, a changed
//! category or event_category, or fewer allowed sources are breaking. A
//! change to a keyword this diff cannot reason about (`allOf`, `$ref`,
//! `if`, ...) is reported as breaking: the registry does not guess in the
//! sender's disfavour.
//!
//! An optional property added to an *open* object (no
//! `"additionalProperties": false`) is compatible only if it accepts every
//! value the old `additionalProperties` did: old events may already carry
//! that key with any value. Adding a typed property is therefore
//! compatible on a closed object and breaking on an open one, as in other
//! JSON Schema registries (Confluent's "property added to open content
//! model").

use std::collections::BTreeSet;

use herald_core::error::pointer_push;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::definition::EventDefinition;

/// How to go on when a typed property added to an open object is refused.
const OPEN_OBJECT_ADVICE: &str = "if no sender uses that key with another value, send \
?allow_breaking=true; to stay compatible, declare the property without a type constraint. \
An object closed with \"additionalProperties\": false takes new typed properties compatibly \
(closing an open object is itself breaking, once)";

/// The verdict on one new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Nothing that affects validation changed.
    Identical,
    /// Only additions: every event the previous version accepted still passes.
    Backward,
    /// Some event the previous version accepted would now be rejected.
    Breaking,
}

/// One difference between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// JSON pointer into the definition (`/payload_schema/properties/id`).
    pub path: String,
    pub breaking: bool,
    pub message: String,
    /// How to make the change, or an alternative to it, when the way is
    /// not obvious from the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compatibility {
    pub previous_version: u32,
    pub level: Level,
    pub changes: Vec<Change>,
}

impl Compatibility {
    pub fn is_breaking(&self) -> bool {
        self.level == Level::Breaking
    }

    pub fn breaking_changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.breaking)
    }

    /// The distinct advice of the breaking changes, in order.
    pub fn advice(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for a in self.breaking_changes().filter_map(|c| c.advice.as_deref()) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }
}

#[derive(Default)]
struct Diff {
    changes: Vec<Change>,
}

impl Diff {
    fn breaking(&mut self, path: &str, message: impl Into<String>) {
        self.changes.push(Change {
            path: path.to_string(),
            breaking: true,
            message: message.into(),
            advice: None,
        });
    }
    fn compatible(&mut self, path: &str, message: impl Into<String>) {
        self.changes.push(Change {
            path: path.to_string(),
            breaking: false,
            message: message.into(),
            advice: None,
        });
    }
}

/// Compares `new` against `old`.
pub fn compare(old: &EventDefinition, new: &EventDefinition) -> Compatibility {
    let mut d = Diff::default();
    if old.category != new.category {
        d.breaking(
            "/category",
            format!(
                "category changed from {} to {}: events sent as {} are now refused",
                old.category, new.category, old.category
            ),
        );
    }
    // Ingest refuses an event_category other than the definition's.
    match (old.event_category, new.event_category) {
        (a, b) if a == b => {}
        (Some(a), None) => d.compatible(
            "/event_category",
            format!("event_category {a} removed: events may now send any of their category's"),
        ),
        (None, Some(b)) => d.breaking(
            "/event_category",
            format!("event_category {b} added: events that send another one are now refused"),
        ),
        (Some(a), Some(b)) => d.breaking(
            "/event_category",
            format!("event_category changed from {a} to {b}: events that send {a} are now refused"),
        ),
        (None, None) => {}
    }
    match (
        old.allowed_sources.is_empty(),
        new.allowed_sources.is_empty(),
    ) {
        (true, false) => d.breaking(
            "/allowed_sources",
            "any source was allowed; now only the listed ones are",
        ),
        (false, true) => d.compatible(
            "/allowed_sources",
            "allowed_sources removed: every source may now send this type",
        ),
        (false, false) => {
            for s in &old.allowed_sources {
                if !new.allowed_sources.contains(s) {
                    d.breaking(
                        "/allowed_sources",
                        format!("source `{s}` is no longer allowed"),
                    );
                }
            }
            for s in &new.allowed_sources {
                if !old.allowed_sources.contains(s) {
                    d.compatible("/allowed_sources", format!("source `{s}` is now allowed"));
                }
            }
        }
        (true, true) => {}
    }
    match (&old.payload_schema, &new.payload_schema) {
        (None, None) => {}
        (Some(_), None) => d.compatible(
            "/payload_schema",
            "schema removed: payloads are no longer validated",
        ),
        (None, Some(s)) if is_any(s) => {}
        (None, Some(_)) => d.breaking(
            "/payload_schema",
            "a schema was added where data was unconstrained",
        ),
        (Some(a), Some(b)) => schema(&mut d, "/payload_schema", a, b),
    }
    if old.projection != new.projection {
        let show = |r: &Option<crate::ProjectionRule>| {
            r.as_ref()
                .map_or("merge at the root (the default)".to_string(), |r| {
                    if r.path.is_empty() {
                        format!("{} at the root", r.fold)
                    } else {
                        format!("{} at {}", r.fold, r.path)
                    }
                })
        };
        d.compatible(
            "/projection",
            format!(
                "projection rule changed from {} to {}: projections of streams with this type are rebuilt under the new rule",
                show(&old.projection),
                show(&new.projection)
            ),
        );
    }
    let docs = old.name != new.name
        || old.description != new.description
        || old.examples != new.examples
        || old.ui != new.ui;
    if docs {
        d.compatible(
            "",
            "documentation changed (name, description, examples or ui)",
        );
    }
    let level = if d.changes.iter().any(|c| c.breaking) {
        Level::Breaking
    } else if d.changes.iter().all(|c| c.path.is_empty()) {
        Level::Identical
    } else {
        Level::Backward
    };
    Compatibility {
        previous_version: old.version,
        level,
        changes: d.changes,
    }
}

/// `true` and `{}` accept everything.
fn is_any(s: &Value) -> bool {
    match s {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

/// Keywords that never change what validates.
const ANNOTATIONS: [&str; 11] = [
    "title",
    "description",
    "examples",
    "default",
    "$comment",
    "deprecated",
    "readOnly",
    "writeOnly",
    "$id",
    "$anchor",
    "x-ui",
];

/// Keywords the diff below reasons about.
const UNDERSTOOD: [&str; 23] = [
    "type",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
    "exclusiveMinimum",
    "minLength",
    "minItems",
    "minProperties",
    "maximum",
    "exclusiveMaximum",
    "maxLength",
    "maxItems",
    "maxProperties",
    "pattern",
    "format",
    "multipleOf",
    "uniqueItems",
    "$schema",
    "nullable",
];

fn as_object(v: &Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m.clone()),
        Value::Bool(true) => Some(Map::new()),
        _ => None,
    }
}

fn types(v: Option<&Value>) -> Option<BTreeSet<String>> {
    match v? {
        Value::String(s) => Some([s.clone()].into()),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

/// Whether every value of type `t` is allowed by the type set `set`.
fn type_covered(t: &str, set: &BTreeSet<String>) -> bool {
    set.contains(t) || (t == "integer" && set.contains("number"))
}

fn schema(d: &mut Diff, path: &str, old: &Value, new: &Value) {
    if old == new {
        return;
    }
    if old == &Value::Bool(false) {
        d.compatible(path, "was `false` (nothing valid); now accepts values");
        return;
    }
    if new == &Value::Bool(false) {
        d.breaking(path, "is now `false`: nothing is valid here");
        return;
    }
    let (Some(o), Some(n)) = (as_object(old), as_object(new)) else {
        d.breaking(
            path,
            "changed in a way the compatibility check cannot follow",
        );
        return;
    };

    // type
    match (types(o.get("type")), types(n.get("type"))) {
        (Some(_), None) => d.compatible(&pointer_push(path, "type"), "type constraint removed"),
        (None, Some(nt)) => d.breaking(
            &pointer_push(path, "type"),
            format!(
                "type now constrained to {}",
                nt.into_iter().collect::<Vec<_>>().join(" or ")
            ),
        ),
        (Some(ot), Some(nt)) if ot != nt => {
            let lost: Vec<&String> = ot.iter().filter(|t| !type_covered(t, &nt)).collect();
            if lost.is_empty() {
                d.compatible(&pointer_push(path, "type"), "type widened");
            } else {
                d.breaking(
                    &pointer_push(path, "type"),
                    format!(
                        "type narrowed: {} no longer accepted",
                        lost.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        _ => {}
    }

    // required
    let names = |m: &Map<String, Value>| -> BTreeSet<String> {
        m.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (or, nr) = (names(&o), names(&n));
    for r in nr.difference(&or) {
        d.breaking(
            &pointer_push(&pointer_push(path, "properties"), r),
            format!("`{r}` became required"),
        );
    }
    for r in or.difference(&nr) {
        d.compatible(
            &pointer_push(&pointer_push(path, "properties"), r),
            format!("`{r}` is no longer required"),
        );
    }

    // properties
    let empty = Map::new();
    let op = o
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let np = n
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let props = pointer_push(path, "properties");
    for (k, ov) in op {
        let at = pointer_push(&props, k);
        match np.get(k) {
            None => d.breaking(&at, format!("property `{k}` removed")),
            Some(nv) => schema(d, &at, ov, nv),
        }
    }
    for (k, nv) in np.iter().filter(|(k, _)| !op.contains_key(*k)) {
        if nr.contains(k) {
            continue; // reported above as newly required
        }
        let at = pointer_push(&props, k);
        // Old events may carry `k` already, as whatever the old
        // `additionalProperties` allowed (absent: anything).
        let before = o.get("additionalProperties").unwrap_or(&Value::Bool(true));
        let mut values = Diff::default();
        schema(&mut values, &at, before, nv);
        if values.changes.iter().any(|c| c.breaking) {
            d.changes.push(Change {
                path: at,
                breaking: true,
                message: format!(
                    "optional property `{k}` added to an open object (no \"additionalProperties\": false): \
                     events that already send `{k}` with another value would now be refused"
                ),
                advice: Some(OPEN_OBJECT_ADVICE.into()),
            });
        } else {
            d.compatible(&at, format!("optional property `{k}` added"));
        }
    }

    // additionalProperties and items: absent means anything.
    for key in ["additionalProperties", "items"] {
        let at = pointer_push(path, key);
        match (o.get(key), n.get(key)) {
            (None, None) => {}
            (Some(a), None) => schema(d, &at, a, &Value::Bool(true)),
            (None, Some(b)) => schema(d, &at, &Value::Bool(true), b),
            (Some(a), Some(b)) => schema(d, &at, a, b),
        }
    }

    // enum and const
    let at = pointer_push(path, "enum");
    match (
        o.get("enum").and_then(Value::as_array),
        n.get("enum").and_then(Value::as_array),
    ) {
        (None, Some(_)) => d.breaking(&at, "values now limited to an enum"),
        (Some(_), None) => d.compatible(&at, "enum removed"),
        (Some(a), Some(b)) => {
            for v in a.iter().filter(|v| !b.contains(v)) {
                d.breaking(&at, format!("value {v} no longer allowed"));
            }
            for v in b.iter().filter(|v| !a.contains(v)) {
                d.compatible(&at, format!("value {v} now allowed"));
            }
        }
        (None, None) => {}
    }
    let at = pointer_push(path, "const");
    match (o.get("const"), n.get("const")) {
        (a, b) if a == b => {}
        (Some(_), None) => d.compatible(&at, "const removed"),
        _ => d.breaking(&at, "const added or changed"),
    }

    // Lower and upper bounds.
    let num = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_f64);
    for key in [
        "minimum",
        "exclusiveMinimum",
        "minLength",
        "minItems",
        "minProperties",
    ] {
        bound(d, path, key, num(&o, key), num(&n, key), |old, new| {
            new > old
        });
    }
    for key in [
        "maximum",
        "exclusiveMaximum",
        "maxLength",
        "maxItems",
        "maxProperties",
    ] {
        bound(d, path, key, num(&o, key), num(&n, key), |old, new| {
            new < old
        });
    }

    // Added or changed constraints that cannot be ordered.
    for key in ["pattern", "format", "multipleOf", "$schema"] {
        let at = pointer_push(path, key);
        match (o.get(key), n.get(key)) {
            (a, b) if a == b => {}
            (Some(_), None) => d.compatible(&at, format!("`{key}` removed")),
            _ => d.breaking(&at, format!("`{key}` added or changed")),
        }
    }
    let unique = |m: &Map<String, Value>| m.get("uniqueItems") == Some(&Value::Bool(true));
    if unique(&n) && !unique(&o) {
        d.breaking(
            &pointer_push(path, "uniqueItems"),
            "items must now be unique",
        );
    } else if unique(&o) && !unique(&n) {
        d.compatible(
            &pointer_push(path, "uniqueItems"),
            "items need no longer be unique",
        );
    }

    // Anything else that changed is beyond this check.
    let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
    for k in keys {
        if UNDERSTOOD.contains(&k.as_str()) || ANNOTATIONS.contains(&k.as_str()) {
            continue;
        }
        if o.get(k) != n.get(k) {
            d.breaking(
                &pointer_push(path, k),
                format!("`{k}` changed; the compatibility check cannot prove this safe, so it counts as breaking"),
            );
        }
    }
}

fn bound(
    d: &mut Diff,
    path: &str,
    key: &str,
    old: Option<f64>,
    new: Option<f64>,
    tighter: fn(f64, f64) -> bool,
) {
    let at = pointer_push(path, key);
    match (old, new) {
        (None, Some(n)) => d.breaking(&at, format!("`{key}` {n} added")),
        (Some(_), None) => d.compatible(&at, format!("`{key}` removed")),
        (Some(o), Some(n)) if tighter(o, n) => {
            d.breaking(&at, format!("`{key}` tightened from {o} to {n}"))
        }
        (Some(o), Some(n)) if o != n => {
            d.compatible(&at, format!("`{key}` loosened from {o} to {n}"))
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::parse_input;
    use herald_core::Timestamp;
    use serde_json::json;

    fn def(v: u32, body: Value) -> EventDefinition {
        parse_input(&body, None)
            .unwrap()
            .into_definition("def_1".into(), v, Timestamp::now())
    }

    fn base() -> Value {
        json!({"event_type": "order.created", "category": "business", "allowed_sources": ["backend"],
            "payload_schema": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0},
                "status": {"enum": ["new", "paid"]}}}})
    }

    fn with(patch: impl FnOnce(&mut Value)) -> EventDefinition {
        let mut b = base();
        patch(&mut b);
        def(2, b)
    }

    fn breaking_paths(c: &Compatibility) -> Vec<&str> {
        c.breaking_changes().map(|c| c.path.as_str()).collect()
    }

    #[test]
    fn additions_are_backward_compatible() {
        let old = def(1, base());
        assert_eq!(compare(&old, &def(2, base())).level, Level::Identical);
        let closed = |b: &mut Value| b["payload_schema"]["additionalProperties"] = json!(false);
        let mut closed_base = base();
        closed(&mut closed_base);
        let old = def(1, closed_base);
        let new = with(|b| {
            closed(b);
            let s = &mut b["payload_schema"];
            s["properties"]["note"] = json!({"type": "string"});
            s["properties"]["amount"]["type"] = json!(["integer", "null"]);
            s["properties"]["amount"]["minimum"] = json!(-10);
            s["properties"]["status"]["enum"] = json!(["new", "paid", "void"]);
            b["allowed_sources"] = json!(["backend", "system"]);
            b["description"] = json!("now documented");
        });
        let c = compare(&old, &new);
        assert_eq!(c.level, Level::Backward, "{c:?}");
        assert!(c.changes.len() >= 5);
    }

    #[test]
    fn a_typed_property_added_to_an_open_object_is_breaking_an_untyped_one_is_not() {
        let old = def(1, base());
        let typed = compare(
            &old,
            &with(|b| b["payload_schema"]["properties"]["note"] = json!({"type": "string"})),
        );
        assert_eq!(typed.level, Level::Breaking, "{typed:?}");
        assert_eq!(breaking_paths(&typed), ["/payload_schema/properties/note"]);
        assert!(typed.changes[0].message.contains("additionalProperties"));
        let advice = typed.advice();
        assert_eq!(advice.len(), 1, "{advice:?}");
        assert!(
            advice[0].contains("allow_breaking=true") && advice[0].contains("without a type"),
            "{advice:?}"
        );
        let untyped = compare(
            &old,
            &with(|b| b["payload_schema"]["properties"]["note"] = json!({"description": "free"})),
        );
        assert_eq!(untyped.level, Level::Backward, "{untyped:?}");
    }

    #[test]
    fn dropping_the_schema_or_the_sources_is_compatible_but_listed() {
        let old = def(1, base());
        let c = compare(
            &old,
            &with(|b| {
                let m = b.as_object_mut().unwrap();
                m.remove("payload_schema");
                m.remove("allowed_sources");
            }),
        );
        assert_eq!(c.level, Level::Backward, "{c:?}");
        let listed: Vec<(&str, &str)> = c
            .changes
            .iter()
            .map(|ch| (ch.path.as_str(), ch.message.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "/allowed_sources",
                    "allowed_sources removed: every source may now send this type"
                ),
                (
                    "/payload_schema",
                    "schema removed: payloads are no longer validated"
                ),
            ]
        );
    }

    #[test]
    fn an_event_category_added_or_changed_is_breaking_and_dropped_is_not() {
        let none = def(1, base());
        let order = with(|b| b["event_category"] = json!("order"));
        let payment = with(|b| b["event_category"] = json!("payment"));
        for (old, new, level) in [
            (&none, &order, Level::Breaking),
            (&order, &payment, Level::Breaking),
            (&order, &none, Level::Backward),
            (&order, &order, Level::Identical),
        ] {
            let c = compare(old, new);
            assert_eq!(c.level, level, "{c:?}");
            assert!(
                c.changes.iter().all(|ch| ch.path == "/event_category"),
                "{c:?}"
            );
        }
    }

    #[test]
    fn narrowing_is_breaking_and_says_where() {
        let old = def(1, base());
        let c = compare(
            &old,
            &with(|b| {
                let s = &mut b["payload_schema"];
                s["required"] = json!(["id", "amount"]);
                s["properties"].as_object_mut().unwrap().remove("status");
                s["properties"]["id"]["type"] = json!("integer");
                s["properties"]["amount"]["maximum"] = json!(100);
                s["additionalProperties"] = json!(false);
                b["category"] = json!("system");
                b["allowed_sources"] = json!(["frontend"]);
            }),
        );
        assert_eq!(c.level, Level::Breaking);
        let paths = breaking_paths(&c);
        for want in [
            "/payload_schema/properties/amount",
            "/payload_schema/properties/status",
            "/payload_schema/properties/id/type",
            "/payload_schema/properties/amount/maximum",
            "/payload_schema/additionalProperties",
            "/category",
            "/allowed_sources",
        ] {
            assert!(paths.contains(&want), "{want} not in {paths:?}");
        }
    }

    #[test]
    fn integer_to_number_widens_and_unknown_keywords_count_as_breaking() {
        let old = def(
            1,
            json!({"event_type": "t", "category": "system", "payload_schema": {"type": "integer"}}),
        );
        let wider = def(
            2,
            json!({"event_type": "t", "category": "system", "payload_schema": {"type": "number"}}),
        );
        assert_eq!(compare(&old, &wider).level, Level::Backward);
        assert_eq!(compare(&wider, &old).level, Level::Breaking);
        let all_of = def(
            2,
            json!({"event_type": "t", "category": "system", "payload_schema": {"type": "integer", "allOf": [{"minimum": 1}]}}),
        );
        assert_eq!(
            breaking_paths(&compare(&old, &all_of)),
            ["/payload_schema/allOf"]
        );
        let none = def(1, json!({"event_type": "t", "category": "system"}));
        assert_eq!(compare(&none, &old).level, Level::Breaking);
        assert_eq!(compare(&old, &none).level, Level::Backward);
    }
}
