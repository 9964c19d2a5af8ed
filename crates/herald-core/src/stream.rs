//! Streams: optimistic concurrency on append ([`ExpectedVersion`]) and the
//! fold that turns a stream's events into an entity's state ([`Fold`]).
//!
//! A stream is `{entity_type}:{entity_id}`; each stored event of it gets
//! the next version, from 1. The *state* of the entity is the left fold of
//! its events' `data` in version order, starting from `null` (no entity),
//! each event applied by its type's [`Fold`] rule.

use std::fmt;

use serde_json::{Map, Value};

/// What an append requires of its stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExpectedVersion {
    /// No check (the default).
    #[default]
    Any,
    /// The stream has no events yet.
    NoStream,
    /// The stream has at least one event.
    StreamExists,
    /// The stream is at exactly this version (0 = no events yet).
    Exact(u64),
}

impl ExpectedVersion {
    /// The wire names of the non-numeric forms.
    pub const NAMES: &'static str = "\"any\", \"no_stream\", \"stream_exists\"";

    /// Whether a stream at version `current` (0 = empty) meets it.
    pub fn admits(self, current: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => current == 0,
            ExpectedVersion::StreamExists => current > 0,
            ExpectedVersion::Exact(v) => current == v,
        }
    }

    /// Parses the wire form: a non-negative integer or one of
    /// [`Self::NAMES`]. `null` is `Any`.
    pub fn parse(v: &Value) -> Result<Self, String> {
        let refuse = |got: String| {
            Err(format!(
                "expected a non-negative integer or one of {}, got {got}",
                Self::NAMES
            ))
        };
        match v {
            Value::Null => Ok(ExpectedVersion::Any),
            Value::Number(n) => match n.as_u64() {
                Some(v) => Ok(ExpectedVersion::Exact(v)),
                None if n.is_i64() => refuse(format!("negative integer {n}")),
                None => refuse(format!("non-integer number {n}")),
            },
            Value::String(s) => match s.as_str() {
                "any" => Ok(ExpectedVersion::Any),
                "no_stream" => Ok(ExpectedVersion::NoStream),
                "stream_exists" => Ok(ExpectedVersion::StreamExists),
                _ => refuse(format!("\"{}\"", crate::model::truncate(s, 40))),
            },
            other => refuse(crate::error::type_name(other).to_string()),
        }
    }

    /// The wire form: a number for `Exact`, else its name.
    pub fn to_json(self) -> Value {
        match self {
            ExpectedVersion::Exact(v) => Value::from(v),
            other => Value::from(other.to_string()),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::StreamExists => f.write_str("stream_exists"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// How an event's `data` changes its entity's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FoldRule {
    /// JSON merge patch (RFC 7386): objects merge key by key, `null`
    /// removes a key, anything else replaces.
    #[default]
    Merge,
    /// The state (or the value at the path) becomes `data`.
    Replace,
    /// The entity is gone: state `null` (with a path: that key removed).
    /// A later event starts it again.
    Delete,
    /// The event does not change the state.
    Ignore,
}

impl FoldRule {
    pub const ALL: [FoldRule; 4] = [
        FoldRule::Merge,
        FoldRule::Replace,
        FoldRule::Delete,
        FoldRule::Ignore,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FoldRule::Merge => "merge",
            FoldRule::Replace => "replace",
            FoldRule::Delete => "delete",
            FoldRule::Ignore => "ignore",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// One event type's fold: the rule and, optionally, the path of the state
/// its data lands under (a JSON pointer of object keys, like `/shipping`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Fold {
    pub rule: FoldRule,
    /// Object keys from the state's root; empty = the whole state.
    pub path: Vec<String>,
}

impl Fold {
    /// Parses a path: `""` or `/`-separated object keys with `~0`/`~1`
    /// escapes (RFC 6901), at most 16 levels, no empty key.
    pub fn parse_path(p: &str) -> Result<Vec<String>, String> {
        if p.is_empty() {
            return Ok(Vec::new());
        }
        let Some(rest) = p.strip_prefix('/') else {
            return Err(format!(
                "a path is a JSON pointer like `/shipping`; got `{}`",
                crate::model::truncate(p, 40)
            ));
        };
        let keys: Vec<String> = rest
            .split('/')
            .map(|k| k.replace("~1", "/").replace("~0", "~"))
            .collect();
        if keys.iter().any(String::is_empty) {
            return Err("a path's keys must be non-empty".into());
        }
        if keys.len() > 16 {
            return Err("a path has at most 16 keys".into());
        }
        Ok(keys)
    }

    /// The path as a JSON pointer (`""` for the whole state).
    pub fn pointer(&self) -> String {
        self.path
            .iter()
            .map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1")))
            .collect()
    }

    /// Applies one event's `data` to `state` (`null` = no entity).
    pub fn apply(&self, state: &mut Value, data: &Value) {
        if self.rule == FoldRule::Ignore {
            return;
        }
        if self.path.is_empty() {
            match self.rule {
                FoldRule::Merge => merge_patch(state, data),
                FoldRule::Replace => *state = data.clone(),
                FoldRule::Delete => *state = Value::Null,
                FoldRule::Ignore => {}
            }
            return;
        }
        if self.rule == FoldRule::Delete {
            remove_at(state, &self.path);
            return;
        }
        let slot = slot_at(state, &self.path);
        match self.rule {
            FoldRule::Merge => merge_patch(slot, data),
            _ => *slot = data.clone(),
        }
    }
}

/// RFC 7386 JSON merge patch of `target` by `patch`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else {
        unreachable!("made an object above")
    };
    for (k, v) in patch {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

/// The value at `path`, creating objects on the way (a non-object on the
/// way becomes an object, as a merge patch would make it).
fn slot_at<'v>(state: &'v mut Value, path: &[String]) -> &'v mut Value {
    let mut at = state;
    for key in path {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        let Value::Object(m) = at else {
            unreachable!("made an object above")
        };
        at = m.entry(key.clone()).or_insert(Value::Null);
    }
    at
}

fn remove_at(state: &mut Value, path: &[String]) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    let mut at = state;
    for key in parents {
        match at {
            Value::Object(m) => match m.get_mut(key) {
                Some(next) => at = next,
                None => return,
            },
            _ => return,
        }
    }
    if let Value::Object(m) = at {
        m.remove(last);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_follows_the_rfc_7386_examples() {
        // The table of RFC 7386 appendix A.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "patch {patch}");
        }
    }

    #[test]
    fn each_rule_changes_the_state_as_it_says_with_and_without_a_path() {
        let fold = |rule, path: &str| Fold {
            rule,
            path: Fold::parse_path(path).unwrap(),
        };
        let mut s = Value::Null;
        fold(FoldRule::Merge, "").apply(&mut s, &json!({"status":"new","total":5}));
        assert_eq!(s, json!({"status":"new","total":5}));
        fold(FoldRule::Merge, "/shipping").apply(&mut s, &json!({"city":"Oslo"}));
        assert_eq!(
            s,
            json!({"status":"new","total":5,"shipping":{"city":"Oslo"}})
        );
        fold(FoldRule::Replace, "/shipping").apply(&mut s, &json!({"zip":"0150"}));
        assert_eq!(s["shipping"], json!({"zip":"0150"}));
        fold(FoldRule::Ignore, "").apply(&mut s, &json!({"status":"ignored"}));
        assert_eq!(s["status"], json!("new"));
        fold(FoldRule::Delete, "/shipping").apply(&mut s, &json!({}));
        assert_eq!(s, json!({"status":"new","total":5}));
        fold(FoldRule::Delete, "").apply(&mut s, &json!({}));
        assert_eq!(s, Value::Null);
        fold(FoldRule::Replace, "").apply(&mut s, &json!({"status":"again"}));
        assert_eq!(s, json!({"status":"again"}));
    }

    #[test]
    fn expected_version_forms_parse_and_admit_what_they_say() {
        let p = |v: Value| ExpectedVersion::parse(&v);
        assert_eq!(p(json!("any")), Ok(ExpectedVersion::Any));
        assert_eq!(p(json!(null)), Ok(ExpectedVersion::Any));
        assert_eq!(p(json!("no_stream")), Ok(ExpectedVersion::NoStream));
        assert_eq!(p(json!("stream_exists")), Ok(ExpectedVersion::StreamExists));
        assert_eq!(p(json!(7)), Ok(ExpectedVersion::Exact(7)));
        for bad in [
            json!(-1),
            json!(1.5),
            json!("latest"),
            json!(true),
            json!([1]),
        ] {
            let e = p(bad.clone()).unwrap_err();
            assert!(e.contains("no_stream"), "{bad}: {e}");
        }
        assert!(ExpectedVersion::NoStream.admits(0) && !ExpectedVersion::NoStream.admits(1));
        assert!(
            !ExpectedVersion::StreamExists.admits(0) && ExpectedVersion::StreamExists.admits(3)
        );
        assert!(ExpectedVersion::Exact(3).admits(3) && !ExpectedVersion::Exact(3).admits(4));
        assert!(ExpectedVersion::Any.admits(0) && ExpectedVersion::Any.admits(9));
        assert_eq!(ExpectedVersion::NoStream.to_json(), json!("no_stream"));
        assert_eq!(ExpectedVersion::Exact(2).to_json(), json!(2));
    }

    #[test]
    fn paths_parse_as_json_pointers_of_object_keys() {
        assert_eq!(Fold::parse_path("").unwrap(), Vec::<String>::new());
        assert_eq!(Fold::parse_path("/a~1b/c~0d").unwrap(), vec!["a/b", "c~d"]);
        assert!(Fold::parse_path("shipping").is_err());
        assert!(Fold::parse_path("/a//b").is_err());
        let f = Fold {
            rule: FoldRule::Merge,
            path: vec!["a/b".into(), "c".into()],
        };
        assert_eq!(f.pointer(), "/a~1b/c");
    }
}
