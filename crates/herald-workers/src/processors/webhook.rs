//! The `webhook` processor: `{"url": …, "timeout_ms": …}`. Calls the URL
//! with the event in a delivery's body, signed with the processor's secret
//! like a delivery (Standard Webhooks; `webhook-id` is the same on every
//! attempt at one event), through the delivery sender and its network
//! guard. A 2xx answer's JSON body becomes the result (an empty body:
//! `null`; a body that is not JSON: the text); anything else fails the run.

use std::time::Duration;

use herald_core::error::pointer_push;
use herald_core::{CanonicalEvent, ErrorKind, FieldError, Timestamp};
use serde_json::Value;

use super::{bad, config_object};
use crate::delivery::classify::{DEFAULT_SNIPPET_BYTES, snippet};
use crate::delivery::signature::{WebhookMessage, WebhookSecret, build_request, webhook_body};
use crate::delivery::worker::{OutgoingWebhook, SendResult, WebhookSender};

/// The longest answer kept as a result.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// A call's time limit when the config gives none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest time limit a config may give.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub timeout: Duration,
}

impl WebhookConfig {
    /// The URL's form is checked here; the network guard (which needs DNS)
    /// is the API's, and the sender's at each call.
    pub fn parse(config: &Value, at: &str) -> Result<WebhookConfig, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(object) = config_object(config, at, &["url", "timeout_ms"], &mut errors) else {
            return Err(errors);
        };
        let url = match object.get("url") {
            Some(Value::String(u)) if u.starts_with("http://") || u.starts_with("https://") => {
                if u.len() > 2048 {
                    errors.push(bad(
                        pointer_push(at, "url"),
                        ErrorKind::TooLarge,
                        "a URL is at most 2048 bytes",
                    ));
                }
                Some(u.clone())
            }
            Some(Value::String(_)) => {
                errors.push(bad(
                    pointer_push(at, "url"),
                    ErrorKind::InvalidValue,
                    "the URL must start with http:// or https://",
                ));
                None
            }
            Some(_) => {
                errors.push(bad(
                    pointer_push(at, "url"),
                    ErrorKind::InvalidType,
                    "`url` is a string",
                ));
                None
            }
            None => {
                errors.push(bad(
                    pointer_push(at, "url"),
                    ErrorKind::Missing,
                    "a webhook processor needs the `url` it calls",
                ));
                None
            }
        };
        let timeout = match object.get("timeout_ms") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT,
            Some(v) => match v.as_u64() {
                Some(ms) if (100..=MAX_TIMEOUT.as_millis() as u64).contains(&ms) => {
                    Duration::from_millis(ms)
                }
                _ => {
                    errors.push(bad(
                        pointer_push(at, "timeout_ms"),
                        ErrorKind::InvalidValue,
                        format!(
                            "`timeout_ms` is a whole number of milliseconds from 100 to {}",
                            MAX_TIMEOUT.as_millis()
                        ),
                    ));
                    DEFAULT_TIMEOUT
                }
            },
        };
        match url {
            Some(url) if errors.is_empty() => Ok(WebhookConfig { url, timeout }),
            _ => Err(errors),
        }
    }

    /// One call: the event signed with `secret` under `message_id`.
    pub async fn run(
        &self,
        sender: &dyn WebhookSender,
        event: &CanonicalEvent,
        secret: Option<&str>,
        message_id: &str,
        now: Timestamp,
    ) -> Result<Value, String> {
        let secret = secret
            .ok_or("the processor has no signing secret")
            .and_then(|s| {
                WebhookSecret::parse(s).map_err(|_| "the processor's secret does not parse")
            })?;
        let json = serde_json::value::to_raw_value(event).map_err(|e| e.to_string())?;
        let body = webhook_body(event.event_type.as_str(), now, &json);
        let traceparent = match (&event.correlation.trace_id, &event.correlation.span_id) {
            (Some(trace), Some(span)) => Some(format!("00-{trace}-{span}-01")),
            _ => None,
        };
        let request = build_request(
            &WebhookMessage {
                id: message_id,
                body: &body,
                traceparent: traceparent.as_deref(),
                replay: None,
            },
            now,
            std::slice::from_ref(&secret),
        )
        .map_err(|e| e.to_string())?;
        let headers = request
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        match sender
            .send(OutgoingWebhook {
                url: self.url.clone(),
                headers,
                body: request.body,
                timeout: self.timeout,
                read_limit: MAX_ANSWER_BYTES,
            })
            .await
        {
            SendResult::Response { status, body, .. } if (200..300).contains(&status) => {
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Value::Null);
                }
                if body.len() > MAX_ANSWER_BYTES {
                    return Err(format!("the answer is over {MAX_ANSWER_BYTES} bytes"));
                }
                Ok(serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned())))
            }
            SendResult::Response { status, body, .. } => Err(format!(
                "HTTP {status}: {}",
                snippet(&body, DEFAULT_SNIPPET_BYTES)
            )),
            SendResult::Failed(f) => Err(format!("no answer: {f:?}").to_lowercase()),
        }
    }
}
