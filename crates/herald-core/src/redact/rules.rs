//! A tenant's path rules: a JSON pointer into the free-form parts of the
//! event (`/data/customer/phone`, `/actor/user_id`), `*` matching any one
//! key or array index, and what to do with what it matches (drop, mask or
//! hash). Rules run after the built-in scrubbing, in the order given.

use serde_json::{Map, Value};

use super::{EmailHasher, MASK, PathRule, RedactAction, redact_value};
use crate::event::CanonicalEvent;

/// The parts of the event a rule may address, by their pointer prefix.
const FREE_PARTS: [&str; 5] = ["actor", "object", "context", "data", "metadata"];

pub(super) fn apply(event: &mut CanonicalEvent, rule: &PathRule, hasher: &EmailHasher) {
    let mut segments = rule.path.trim_start_matches('/').split('/');
    let Some(part) = segments.next() else {
        return;
    };
    if !FREE_PARTS.contains(&part) {
        return;
    }
    let rest: Vec<String> = segments.map(unescape).collect();
    if let [name] = rest.as_slice() {
        // `*` is every key of the part as sent: its named fields too.
        if name == "*" {
            for name in named_fields(part) {
                if let Some(field) = named_field(event, part, name) {
                    apply_named(field, rule.action, hasher);
                }
            }
        } else if let Some(field) = named_field(event, part, name) {
            apply_named(field, rule.action, hasher);
            return;
        }
    }
    match part {
        "data" => rule_value(&mut event.data, &rest, rule.action, hasher),
        "metadata" => rule_map(&mut event.metadata, &rest, rule.action, hasher),
        "actor" => rule_map(&mut event.actor.extra, &rest, rule.action, hasher),
        "object" => rule_map(&mut event.object.extra, &rest, rule.action, hasher),
        _ => rule_map(&mut event.context.extra, &rest, rule.action, hasher),
    }
}

fn apply_named(field: &mut Option<String>, action: RedactAction, hasher: &EmailHasher) {
    if field.is_some() {
        *field = match action {
            RedactAction::Drop => None,
            RedactAction::Mask => Some(MASK.to_string()),
            RedactAction::Hash => field.as_deref().map(|v| format!("hash:{}", hasher.hash(v))),
        };
    }
}

/// The names [`named_field`] knows in `part`.
fn named_fields(part: &str) -> &'static [&'static str] {
    match part {
        "actor" => &[
            "user_id",
            "email_hash",
            "service_name",
            "role",
            "anonymous_id",
        ],
        "object" => &[
            "order_id",
            "request_id",
            "session_id",
            "ticket_id",
            "resource_id",
        ],
        "context" => &[
            "service",
            "endpoint",
            "version",
            "ip",
            "user_agent",
            "referer",
        ],
        _ => &[],
    }
}

/// The named (optional) string fields a rule may address directly.
/// `context.environment` is not one: every event has an environment, so
/// there is nothing a rule could drop.
fn named_field<'e>(
    event: &'e mut CanonicalEvent,
    part: &str,
    name: &str,
) -> Option<&'e mut Option<String>> {
    let (actor, object, context) = (&mut event.actor, &mut event.object, &mut event.context);
    Some(match (part, name) {
        ("actor", "user_id") => &mut actor.user_id,
        ("actor", "email_hash") => &mut actor.email_hash,
        ("actor", "service_name") => &mut actor.service_name,
        ("actor", "role") => &mut actor.role,
        ("actor", "anonymous_id") => &mut actor.anonymous_id,
        ("object", "order_id") => &mut object.order_id,
        ("object", "request_id") => &mut object.request_id,
        ("object", "session_id") => &mut object.session_id,
        ("object", "ticket_id") => &mut object.ticket_id,
        ("object", "resource_id") => &mut object.resource_id,
        ("context", "service") => &mut context.service,
        ("context", "endpoint") => &mut context.endpoint,
        ("context", "version") => &mut context.version,
        ("context", "ip") => &mut context.ip,
        ("context", "user_agent") => &mut context.user_agent,
        ("context", "referer") => &mut context.referer,
        _ => return None,
    })
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn rule_map(
    map: &mut Map<String, Value>,
    path: &[String],
    action: RedactAction,
    hasher: &EmailHasher,
) {
    let Some((head, rest)) = path.split_first() else {
        return;
    };
    let keys: Vec<String> = if head == "*" {
        map.keys().cloned().collect()
    } else {
        vec![head.clone()]
    };
    for key in keys {
        if rest.is_empty() {
            if action == RedactAction::Drop {
                // Keeps the order of the other keys (`remove` would not).
                map.shift_remove(&key);
            } else if let Some(v) = map.get_mut(&key) {
                redact_value(v, action, hasher);
            }
        } else if let Some(v) = map.get_mut(&key) {
            rule_value(v, rest, action, hasher);
        }
    }
}

fn rule_value(value: &mut Value, path: &[String], action: RedactAction, hasher: &EmailHasher) {
    match value {
        Value::Object(m) => rule_map(m, path, action, hasher),
        Value::Array(items) => {
            let Some((head, rest)) = path.split_first() else {
                return;
            };
            let indices: Vec<usize> = if head == "*" {
                (0..items.len()).collect()
            } else {
                head.parse()
                    .ok()
                    .filter(|i| *i < items.len())
                    .into_iter()
                    .collect()
            };
            for i in indices.into_iter().rev() {
                if rest.is_empty() {
                    if action == RedactAction::Drop {
                        items.remove(i);
                    } else {
                        redact_value(&mut items[i], action, hasher);
                    }
                } else {
                    rule_value(&mut items[i], rest, action, hasher);
                }
            }
        }
        _ if path.is_empty() => redact_value(value, action, hasher),
        _ => {}
    }
}
