//! The protobuf form, generated from `proto/herald/v1/event.proto`.
//! Conversions check everything an untrusted sender could get wrong (enum
//! numbers, id bytes, timestamp ranges, embedded JSON) and say which field.

use prost::Message;
use serde_json::{Map, Value};

use super::{CodecError, pb};
use crate::event::{
    Actor, CanonicalEvent, Context, Correlation, Evidence, Extra, Github, Object, Outcome,
};
use crate::model::{
    Category, EventCategory, EventId, EventSource, EventStatus, EventType, OutcomeStatus, StreamId,
    TenantId,
};
use crate::timestamp::Timestamp;

pub fn encode(event: &CanonicalEvent) -> Vec<u8> {
    to_pb(event).encode_to_vec()
}

pub fn decode(bytes: &[u8]) -> Result<CanonicalEvent, CodecError> {
    from_pb(pb::CanonicalEvent::decode(bytes)?)
}

/// Proto enums number their values in the Rust `ALL` order, from 1 (0 is
/// `UNSPECIFIED`); a unit test keeps the names in step.
fn enum_to_pb<T: PartialEq + Copy>(all: &[T], v: T) -> i32 {
    all.iter().position(|x| *x == v).map_or(0, |i| i as i32 + 1)
}

fn enum_from_pb<T: Copy>(all: &[T], n: i32, field: &'static str) -> Result<T, CodecError> {
    usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| all.get(i).copied())
        .ok_or_else(|| CodecError::Field {
            field,
            reason: format!("enum value {n} is not defined"),
        })
}

fn ts_to_pb(t: &Timestamp) -> pb::Timestamp {
    pb::Timestamp {
        seconds: t.unix_seconds(),
        nanos: t.nanos(),
        offset_seconds: t.offset_seconds(),
    }
}

fn ts_from_pb(t: Option<pb::Timestamp>, field: &'static str) -> Result<Timestamp, CodecError> {
    let t = t.ok_or(CodecError::Field {
        field,
        reason: "missing".into(),
    })?;
    Timestamp::from_parts(t.seconds, t.nanos, t.offset_seconds)
        .map_err(|reason| CodecError::Field { field, reason })
}

fn extra_to_pb(m: &Extra) -> Vec<u8> {
    if m.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(m).unwrap_or_default()
    }
}

fn extra_from_pb(bytes: &[u8], field: &'static str) -> Result<Extra, CodecError> {
    if bytes.is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_slice(bytes).map_err(|e| CodecError::Field {
        field,
        reason: format!("not a JSON object: {e}"),
    })
}

fn parse<T, E: std::fmt::Display>(r: Result<T, E>, field: &'static str) -> Result<T, CodecError> {
    r.map_err(|e| CodecError::Field {
        field,
        reason: e.to_string(),
    })
}

pub fn to_pb(e: &CanonicalEvent) -> pb::CanonicalEvent {
    pb::CanonicalEvent {
        event_id: e.event_id.as_bytes().to_vec(),
        tenant_id: e.tenant_id.to_string(),
        event_type: e.event_type.to_string(),
        category: enum_to_pb(Category::ALL, e.category),
        event_category: e
            .event_category
            .map_or(0, |c| enum_to_pb(EventCategory::ALL, c)),
        event_source: enum_to_pb(EventSource::ALL, e.event_source),
        timestamp: Some(ts_to_pb(&e.timestamp)),
        processing_timestamp: Some(ts_to_pb(&e.processing_timestamp)),
        actor: Some(pb::Actor {
            user_id: e.actor.user_id.clone(),
            email_hash: e.actor.email_hash.clone(),
            service_name: e.actor.service_name.clone(),
            role: e.actor.role.clone(),
            anonymous_id: e.actor.anonymous_id.clone(),
            extra_json: extra_to_pb(&e.actor.extra),
        }),
        object: Some(pb::Object {
            order_id: e.object.order_id.clone(),
            request_id: e.object.request_id.clone(),
            session_id: e.object.session_id.clone(),
            ticket_id: e.object.ticket_id.clone(),
            resource_id: e.object.resource_id.clone(),
            extra_json: extra_to_pb(&e.object.extra),
        }),
        correlation: Some(pb::Correlation {
            trace_id: e.correlation.trace_id.clone(),
            span_id: e.correlation.span_id.clone(),
            correlation_id: e.correlation.correlation_id.clone(),
            parent_event_id: e.correlation.parent_event_id.clone(),
        }),
        outcome: Some(pb::Outcome {
            status: enum_to_pb(OutcomeStatus::ALL, e.outcome.status),
            error_class: e.outcome.error_class.clone(),
            error_code: e.outcome.error_code.clone(),
            message: e.outcome.message.clone(),
        }),
        evidence: Some(pb::Evidence {
            github: e.evidence.github.as_ref().map(|g| pb::Github {
                commit_sha: g.commit_sha.clone(),
                pr: g.pr.clone(),
                repository: g.repository.clone(),
            }),
            raw_pointer: e.evidence.raw_pointer.clone(),
            trace_url: e.evidence.trace_url.clone(),
            log_references: e.evidence.log_references.clone(),
        }),
        context: Some(pb::Context {
            environment: e.context.environment.clone(),
            service: e.context.service.clone(),
            endpoint: e.context.endpoint.clone(),
            version: e.context.version.clone(),
            ip: e.context.ip.clone(),
            user_agent: e.context.user_agent.clone(),
            referer: e.context.referer.clone(),
            extra_json: extra_to_pb(&e.context.extra),
        }),
        data_json: serde_json::to_vec(&e.data).unwrap_or_default(),
        metadata_json: extra_to_pb(&e.metadata),
        stream_id: e.stream_id.as_ref().map(ToString::to_string),
        stream_version: e.stream_version,
        status: enum_to_pb(EventStatus::ALL, e.status),
        idempotency_key: e.idempotency_key.clone(),
        schema_version: e.schema_version,
    }
}

