//! The `nats` processor: `{"subject": "orders.{event.data.region}"}`.
//! Publishes the event's JSON on the subject the template makes from the
//! event (core NATS, on the connection the publisher holds). A placeholder
//! `{path}` is a dotted path into the event's JSON (`event.` may be left
//! out); its value becomes one escaped subject token, so an event cannot
//! add tokens or wildcards. A placeholder the event lacks fails the run.

use std::time::Duration;

use herald_core::error::pointer_push;
use herald_core::{CanonicalEvent, ErrorKind, FieldError};
use serde_json::Value;

use super::{bad, config_object};
use crate::publish::subject::subject_token;

/// How long a publish (with its flush) may take.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// One piece of a subject template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Path(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub template: String,
    pieces: Vec<Piece>,
}

impl NatsConfig {
    pub fn parse(config: &Value, at: &str) -> Result<NatsConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(object) = config_object(config, at, &["subject"], &mut errors) else {
            return Err(errors);
        };
        let field = pointer_push(at, "subject");
        let template = match object.get("subject") {
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                errors.push(bad(field, ErrorKind::InvalidType, "`subject` is a string"));
                return Err(errors);
            }
            None => {
                errors.push(bad(
                    field,
                    ErrorKind::Missing,
                    "a nats processor needs the `subject` it publishes on, as in \"orders.{event.data.region}\"",
                ));
                return Err(errors);
            }
        };
        match pieces(&template) {
            Ok(pieces) if errors.is_empty() => Ok(NatsConfig { template, pieces }),
            Ok(_) => Err(errors),
            Err(message) => {
                errors.push(bad(field, ErrorKind::InvalidValue, message));
                Err(errors)
            }
        }
    }

    /// The subject for `event`.
    pub fn subject(&self, event: &Value) -> Result<String, String> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Path(path) => {
                    let mut at = event;
                    for key in path {
                        at = at
                            .get(key)
                            .ok_or_else(|| format!("the event has no `{}`", path.join(".")))?;
                    }
                    let text = match at {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(format!(
                                "`{}` is not a string, number or bool",
                                path.join(".")
                            ));
                        }
                    };
                    out.push_str(&subject_token(&text));
                }
            }
        }
        Ok(out)
    }

    /// Publishes the event; the result names the subject.
    pub async fn run(
        &self,
        client: Option<&async_nats::Client>,
        event: &CanonicalEvent,
    ) -> Result<Value, String> {
        let client = client.ok_or("NATS is not connected (set HERALD_NATS_URL)")?;
        let json = serde_json::to_value(event).map_err(|e| e.to_string())?;
        let subject = self.subject(&json)?;
        let payload = serde_json::to_vec(&json).map_err(|e| e.to_string())?;
        let publish = async {
            client
                .publish(subject.clone(), payload.into())
                .await
                .map_err(|e| e.to_string())?;
            client.flush().await.map_err(|e| e.to_string())
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
            Ok(Ok(())) => Ok(serde_json::json!({ "subject": subject })),
            Ok(Err(e)) => Err(format!("publish on {subject}: {e}")),
            Err(_) => Err(format!(
                "publish on {subject}: no flush within {PUBLISH_TIMEOUT:?}"
            )),
        }
    }
}

/// Splits a template into text and placeholders, refusing wildcards, empty
/// tokens and unclosed braces.
fn pieces(template: &str) -> Result<Vec<Piece>, String> {
    if template.is_empty() || template.len() > 256 {
        return Err("the subject template is 1 to 256 bytes".into());
    }
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Text(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or("a `{` in the subject is never closed")?
            + open;
        let inner = rest[open + 1..close].trim();
        let inner = inner.strip_prefix("event.").unwrap_or(inner);
        let path: Vec<String> = inner.split('.').map(str::to_string).collect();
        if path.iter().any(|k| k.is_empty()) {
            return Err(format!(
                "`{{{inner}}}` is not a path into the event, as in {{event.data.region}}"
            ));
        }
        out.push(Piece::Path(path));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    // The fixed text with each placeholder as one token must be a subject.
    let shape: String = out
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.as_str(),
            Piece::Path(_) => "x",
        })
        .collect();
    if shape.contains('}') {
        return Err("a `}` in the subject has no `{`".into());
    }
    if shape.split('.').any(|t| t.is_empty()) || shape.contains(['*', '>', ' ', '\t', '\r', '\n']) {
        return Err(format!(
            "`{template}` is not a NATS subject: tokens are separated by single dots, without spaces or wildcards"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(subject: &str) -> Result<NatsConfig, Vec<FieldError>> {
        NatsConfig::parse(&json!({ "subject": subject }), "/config")
    }

    #[test]
    fn a_template_makes_one_escaped_token_per_placeholder() {
        let c = config("orders.{event.data.region}.{data.tier}").unwrap();
        let event = json!({"data": {"region": "eu.west", "tier": 2}});
        assert_eq!(c.subject(&event).unwrap(), "orders.eu~2Ewest.2");
        let missing = json!({"data": {}});
        assert!(c.subject(&missing).unwrap_err().contains("data.region"));
    }

    #[test]
    fn a_bad_template_is_refused_with_its_field() {
        for bad in [
            "orders.*",
            "orders..x",
            "orders.{",
            "orders.{}",
            "a b",
            "x}",
        ] {
            let errors = config(bad).unwrap_err();
            assert_eq!(errors[0].field, "/config/subject", "{bad}");
        }
        let errors = NatsConfig::parse(&json!({}), "/config").unwrap_err();
        assert_eq!(errors[0].kind, ErrorKind::Missing);
    }
}
