//! An event definition: what one event type (or a pattern of
//! types) is, who may send it and what its `data` must look like, as an
//! immutable version; and the parsing of a definition request body into a
//! [`DefinitionInput`], naming every bad field at once.

use herald_core::error::{pointer_push, type_name};
use herald_core::{
    Category, ErrorKind, EventCategory, EventSource, FieldError, Fold, FoldRule, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::compat::Compatibility;
use crate::pattern::TypePattern;
use crate::schema;

/// Most examples one definition keeps.
pub const MAX_EXAMPLES: usize = 20;
/// Longest name, in bytes.
pub const MAX_NAME_LEN: usize = 200;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4000;

/// One version of one definition, as stored. Versions are immutable: an
/// update is a new version with the same `definition_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDefinition {
    pub definition_id: String,
    pub version: u32,
    /// The exact type or the pattern it applies to; fixed for the life of
    /// the definition.
    pub event_type: TypePattern,
    pub category: Category,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_category: Option<EventCategory>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema (draft 2020-12 by default; 2019-09 and 7 by `$schema`)
    /// for the event's `data`. `None`: any `data`.
    #[serde(default)]
    pub payload_schema: Option<Value>,
    /// Sources that may send it; empty means any.
    #[serde(default)]
    pub allowed_sources: Vec<EventSource>,
    /// Example `data` payloads, each valid against the schema.
    #[serde(default)]
    pub examples: Vec<Value>,
    /// Free JSON for UI builders: display name, icon, colour, group, fields.
    #[serde(default)]
    pub ui: Map<String, Value>,
    /// How events of this type change their stream's projection (`None`:
    /// merged as a JSON merge patch at the state's root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<ProjectionRule>,
    /// How this version relates to the one before it (`None` for version 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility: Option<Compatibility>,
    /// Built into Herald (the built-in vocabulary), not stored per tenant.
    #[serde(default)]
    pub builtin: bool,
    /// When version 1 was registered.
    pub created_at: Timestamp,
    /// When this version was registered.
    pub updated_at: Timestamp,
}

impl EventDefinition {
    /// A new version of `previous` made of `input`, compared against it.
    pub fn next_version(&self, input: DefinitionInput, now: Timestamp) -> EventDefinition {
        let mut next = input.into_definition(self.definition_id.clone(), self.version + 1, now);
        next.created_at = self.created_at;
        next.compatibility = Some(crate::compat::compare(self, &next));
        next
    }
}

/// The fields a client sets, parsed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionInput {
    pub event_type: TypePattern,
    pub category: Category,
    pub event_category: Option<EventCategory>,
    pub name: String,
    pub description: Option<String>,
    pub payload_schema: Option<Value>,
    pub allowed_sources: Vec<EventSource>,
    pub examples: Vec<Value>,
    pub ui: Map<String, Value>,
    pub projection: Option<ProjectionRule>,
}

/// A definition's projection rule as stored and answered:
/// `{"fold": "merge" | "replace" | "delete" | "ignore", "path": "/shipping"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProjectionRule {
    pub fold: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
}

impl ProjectionRule {
    /// The rule as the fold applies it; a stored rule was checked when
    /// saved, so an unreadable one (never expected) folds as the default.
    pub fn fold(&self) -> Fold {
        Fold {
            rule: FoldRule::parse(&self.fold).unwrap_or_default(),
            path: Fold::parse_path(&self.path).unwrap_or_default(),
        }
    }