pub fn from_pb(p: pb::CanonicalEvent) -> Result<CanonicalEvent, CodecError> {
    let id: [u8; 16] = p
        .event_id
        .as_slice()
        .try_into()
        .map_err(|_| CodecError::Field {
            field: "event_id",
            reason: format!("{} bytes, expected 16", p.event_id.len()),
        })?;
    let actor = p.actor.unwrap_or_default();
    let object = p.object.unwrap_or_default();
    let correlation = p.correlation.unwrap_or_default();
    let outcome = p.outcome.ok_or(CodecError::Field {
        field: "outcome",
        reason: "missing".into(),
    })?;
    let evidence = p.evidence.unwrap_or_default();
    let context = p.context.ok_or(CodecError::Field {
        field: "context",
        reason: "missing".into(),
    })?;
    Ok(CanonicalEvent {
        event_id: parse(EventId::from_bytes(id), "event_id")?,
        tenant_id: parse(TenantId::parse(p.tenant_id), "tenant_id")?,
        event_type: parse(EventType::parse(p.event_type), "event_type")?,
        category: enum_from_pb(Category::ALL, p.category, "category")?,
        event_category: match p.event_category {
            0 => None,
            n => Some(enum_from_pb(EventCategory::ALL, n, "event_category")?),
        },
        event_source: enum_from_pb(EventSource::ALL, p.event_source, "event_source")?,
        timestamp: ts_from_pb(p.timestamp, "timestamp")?,
        processing_timestamp: ts_from_pb(p.processing_timestamp, "processing_timestamp")?,
        actor: Actor {
            user_id: actor.user_id,
            email_hash: actor.email_hash,
            service_name: actor.service_name,
            role: actor.role,
            anonymous_id: actor.anonymous_id,
            extra: extra_from_pb(&actor.extra_json, "actor.extra_json")?,
        },
        object: Object {
            order_id: object.order_id,
            request_id: object.request_id,
            session_id: object.session_id,
            ticket_id: object.ticket_id,
            resource_id: object.resource_id,
            extra: extra_from_pb(&object.extra_json, "object.extra_json")?,
        },
        correlation: Correlation {
            trace_id: correlation.trace_id,
            span_id: correlation.span_id,
            correlation_id: correlation.correlation_id,
            parent_event_id: correlation.parent_event_id,
        },
        outcome: Outcome {
            status: enum_from_pb(OutcomeStatus::ALL, outcome.status, "outcome.status")?,
            error_class: outcome.error_class,
            error_code: outcome.error_code,
            message: outcome.message,
        },
        evidence: Evidence {
            github: evidence.github.map(|g| Github {
                commit_sha: g.commit_sha,
                pr: g.pr,
                repository: g.repository,
            }),
            raw_pointer: evidence.raw_pointer,
            trace_url: evidence.trace_url,
            log_references: evidence.log_references,
        },
        context: Context {
            environment: context.environment,
            service: context.service,
            endpoint: context.endpoint,
            version: context.version,
            ip: context.ip,
            user_agent: context.user_agent,
            referer: context.referer,
            extra: extra_from_pb(&context.extra_json, "context.extra_json")?,
        },
        data: if p.data_json.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&p.data_json).map_err(|e| CodecError::Field {
                field: "data_json",
                reason: format!("not JSON: {e}"),
            })?
        },
        metadata: extra_from_pb(&p.metadata_json, "metadata_json")?,
        stream_id: p
            .stream_id
            .map(|s| parse(StreamId::parse(s), "stream_id"))
            .transpose()?,
        stream_version: p.stream_version,
        status: enum_from_pb(EventStatus::ALL, p.status, "status")?,
        idempotency_key: p.idempotency_key,
        schema_version: p.schema_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `.proto` enum names must follow the Rust wire names in order, or
    /// `enum_to_pb` would silently map to the wrong value.
    #[test]
    fn proto_enum_numbers_follow_rust_order() {
        fn check<T: Copy + std::fmt::Display>(
            all: &[T],
            prefix: &str,
            name: impl Fn(i32) -> Option<String>,
        ) {
            for (i, v) in all.iter().enumerate() {
                let want = format!("{prefix}_{}", v.to_string().to_ascii_uppercase());
                assert_eq!(name(i as i32 + 1).as_deref(), Some(want.as_str()));
            }
            assert_eq!(
                name(all.len() as i32 + 1),
                None,
                "{prefix} has more values in the .proto"
            );
        }
        let n = |f: fn(i32) -> Option<&'static str>| move |i: i32| f(i).map(str::to_string);
        check(
            Category::ALL,
            "CATEGORY",
            n(|i| pb::Category::try_from(i).ok().map(|e| e.as_str_name())),
        );
        check(
            EventCategory::ALL,
            "EVENT_CATEGORY",
            n(|i| pb::EventCategory::try_from(i).ok().map(|e| e.as_str_name())),
        );
        check(
            EventSource::ALL,
            "EVENT_SOURCE",
            n(|i| pb::EventSource::try_from(i).ok().map(|e| e.as_str_name())),
        );
        check(
            OutcomeStatus::ALL,
            "OUTCOME_STATUS",
            n(|i| pb::OutcomeStatus::try_from(i).ok().map(|e| e.as_str_name())),
        );
        check(
            EventStatus::ALL,
            "EVENT_STATUS",
            n(|i| pb::EventStatus::try_from(i).ok().map(|e| e.as_str_name())),
        );
    }
}
