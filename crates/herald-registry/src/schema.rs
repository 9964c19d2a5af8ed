//! JSON Schema for `data`: compiling a definition's schema once (checked
//! against its meta-schema, every problem named by a pointer into the
//! schema) and validating instances with it, every error named by a JSON
//! pointer into the event (`/data/...`). Draft 2020-12 unless `$schema`
//! says 2019-09 or 7; no remote `$ref` (the crate is built without
//! retrievers), and `format` is asserted, not just annotated.

use herald_core::error::{pointer_push, type_name};
use herald_core::{ErrorKind, FieldError};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

/// Most errors reported for one instance; the last one says how many more.
pub const MAX_ERRORS: usize = 100;

/// The `$schema` values accepted (with or without a trailing `#`, http or
/// https).
pub const ACCEPTED_DRAFTS: [&str; 3] = [
    "https://json-schema.org/draft/2020-12/schema",
    "https://json-schema.org/draft/2019-09/schema",
    "http://json-schema.org/draft-07/schema",
];

/// One problem with a schema: where in the schema, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProblem {
    /// JSON pointer into the schema document.
    pub pointer: String,
    pub message: String,
}

fn cut(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn draft_is_accepted(uri: &str) -> bool {
    let bare = uri
        .trim_end_matches('#')
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    ACCEPTED_DRAFTS.iter().any(|d| {
        d.trim_start_matches("https://")
            .trim_start_matches("http://")
            == bare
    })
}

/// Compiles `schema` into a validator, or names every problem with it.
pub fn compile(schema: &Value) -> Result<Validator, Vec<SchemaProblem>> {
    if let Some(uri) = schema.get("$schema") {
        match uri.as_str() {
            Some(u) if draft_is_accepted(u) => {}
            _ => {
                return Err(vec![SchemaProblem {
                    pointer: "/$schema".into(),
                    message: format!(
                        "unsupported `$schema` {}; use one of: {} (or leave it out for 2020-12)",
                        cut(uri.to_string(), 100),
                        ACCEPTED_DRAFTS.join(", ")
                    ),
                }]);
            }
        }
    }
    // The meta-schema first, for every problem at once; building reports
    // only the first.
    if let Ok(meta) = jsonschema::meta::validator_for(schema) {
        let problems: Vec<SchemaProblem> = meta
            .iter_errors(schema)
            .take(MAX_ERRORS)
            .map(|e| SchemaProblem {
                pointer: e.instance_path().as_str().to_string(),
                message: cut(e.to_string(), 300),
            })
            .collect();
        if !problems.is_empty() {
            return Err(problems);
        }
    }
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| {
            vec![SchemaProblem {
                pointer: e.instance_path().as_str().to_string(),
                message: cut(e.to_string(), 300),
            }]
        })
}

