//! Query-string parameters. Each route declares the parameters it takes as
//! a `&[Param]`; the handler reads them through [`parse`], which lets no
//! other through, and the OpenAPI document lists the same slice, so a
//! parameter cannot be read without being documented. A bad parameter is
//! named as `/{name}`, like a body field, and all of them at once.

use axum::extract::Query;
use axum::http::Uri;
use herald_core::{ErrorKind, FieldError};

use crate::http::problem::ApiError;

/// One documented query parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    pub description: &'static str,
}

/// The JSON Schema type a parameter's value has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    String,
    Integer,
    Boolean,
}

impl ParamKind {
    /// The JSON Schema `type` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ParamKind::String => "string",
            ParamKind::Integer => "integer",
            ParamKind::Boolean => "boolean",
        }
    }
}

/// A request's query parameters, each known and given once, in request order.
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|(n, _)| n == name)?;
        Some(self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// The request's known query parameters, and an error for every unknown or
/// repeated one; the handler adds its own errors for bad values and then
/// answers them all at once with [`check`].
pub fn parse(uri: &Uri, known: &[Param]) -> (Params, Vec<FieldError>) {
    let mut errors = Vec::new();
    let mut out = Params::default();
    let pairs = match Query::<Vec<(String, String)>>::try_from_uri(uri) {
        Ok(Query(pairs)) => pairs,
        Err(e) => {
            errors.push(FieldError {
                field: String::new(),
                message: format!("the query string does not decode: {}", e.body_text()),
                kind: ErrorKind::Syntax,
            });
            Vec::new()
        }
    };
    for (name, value) in pairs {
        let field = herald_core::error::pointer_push("", &name);
        if !known.iter().any(|p| p.name == name) {
            let names: Vec<&str> = known.iter().map(|p| p.name).collect();
            errors.push(FieldError {
                field,
                message: if names.is_empty() {
                    "unknown parameter; this route takes none".into()
                } else {
                    format!("unknown parameter; known: {}", names.join(", "))
                },
                kind: ErrorKind::InvalidValue,
            });
        } else if out.get(&name).is_some() {
            if !errors.iter().any(|e| e.field == field) {
                errors.push(FieldError {
                    field,
                    message: "given more than once; give it once".into(),
                    kind: ErrorKind::InvalidValue,
                });
            }
        } else {
            out.0.push((name, value));
        }
    }
    (out, errors)
}

/// `Ok` when there is nothing to name; else the 400 naming every bad
/// parameter.
pub fn check(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        return Ok(());
    }
    let n = errors.len();
    Err(ApiError::invalid(
        format!("{n} bad query parameter{}", if n == 1 { "" } else { "s" }),
        errors,
    ))
}

/// A `/{name}` error for a parameter's value.
pub fn bad(name: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: herald_core::error::pointer_push("", name),
        message: message.into(),
        kind: ErrorKind::InvalidValue,
    }
}

/// A boolean parameter: `true`/`1`/empty (a bare `?flag`) or
/// `false`/`0`; anything else is named in `errors`. `None` when absent or bad.
pub fn boolean(name: &str, v: Option<&str>, errors: &mut Vec<FieldError>) -> Option<bool> {
    match v {
        None => None,
        Some("true") | Some("1") | Some("") => Some(true),
        Some("false") | Some("0") => Some(false),
        Some(_) => {
            errors.push(bad(name, "expected true or false"));
            None
        }
    }
}

/// A listing's `limit`: 1..=1000, 100 when left out.
pub fn page_limit(p: &Params, errors: &mut Vec<FieldError>) -> usize {
    match p.get("limit").map(str::parse::<usize>) {
        None => 100,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            errors.push(bad("limit", "expected an integer in 1..=1000"));
            100
        }
    }
}

/// A listing's `cursor`: the `next_cursor` of an earlier page, an id
/// starting with `prefix`.
pub fn page_cursor(p: &Params, prefix: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match p.get("cursor") {
        None => None,
        Some(c) if c.starts_with(prefix) && c.len() <= 128 => Some(c.to_string()),
        Some(_) => {
            errors.push(bad(
                "cursor",
                "expected the `next_cursor` of an earlier page",
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[Param] = &[
        Param {
            name: "a",
            kind: ParamKind::String,
            description: "",
        },
        Param {
            name: "b",
            kind: ParamKind::Integer,
            description: "",
        },
    ];

    fn fields(uri: &str) -> Vec<String> {
        let (_, errors) = parse(&uri.parse().unwrap(), KNOWN);
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn known_parameters_pass_and_every_bad_one_is_named() {
        let (mut ok, errors) = parse(&"/x?b=%20two&a=1".parse().unwrap(), KNOWN);
        assert!(errors.is_empty());
        assert!(check(errors).is_ok());
        assert_eq!(
            ok.iter().collect::<Vec<_>>(),
            vec![("b", " two"), ("a", "1")]
        );
        assert_eq!(ok.take("a").as_deref(), Some("1"));
        assert_eq!(ok.get("a"), None);
        assert_eq!(parse(&"/x".parse().unwrap(), KNOWN).0.iter().count(), 0);
        assert_eq!(
            fields("/x?a=1&c=2&a=3&a=4&d~/=5"),
            vec!["/c", "/a", "/d~0~1"]
        );
        let (_, errors) = parse(&"/x?c=1".parse().unwrap(), KNOWN);
        let problem = check(errors).unwrap_err();
        assert_eq!(problem.status, 400);
        assert!(problem.errors[0].message.contains("known: a, b"));
    }
}
