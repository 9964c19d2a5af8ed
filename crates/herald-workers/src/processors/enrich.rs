//! The `enrich` processor: `{"fields": {name: CEL expression}}`; each
//! expression's value on the event becomes the result's field of that
//! name (`{"risk": "event.data.amount > 1000 ? 'high' : 'low'"}` gives
//! `{"risk": "high"}`). A field that cannot be evaluated on an event fails
//! the run, naming the field.

use herald_core::error::pointer_push;
use herald_core::{ErrorKind, FieldError};
use herald_filter::{EventView, Expression};
use serde_json::{Map, Value};

use super::{bad, config_object};

/// The most fields one processor may compute.
pub const MAX_FIELDS: usize = 32;

#[derive(Debug, Clone)]
pub struct EnrichConfig {
    pub fields: Vec<(String, Expression)>,
}

impl EnrichConfig {
    pub fn parse(config: &Value, at: &str) -> Result<EnrichConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(object) = config_object(config, at, &["fields"], &mut errors) else {
            return Err(errors);
        };
        let fields_at = pointer_push(at, "fields");
        let mut fields = Vec::new();
        match object.get("fields") {
            Some(Value::Object(map)) if !map.is_empty() && map.len() <= MAX_FIELDS => {
                for (name, source) in map {
                    let field_at = pointer_push(&fields_at, name);
                    if name.is_empty() || name.len() > 64 {
                        errors.push(bad(
                            field_at.clone(),
                            ErrorKind::InvalidValue,
                            "a field name is 1 to 64 bytes",
                        ));
                    }
                    match source {
                        Value::String(src) => match Expression::compile(src) {
                            Ok(x) => fields.push((name.clone(), x)),
                            Err(e) => errors.push(bad(field_at, ErrorKind::InvalidValue, e.to_string())),
                        },
                        _ => errors.push(bad(
                            field_at,
                            ErrorKind::InvalidType,
                            "a field is a CEL expression in a string, as in \"event.data.amount > 1000 ? 'high' : 'low'\"",
                        )),
                    }
                }
            }
            Some(Value::Object(map)) => errors.push(bad(
                fields_at,
                ErrorKind::InvalidValue,
                format!("`fields` names 1 to {MAX_FIELDS} fields, not {}", map.len()),
            )),
            Some(_) => errors.push(bad(
                fields_at,
                ErrorKind::InvalidType,
                "`fields` is an object of name → CEL expression",
            )),
            None => errors.push(bad(
                fields_at,
                ErrorKind::Missing,
                "an enrich processor needs `fields`: {name: CEL expression}",
            )),
        }
        if errors.is_empty() {
            Ok(EnrichConfig { fields })
        } else {
            Err(errors)
        }
    }

    /// Every field's value on the event.
    pub fn run(&self, view: &EventView<'_>) -> Result<Value, String> {
        let mut out = Map::new();
        for (name, x) in &self.fields {
            let value = x
                .evaluate(view)
                .map_err(|e| format!("field `{name}`: {e}"))?;
            out.insert(name.clone(), value);
        }
        Ok(Value::Object(out))
    }
}