/// Validates `instance`; every error's field is `prefix` + its instance
/// path. Empty when valid.
pub fn validate(validator: &Validator, instance: &Value, prefix: &str) -> Vec<FieldError> {
    if validator.is_valid(instance) {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut more = 0usize;
    for error in validator.iter_errors(instance) {
        if out.len() >= MAX_ERRORS {
            more += 1;
            continue;
        }
        push_error(&mut out, &error, prefix);
    }
    if more > 0 {
        out.truncate(MAX_ERRORS);
        out.push(FieldError {
            field: prefix.to_string(),
            message: format!("and {more} more errors not listed"),
            kind: ErrorKind::InvalidValue,
        });
    }
    out
}

fn json_types(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => t.to_string(),
        TypeKind::Multiple(set) => set
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn push_error(out: &mut Vec<FieldError>, e: &ValidationError<'_>, prefix: &str) {
    let at = format!("{prefix}{}", e.instance_path().as_str());
    let mut add = |field: String, kind: ErrorKind, message: String| {
        out.push(FieldError {
            field,
            message,
            kind,
        })
    };
    use ValidationErrorKind as K;
    let value = |v: &Value| cut(v.to_string(), 80);
    match e.kind() {
        K::Type { kind } => add(
            at,
            ErrorKind::InvalidType,
            format!(
                "expected {}, got {}",
                json_types(kind),
                type_name(e.instance())
            ),
        ),
        K::Required { property } => add(
            pointer_push(&at, property.as_str().unwrap_or_default()),
            ErrorKind::Missing,
            "required by the payload schema".into(),
        ),
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            for p in unexpected {
                add(
                    pointer_push(&at, p),
                    ErrorKind::InvalidValue,
                    "not a property the payload schema allows".into(),
                );
            }
        }
        K::Enum { options } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must be one of: {}", value(options)),
        ),
        K::Constant { expected_value } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must be {}", value(expected_value)),
        ),
        K::Minimum { limit } => add(at, ErrorKind::InvalidValue, format!("must be ≥ {limit}")),
        K::Maximum { limit } => add(at, ErrorKind::InvalidValue, format!("must be ≤ {limit}")),
        K::ExclusiveMinimum { limit } => {
            add(at, ErrorKind::InvalidValue, format!("must be > {limit}"))
        }
        K::ExclusiveMaximum { limit } => {
            add(at, ErrorKind::InvalidValue, format!("must be < {limit}"))
        }
        K::MinLength { limit } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must have at least {limit} characters"),
        ),
        K::MaxLength { limit } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must have at most {limit} characters"),
        ),
        K::MinItems { limit } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must have at least {limit} items"),
        ),
        K::MaxItems { limit } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must have at most {limit} items"),
        ),
        K::MinProperties { limit } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must have at least {limit} properties"),
        ),
        K::MaxProperties { limit } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must have at most {limit} properties"),
        ),
        K::Pattern { pattern } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must match the pattern `{}`", cut(pattern.clone(), 120)),
        ),
        K::Format { format } => add(
            at,
            ErrorKind::InvalidValue,
            format!("is not a valid `{format}`"),
        ),
        K::MultipleOf { multiple_of } => add(
            at,
            ErrorKind::InvalidValue,
            format!("must be a multiple of {multiple_of}"),
        ),
        K::UniqueItems => add(at, ErrorKind::InvalidValue, "items must be unique".into()),
        K::AnyOf { .. } => add(
            at,
            ErrorKind::InvalidValue,
            "matches none of the `anyOf` alternatives".into(),
        ),
        K::OneOfNotValid { .. } => add(
            at,
            ErrorKind::InvalidValue,
            "matches none of the `oneOf` alternatives".into(),
        ),
        K::OneOfMultipleValid { .. } => add(
            at,
            ErrorKind::InvalidValue,
            "matches more than one of the `oneOf` alternatives".into(),
        ),
        K::Not { .. } => add(
            at,
            ErrorKind::InvalidValue,
            "must not match the schema under `not`".into(),
        ),
        K::FalseSchema => add(
            at,
            ErrorKind::InvalidValue,
            "not allowed here by the payload schema".into(),
        ),
        K::Contains => add(
            at,
            ErrorKind::InvalidValue,
            "no item matches the schema under `contains`".into(),
        ),
        _ => add(at, ErrorKind::InvalidValue, cut(e.to_string(), 200)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(schema: Value, instance: Value) -> Vec<(String, ErrorKind)> {
        let v = compile(&schema).unwrap();
        validate(&v, &instance, "/data")
            .into_iter()
            .map(|e| (e.field, e.kind))
            .collect()
    }

    #[test]
    fn every_error_is_a_pointer_under_data() {
        let schema = json!({
            "type": "object", "required": ["id", "amount"], "additionalProperties": false,
            "properties": {
                "id": {"type": "string"}, "amount": {"type": "integer", "minimum": 0},
                "items": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string", "maxLength": 3}}}},
                "a/b": {"type": "boolean"}
            }
        });
        let mut got = fields(
            schema,
            json!({"amount": -1, "items": [{"sku": "ok"}, {"sku": "toolong"}], "a/b": 1, "extra": true}),
        );
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                ("/data/amount".into(), ErrorKind::InvalidValue),
                ("/data/a~1b".into(), ErrorKind::InvalidType),
                ("/data/extra".into(), ErrorKind::InvalidValue),
                ("/data/id".into(), ErrorKind::Missing),
                ("/data/items/1/sku".into(), ErrorKind::InvalidValue),
            ]
        );
    }

    #[test]
    fn draft_7_is_accepted_and_older_or_unknown_drafts_are_not() {
        let d7 = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
            "properties": {"n": {"type": "integer"}}, "dependencies": {"n": ["m"]}});
        assert_eq!(
            fields(d7, json!({"n": 1})),
            vec![("/data/m".into(), ErrorKind::Missing)]
        );
        let bad =
            compile(&json!({"$schema": "http://json-schema.org/draft-04/schema#"})).unwrap_err();
        assert_eq!(bad[0].pointer, "/$schema");
    }

    #[test]
    fn schema_problems_are_all_named_and_remote_refs_refused() {
        let problems =
            compile(&json!({"type": "objekt", "properties": {"n": {"minimum": "zero"}}}))
                .unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert!(pointers.contains(&"/type"), "{problems:?}");
        assert!(pointers.contains(&"/properties/n/minimum"), "{problems:?}");
        assert!(compile(&json!({"$ref": "https://example.com/schema.json"})).is_err());
        assert!(compile(&json!({"type": "string", "pattern": "(unclosed"})).is_err());
    }

    #[test]
    fn formats_are_asserted() {
        assert_eq!(
            fields(json!({"type": "string", "format": "email"}), json!("nope")),
            vec![("/data".into(), ErrorKind::InvalidValue)]
        );
        assert!(
            fields(
                json!({"type": "string", "format": "email"}),
                json!("a@b.example")
            )
            .is_empty()
        );
    }

    #[test]
    fn errors_are_capped() {
        let items: Vec<Value> = (0..150).map(|_| json!("x")).collect();
        let got = fields(
            json!({"type": "array", "items": {"type": "integer"}}),
            Value::Array(items),
        );
        assert_eq!(got.len(), MAX_ERRORS + 1);
    }
}