    /// Parses the body's `projection`, naming each bad member.
    fn parse(v: &Value, e: &mut Vec<FieldError>) -> Option<ProjectionRule> {
        let Value::Object(m) = v else {
            err(
                e,
                "/projection",
                ErrorKind::InvalidType,
                format!(
                    "expected an object like {{\"fold\": \"merge\", \"path\": \"/shipping\"}}, got {}",
                    type_name(v)
                ),
            );
            return None;
        };
        let rules = FoldRule::ALL.map(FoldRule::as_str).join(", ");
        let fold = match m.get("fold") {
            None | Some(Value::Null) => Some(FoldRule::Merge),
            Some(Value::String(s)) => FoldRule::parse(s).or_else(|| {
                err(
                    e,
                    "/projection/fold",
                    ErrorKind::InvalidValue,
                    format!("expected one of: {rules}"),
                );
                None
            }),
            Some(other) => {
                err(
                    e,
                    "/projection/fold",
                    ErrorKind::InvalidType,
                    format!("expected one of: {rules}; got {}", type_name(other)),
                );
                None
            }
        };
        let path = match m.get("path") {
            None | Some(Value::Null) => Some(String::new()),
            Some(Value::String(s)) => match Fold::parse_path(s) {
                Ok(_) => Some(s.clone()),
                Err(why) => {
                    err(e, "/projection/path", ErrorKind::InvalidValue, why);
                    None
                }
            },
            Some(other) => {
                err(
                    e,
                    "/projection/path",
                    ErrorKind::InvalidType,
                    format!(
                        "expected a JSON pointer string like \"/shipping\", got {}",
                        type_name(other)
                    ),
                );
                None
            }
        };
        for key in m.keys().filter(|k| !matches!(k.as_str(), "fold" | "path")) {
            err(
                e,
                &pointer_push("/projection", key),
                ErrorKind::NotAllowed,
                "unknown key; a projection rule has fold and path",
            );
        }
        Some(ProjectionRule {
            fold: fold?.as_str().to_string(),
            path: path?,
        })
    }
}

impl DefinitionInput {
    pub fn into_definition(
        self,
        definition_id: String,
        version: u32,
        now: Timestamp,
    ) -> EventDefinition {
        EventDefinition {
            definition_id,
            version,
            event_type: self.event_type,
            category: self.category,
            event_category: self.event_category,
            name: self.name,
            description: self.description,
            payload_schema: self.payload_schema,
            allowed_sources: self.allowed_sources,
            examples: self.examples,
            ui: self.ui,
            projection: self.projection,
            compatibility: None,
            builtin: false,
            created_at: now,
            updated_at: now,
        }
    }
}

/// Keys a client may send.
const KNOWN: &str = "event_type (alias pattern), category, event_category, name, description, \
payload_schema (alias schema), allowed_sources, examples, ui, projection";

/// Keys of a definition as Herald answers it: accepted and ignored, so a
/// fetched definition can be edited and sent back. The server's view adds
/// keys of its own; its tests check they are all listed here.
pub const READ_ONLY: [&str; 11] = [
    "id",
    "definition_id",
    "version",
    "versions",
    "latest_version",
    "is_pattern",
    "builtin",
    "compatibility",
    "created_at",
    "updated_at",
    "tenant_id",
];

fn err(errors: &mut Vec<FieldError>, field: &str, kind: ErrorKind, message: impl Into<String>) {
    errors.push(FieldError {
        field: field.to_string(),
        message: message.into(),
        kind,
    });
}

