//! Raw → canonical (seed 000 "normalizeEvent"): assigns the UUIDv7 id and
//! `processing_timestamp`, applies the defaults (source `backend`,
//! environment `production`, outcome `success`, timestamp = receive time),
//! keeps the original timestamp exactly, fills trace/span ids from a W3C
//! `traceparent` when the event has none, and flags far-future timestamps.

use time::Duration;

use crate::decode::RawEvent;
use crate::error::Findings;
use crate::event::CanonicalEvent;
use crate::model::{EventId, EventSource, EventStatus, TenantId};
use crate::timestamp::Timestamp;

/// How far ahead of receive time a timestamp may be before it is flagged.
pub const FUTURE_TOLERANCE: Duration = Duration::hours(24);

/// A parsed W3C trace context (`00-{trace_id}-{span_id}-{flags}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub span_id: String,
    pub sampled: bool,
}

impl TraceParent {
    /// Parses a `traceparent` header value per W3C Trace Context level 1.
    pub fn parse(s: &str) -> Option<TraceParent> {
        let s = s.trim();
        let mut parts = s.split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |p: &str, len: usize| {
            p.len() == len && p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        if !hex(version, 2)
            || version == "ff"
            || !hex(trace_id, 32)
            || !hex(span_id, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.next().is_some() {
            return None;
        }
        if trace_id.bytes().all(|b| b == b'0') || span_id.bytes().all(|b| b == b'0') {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceParent {
            trace_id: trace_id.to_string(),
            span_id: span_id.to_string(),
            sampled: flags & 1 == 1,
        })
    }
}

/// Builds the canonical event. Never fails: everything that could be wrong
/// was rejected by decoding and validation.
pub(crate) fn normalize(
    raw: RawEvent,
    tenant_id: &TenantId,
    processing_timestamp: Timestamp,
    header_traceparent: Option<&str>,
    findings: &mut Findings,
) -> CanonicalEvent {
    let RawEvent {
        event_type,
        category,
        event_category,
        event_source,
        timestamp,
        actor,
        object,
        mut correlation,
        outcome,
        evidence,
        context,
        data,
        metadata,
        stream_id,
        idempotency_key,
        schema_version,
        traceparent,
        ..
    } = raw;

    if correlation.trace_id.is_none() {
        let candidates = [
            ("/traceparent", traceparent.as_deref()),
            ("traceparent header", header_traceparent),
        ];
        for (origin, value) in candidates {
            let Some(value) = value else { continue };
            match TraceParent::parse(value) {
                Some(tp) => {
                    correlation.trace_id = Some(tp.trace_id);
                    if correlation.span_id.is_none() {
                        correlation.span_id = Some(tp.span_id);
                    }
                    break;
                }
                None => findings.warn(
                    if origin.starts_with('/') { origin } else { "" },
                    format!("{origin} is not a valid W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>); ignored"),
                ),
            }
        }
    }

    let timestamp = match timestamp {
        Some(t) => {
            let ahead = t.as_offset_date_time() - processing_timestamp.as_offset_date_time();
            if ahead > FUTURE_TOLERANCE {
                findings.warn(
                    "/timestamp",
                    format!(
                        "timestamp is {} hours after receive time; check the sender's clock",
                        ahead.whole_hours()
                    ),
                );
            }
            t
        }
        None => processing_timestamp,
    };

    CanonicalEvent {
        event_id: EventId::new(),
        tenant_id: tenant_id.clone(),
        event_type,
        category,
        event_category,
        event_source: event_source.unwrap_or(EventSource::Backend),
        timestamp,
        processing_timestamp,
        actor,
        object,
        correlation,
        outcome: outcome.unwrap_or_default(),
        evidence,
        context,
        data,
        metadata,
        stream_id,
        stream_version: None,
        status: EventStatus::Pending,
        idempotency_key,
        schema_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Limits, decode_event};

    /// The warnings normalising an event sent at `sent` (if any) gives
    /// when received at `now`.
    fn warnings(sent: Option<&str>, now: &str) -> Vec<crate::error::FieldWarning> {
        let mut body = serde_json::json!({"event_type": "x.y", "category": "system"});
        if let Some(sent) = sent {
            body["timestamp"] = sent.into();
        }
        let (raw, _) = decode_event(body, &Limits::default()).unwrap();
        let mut findings = Findings::default();
        let now = Timestamp::parse(now).unwrap();
        let e = normalize(
            raw,
            &TenantId::parse("t").unwrap(),
            now,
            None,
            &mut findings,
        );
        assert_eq!(e.processing_timestamp, now);
        findings.warnings
    }

    #[test]
    fn far_future_timestamps_are_flagged() {
        let now = "2025-12-30T10:00:00Z";
        for far in [
            "2025-12-31T10:00:00.000000001Z",
            "2025-12-31T11:00:00.000000001+01:00",
            "2026-01-05T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let w = warnings(Some(far), now);
            assert_eq!(w.len(), 1, "{far}: {w:?}");
            assert_eq!(w[0].field, "/timestamp");
            assert!(
                w[0].message.contains("hours after receive time"),
                "{}",
                w[0].message
            );
        }
        let w = warnings(Some("2026-01-05T00:00:00Z"), now);
        assert!(
            w[0].message.starts_with("timestamp is 134 hours"),
            "{}",
            w[0].message
        );
        // Within 24 hours ahead (the edge included), in the past, or absent: no warning.
        for near in [
            "2025-12-31T10:00:00Z",
            "2025-12-31T11:00:00+01:00",
            "2025-12-31T09:59:59.999999999Z",
            "2025-12-30T10:00:00Z",
            "2024-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
        ] {
            assert_eq!(warnings(Some(near), now), vec![], "{near}");
        }
        assert_eq!(warnings(None, now), vec![]);
    }

    #[test]
    fn traceparent_parsing_follows_w3c() {
        let tp =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.span_id, "00f067aa0ba902b7");
        assert!(tp.sampled);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }
}
