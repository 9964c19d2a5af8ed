//! Processors: what runs on a stored event before it is `processed`.
//!
//! A processor is a selector (which events: types and patterns, sources,
//! categories, a CEL filter: the subscriptions' [`Selector`]) plus a
//! [`ProcessorKind`], one variant and one module per type:
//! [`webhook`] (calls a URL with the event, signed like deliveries, and
//! keeps the JSON answer), [`enrich`] (CEL expressions whose values become
//! the result) and [`nats`] (publishes the event on a subject made from
//! the event). A new kind is one variant here and one module.
//!
//! [`check`] is the one check of a definition, used by the API when it is
//! saved and by the worker when it is loaded; [`worker`] runs them.

use std::time::Duration;

use herald_core::error::pointer_push;
use herald_core::{ErrorKind, FieldError};
use herald_filter::Selector;
use herald_store::{Processor, ProcessorSpec};
use serde_json::Value;

use crate::delivery::schedule::RetryPolicy;

pub mod enrich;
pub mod nats;
pub mod webhook;
pub mod worker;

/// A processor's retry schedule when it gives none: shorter than
/// delivery's, since an event's processing waits on it (5 s, 30 s, 2 min,
/// 10 min, 30 min).
pub const DEFAULT_SCHEDULE_SECONDS: [u64; 5] = [5, 30, 120, 600, 1800];

/// The processor types, as `processor_type` names them.
pub const TYPES: [&str; 3] = ["webhook", "enrich", "nats"];

/// What a processor does, checked.
#[derive(Debug, Clone)]
pub enum ProcessorKind {
    Webhook(webhook::WebhookConfig),
    Enrich(enrich::EnrichConfig),
    Nats(nats::NatsConfig),
}

impl ProcessorKind {
    /// The type `processor_type` names, with its `config` (at JSON pointer
    /// `at`), every bad field named.
    pub fn parse(processor_type: &str, config: &Value, at: &str) -> Result<Self, Vec<FieldError>> {
        match processor_type {
            "webhook" => webhook::WebhookConfig::parse(config, at).map(ProcessorKind::Webhook),
            "enrich" => enrich::EnrichConfig::parse(config, at).map(ProcessorKind::Enrich),
            "nats" => nats::NatsConfig::parse(config, at).map(ProcessorKind::Nats),
            other => Err(vec![FieldError {
                field: "/processor_type".into(),
                message: format!(
                    "unknown processor type `{other}`; expected one of: {}",
                    TYPES.join(", ")
                ),
                kind: ErrorKind::InvalidValue,
            }]),
        }
    }

    /// The longest one run may take (the worker's lease covers it).
    pub fn timeout(&self) -> Duration {
        match self {
            ProcessorKind::Webhook(w) => w.timeout,
            ProcessorKind::Enrich(_) => Duration::from_secs(1),
            ProcessorKind::Nats(_) => nats::PUBLISH_TIMEOUT,
        }
    }
}

/// A stored processor ready to run: its selector, kind and schedule.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub processor: Processor,
    pub selector: Selector,
    pub kind: ProcessorKind,
    pub retry: RetryPolicy,
}

impl Compiled {
    /// `None` (and a warning) when the stored definition no longer passes
    /// [`check`]: such a processor runs on nothing.
    pub fn of(processor: Processor) -> Option<Compiled> {
        match check(&processor.spec) {
            Ok((selector, kind, retry)) => Some(Compiled {
                processor,
                selector,
                kind,
                retry,
            }),
            Err(errors) => {
                tracing::warn!(processor_id = %processor.processor_id, ?errors, "stored processor does not check; skipped");
                None
            }
        }
    }
}

/// The one check of a processor's definition: its selector (`filters`),
/// its type's `config`, its retry policy. Every bad field is named.
pub fn check(
    spec: &ProcessorSpec,
) -> Result<(Selector, ProcessorKind, RetryPolicy), Vec<FieldError>> {
    let mut errors = Vec::new();
    let selector = match &spec.filters {
        Value::Null => Some(Selector::any()),
        filters => Selector::from_json(filters, "/filters")
            .map_err(|e| errors.extend(e))
            .ok(),
    };
    if let Value::Object(filters) = &spec.filters {
        for key in filters.keys() {
            if !["event_types", "event_sources", "event_categories", "filter"]
                .contains(&key.as_str())
            {
                errors.push(FieldError {
                    field: pointer_push("/filters", key),
                    message: "unknown filter field; known: event_types, event_sources, event_categories, filter".into(),
                    kind: ErrorKind::InvalidValue,
                });
            }
        }
    }
    let kind = ProcessorKind::parse(&spec.processor_type, &spec.config, "/config")
        .map_err(|e| errors.extend(e))
        .ok();
    let retry = match &spec.retry_policy {
        Value::Null => Some(default_retry()),
        policy => RetryPolicy::from_json(policy, "/retry_policy")
            .map_err(|e| errors.extend(e))
            .ok(),
    };
    match (selector, kind, retry) {
        (Some(s), Some(k), Some(r)) if errors.is_empty() => Ok((s, k, r)),
        _ => Err(errors),
    }
}

/// [`DEFAULT_SCHEDULE_SECONDS`] as a policy.
pub fn default_retry() -> RetryPolicy {
    let schedule: Vec<Value> = DEFAULT_SCHEDULE_SECONDS
        .iter()
        .map(|s| Value::from(*s))
        .collect();
    RetryPolicy::from_json(&serde_json::json!({ "schedule": schedule }), "")
        .expect("the default schedule is a valid policy")
}

/// A field error at `field`.
pub(crate) fn bad(field: String, kind: ErrorKind, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
        kind,
    }
}

/// `config` as an object whose keys are all in `known`; each other key is
/// an error.
pub(crate) fn config_object<'a>(
    config: &'a Value,
    at: &str,
    known: &[&str],
    errors: &mut Vec<FieldError>,
) -> Option<&'a serde_json::Map<String, Value>> {
    let Value::Object(object) = config else {
        errors.push(bad(
            at.to_string(),
            ErrorKind::InvalidType,
            "`config` is an object of the type's settings",
        ));
        return None;
    };
    for key in object.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(bad(
                pointer_push(at, key),
                ErrorKind::InvalidValue,
                format!("unknown setting for this type; known: {}", known.join(", ")),
            ));
        }
    }
    Some(object)
}