/// Parses a definition body: every bad field at once, the schema compiled
/// and every example validated against it. `fixed_type` is the type of the
/// definition being updated (which a body may repeat but not change).
pub fn parse_input(
    body: &Value,
    fixed_type: Option<&TypePattern>,
) -> Result<DefinitionInput, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Value::Object(m) = body else {
        err(
            &mut errors,
            "",
            ErrorKind::InvalidType,
            format!("a definition is a JSON object, got {}", type_name(body)),
        );
        return Err(errors);
    };
    let e = &mut errors;

    let string = |e: &mut Vec<FieldError>, key: &str, max: usize| -> Option<String> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.len() > max => {
                err(
                    e,
                    &pointer_push("", key),
                    ErrorKind::TooLarge,
                    format!("at most {max} bytes"),
                );
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                err(
                    e,
                    &pointer_push("", key),
                    ErrorKind::InvalidType,
                    format!("expected a string, got {}", type_name(other)),
                );
                None
            }
        }
    };

    // The type: `event_type` or its alias `pattern`.
    let type_key = if m.contains_key("event_type") || !m.contains_key("pattern") {
        "event_type"
    } else {
        "pattern"
    };
    let event_type = match (string(e, type_key, 1024), fixed_type) {
        (None, Some(fixed)) => Some(fixed.clone()),
        (None, None) => {
            if !e.iter().any(|x| x.field == format!("/{type_key}")) {
                err(
                    e,
                    "/event_type",
                    ErrorKind::Missing,
                    "required: the exact type (`order.created`) or a pattern (`order.*`, `order.>`) this definition applies to",
                );
            }
            None
        }
        (Some(s), fixed) => match TypePattern::parse(&s) {
            Ok(p) if fixed.is_some_and(|f| *f != p) => {
                err(
                    e,
                    &format!("/{type_key}"),
                    ErrorKind::InvalidValue,
                    format!(
                        "a definition's event_type is fixed (`{}`); register a new definition for `{}`",
                        fixed.map(|f| f.as_str()).unwrap_or_default(),
                        s.chars().take(64).collect::<String>()
                    ),
                );
                None
            }
            Ok(p) => Some(p),
            Err(why) => {
                err(e, &format!("/{type_key}"), ErrorKind::InvalidValue, why);
                None
            }
        },
    };

    let enum_field = |e: &mut Vec<FieldError>, key: &str| -> Option<String> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                err(
                    e,
                    &format!("/{key}"),
                    ErrorKind::InvalidType,
                    format!("expected a string, got {}", type_name(other)),
                );
                None
            }
        }
    };
    let event_category = enum_field(e, "event_category").and_then(|s| {
        let parsed = EventCategory::parse(&s);
        if parsed.is_none() {
            err(
                e,
                "/event_category",
                ErrorKind::InvalidValue,
                format!("expected one of: {}", EventCategory::allowed()),
            );
        }
        parsed
    });
    let category_given = enum_field(e, "category").and_then(|s| {
        let parsed = Category::parse(&s);
        if parsed.is_none() {
            err(
                e,
                "/category",
                ErrorKind::InvalidValue,
                format!("expected one of: {}", Category::allowed()),
            );
        }
        parsed
    });
    let category = match (category_given, event_category) {
        (Some(c), Some(ec)) if ec.category() != c => {
            err(
                e,
                "/event_category",
                ErrorKind::InvalidValue,
                format!(
                    "event_category {ec} belongs to category {}, not {c}",
                    ec.category()
                ),
            );
            None
        }
        (Some(c), _) => Some(c),
        (None, Some(ec)) => Some(ec.category()),
        (None, None) => {
            if !e
                .iter()
                .any(|x| x.field == "/category" || x.field == "/event_category")
            {
                err(
                    e,
                    "/category",
                    ErrorKind::Missing,
                    format!(
                        "required: one of {} (or give event_category, and category is derived from it)",
                        Category::allowed()
                    ),
                );
            }
            None
        }
    };

    let name = string(e, "name", MAX_NAME_LEN).map(|s| s.trim().to_string());
    if name.as_deref() == Some("") {
        err(e, "/name", ErrorKind::InvalidValue, "must not be blank");
    }
    let description = string(e, "description", MAX_DESCRIPTION_LEN);

    let mut allowed_sources = Vec::new();
    match m.get("allowed_sources") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(EventSource::parse) {
                    Some(s) if !allowed_sources.contains(&s) => allowed_sources.push(s),
                    Some(_) => {}
                    None => err(
                        e,
                        &format!("/allowed_sources/{i}"),
                        ErrorKind::InvalidValue,
                        format!("expected one of: {}", EventSource::allowed()),
                    ),
                }
            }
        }
        Some(other) => err(
            e,
            "/allowed_sources",
            ErrorKind::InvalidType,
            format!(
                "expected an array of sources ({}), got {}",
                EventSource::allowed(),
                type_name(other)
            ),
        ),
    }

    let (schema_key, schema_value) = match (m.get("payload_schema"), m.get("schema")) {
        (Some(v), _) => ("/payload_schema", v),
        (None, Some(v)) => ("/schema", v),
        (None, None) => ("/payload_schema", &Value::Null),
    };
    let mut payload_schema = None;
    let mut validator = None;
    match schema_value {
        Value::Null => {}
        v @ (Value::Object(_) | Value::Bool(_)) => match schema::compile(v) {
            Ok(compiled) => {
                payload_schema = Some(v.clone());
                validator = Some(compiled);
            }
            Err(problems) => {
                for p in problems {
                    err(
                        e,
                        &format!("{schema_key}{}", p.pointer),
                        ErrorKind::InvalidValue,
                        format!("invalid JSON Schema: {}", p.message),
                    );
                }
            }
        },
        other => err(
            e,
            schema_key,
            ErrorKind::InvalidType,
            format!(
                "a JSON Schema is an object (or a boolean), got {}",
                type_name(other)
            ),
        ),
    }

    let mut examples = Vec::new();
    match m.get("examples") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() > MAX_EXAMPLES => err(
            e,
            "/examples",
            ErrorKind::TooLarge,
            format!("at most {MAX_EXAMPLES} examples"),
        ),
        Some(Value::Array(items)) => {
            for (i, example) in items.iter().enumerate() {
                if let Some(v) = &validator {
                    for mut problem in schema::validate(v, example, &format!("/examples/{i}")) {
                        problem.message = format!(
                            "example {i} does not match the payload schema: {}",
                            problem.message
                        );
                        e.push(problem);
                    }
                }
            }
            examples = items.clone();
        }
        Some(other) => err(
            e,
            "/examples",
            ErrorKind::InvalidType,
            format!(
                "expected an array of example `data` payloads, got {}",
                type_name(other)
            ),
        ),
    }

    let ui = match m.get("ui") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(o)) => o.clone(),
        Some(other) => {
            err(
                e,
                "/ui",
                ErrorKind::InvalidType,
                format!(
                    "expected an object (display_name, icon, color, group, fields ...), got {}",
                    type_name(other)
                ),
            );
            Map::new()
        }
    };

    let projection = match m.get("projection") {
        None | Some(Value::Null) => None,
        Some(v) => ProjectionRule::parse(v, e),
    };

    for key in m.keys() {
        let known = matches!(
            key.as_str(),
            "event_type"
                | "pattern"
                | "category"
                | "event_category"
                | "name"
                | "description"
                | "payload_schema"
                | "schema"
                | "allowed_sources"
                | "examples"
                | "ui"
                | "projection"
        ) || READ_ONLY.contains(&key.as_str());
        if !known {
            err(
                e,
                &pointer_push("", key),
                ErrorKind::InvalidValue,
                format!("unknown field; a definition has: {KNOWN}"),
            );
        }
    }

    match (event_type, category) {
        (Some(event_type), Some(category)) if errors.is_empty() => Ok(DefinitionInput {
            name: name.unwrap_or_else(|| event_type.as_str().to_string()),
            event_type,
            category,
            event_category,
            description,
            payload_schema,
            allowed_sources,
            examples,
            ui,
            projection,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(r: Result<DefinitionInput, Vec<FieldError>>) -> Vec<String> {
        r.expect_err("should be refused")
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn a_full_definition_parses() {
        let d = parse_input(
            &json!({
                "event_type": "order.*", "event_category": "order", "name": " Orders ",
                "payload_schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}},
                "allowed_sources": ["backend", "backend", "scheduled"], "examples": [{"id": "o-1"}],
                "ui": {"icon": "cart"}, "version": 7
            }),
            None,
        )
        .unwrap();
        assert!(d.event_type.is_pattern());
        assert_eq!(
            d.category,
            Category::Business,
            "derived from event_category"
        );
        assert_eq!(d.name, "Orders");
        assert_eq!(
            d.allowed_sources,
            [EventSource::Backend, EventSource::Scheduled]
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let f = fields(parse_input(
            &json!({
                "event_type": "order*", "category": "finance", "allowed_sources": ["fax"],
                "payload_schema": {"type": "objekt"}, "examples": 3, "ui": [], "colour": "red"
            }),
            None,
        ));
        for want in [
            "/event_type",
            "/category",
            "/allowed_sources/0",
            "/payload_schema/type",
            "/examples",
            "/ui",
            "/colour",
        ] {
            assert!(f.iter().any(|x| x == want), "{want} missing from {f:?}");
        }
        assert_eq!(
            fields(parse_input(&json!({}), None)),
            ["/event_type", "/category"]
        );
    }

    #[test]
    fn examples_must_match_the_schema_and_say_where_they_fail() {
        let errors = parse_input(
            &json!({
                "event_type": "t", "category": "business",
                "payload_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
                "examples": [{"n": 1}, {"n": "one"}]
            }),
            None,
        )
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "/examples/1/n");
        assert!(
            errors[0].message.contains("example 1"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn an_update_may_repeat_but_not_change_the_type() {
        let fixed = TypePattern::parse("order.created").unwrap();
        let ok = parse_input(&json!({"category": "business"}), Some(&fixed)).unwrap();
        assert_eq!(ok.event_type, fixed);
        assert_eq!(
            fields(parse_input(
                &json!({"event_type": "order.paid", "category": "business"}),
                Some(&fixed)
            )),
            ["/event_type"]
        );
    }
}
