//! Validation findings (`ValidationResult`): every error at once, each naming
//! its field as a JSON pointer (RFC 6901) with a message a person can act on,
//! plus warnings that never block an event.

use serde::{Deserialize, Serialize};

/// What kind of problem a field has; the server maps `TooLarge` to 413 and
/// the rest to 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The body is not JSON at all.
    Syntax,
    /// A required field is absent.
    Missing,
    /// Present with the wrong JSON type.
    InvalidType,
    /// Right type, value not allowed (enum, format, length).
    InvalidValue,
    /// Allowed in general but not here (an event type for another category,
    /// an unknown type in strict mode).
    NotAllowed,
    /// Over a size limit.
    TooLarge,
}

/// One bad field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON pointer into the request body (`""` for the whole body).
    pub field: String,
    pub message: String,
    pub kind: ErrorKind,
}

/// Something worth telling the sender that did not stop the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldWarning {
    pub field: String,
    pub message: String,
}

/// Whether an event is valid, with every error and warning it has.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationResult {
    pub is_valid: bool,
    pub errors: Vec<FieldError>,
    pub warnings: Vec<FieldWarning>,
}

impl ValidationResult {
    pub fn from_parts(errors: Vec<FieldError>, warnings: Vec<FieldWarning>) -> Self {
        ValidationResult {
            is_valid: errors.is_empty(),
            errors,
            warnings,
        }
    }

    /// True when any error is a size-limit violation (HTTP 413).
    pub fn is_too_large(&self) -> bool {
        self.errors.iter().any(|e| e.kind == ErrorKind::TooLarge)
    }
}

/// Collects findings while walking one event.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<FieldWarning>,
}

impl Findings {
    pub fn error(&mut self, field: impl Into<String>, kind: ErrorKind, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
            kind,
        });
    }

    pub fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(FieldWarning {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// Appends one reference token to a JSON pointer, escaping `~` and `/`.
pub fn pointer_push(base: &str, token: &str) -> String {
    let mut out = String::with_capacity(base.len() + token.len() + 1);
    out.push_str(base);
    out.push('/');
    for c in token.chars() {
        match c {
            '~' => out.push_str("~0"),
            '/' => out.push_str("~1"),
            c => out.push(c),
        }
    }
    out
}

/// The JSON type name of a value, for "expected X, got Y" messages.
pub fn type_name(v: &serde_json::Value) -> &'static str {
    use serde_json::Value::*;
    match v {
        Null => "null",
        Bool(_) => "boolean",
        Number(n) if n.is_i64() || n.is_u64() => "integer",
        Number(_) => "number",
        String(_) => "string",
        Array(_) => "array",
        Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_escapes_rfc6901() {
        assert_eq!(pointer_push("/data", "a/b~c"), "/data/a~1b~0c");
        assert_eq!(pointer_push("", "x"), "/x");
    }
}
