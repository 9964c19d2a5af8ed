//! Raw → canonical (`normalize`): assigns the UUIDv7 id and
//! `processing_timestamp`, applies the defaults (source `backend`,
//! environment `production`, outcome `success`, timestamp = receive time),
//! keeps the original timestamp exactly, fills trace/span ids from a W3C
//! `traceparent` when the event has none, and flags far-future timestamps.

use time::Duration;

use crate::decode::RawEvent;
use crate::error::Findings;
use crate::event::{CanonicalEvent, Correlation};
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

/// Trace context from a W3C `traceparent` (the body's, else the request
/// header's) when the event names no `correlation.trace_id`. Nothing is
/// dropped unsaid: an invalid traceparent is a warning, and so is a valid
/// one naming another trace than the one used (which one won, and why).
fn fill_trace_context(
    correlation: &mut Correlation,
    body: Option<&str>,
    header: Option<&str>,
    findings: &mut Findings,
) {
    // The header is not part of the body: its findings point at the whole event.
    let candidates = [
        ("/traceparent", "traceparent", body),
        ("", "traceparent header", header),
    ];
    let mut used: Option<&'static str> = None;
    for (field, origin, value) in candidates {
        let Some(value) = value else { continue };
        let Some(tp) = TraceParent::parse(value) else {
            findings.warn(
                field,
                format!(
                    "{origin} `{}` is not a valid W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>); ignored",
                    crate::model::truncate(value.trim(), 64)
                ),
            );
            continue;
        };
        match correlation.trace_id.as_deref() {
            None => {
                correlation.trace_id = Some(tp.trace_id);
                if correlation.span_id.is_none() {
                    correlation.span_id = Some(tp.span_id);
                }
                used = Some(origin);
            }
            Some(kept) if kept == tp.trace_id => {}
            Some(kept) => {
                let winner = used.unwrap_or("correlation.trace_id");
                findings.warn(
                    field,
                    format!(
                        "{origin} names trace {}, but {winner} gives trace {}; {winner} is used and the {origin} ignored",
                        tp.trace_id,
                        crate::model::truncate(kept, 64)
                    ),
                );
            }
        }
    }
}

/// Builds the canonical event. Never fails: everything that could be wrong
/// was rejected by decoding and validation.
pub(crate) fn normalize(
    raw: RawEvent,
    event_id: EventId,
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

    fill_trace_context(
        &mut correlation,
        traceparent.as_deref(),
        header_traceparent,
        findings,
    );

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
        event_id,
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
    use crate::clock::{IdSource, SequentialIds};
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
            SequentialIds::default().event_id(now),
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

    /// The event's correlation and warnings for a body `correlation` and
    /// `traceparent`, and a request header.
    fn traced(
        correlation: serde_json::Value,
        body_tp: Option<&str>,
        header: Option<&str>,
    ) -> (Correlation, Vec<crate::error::FieldWarning>) {
        let mut body = serde_json::json!({"event_type": "x.y", "category": "system", "correlation": correlation});
        if let Some(tp) = body_tp {
            body["traceparent"] = tp.into();
        }
        let (raw, _) = decode_event(body, &Limits::default()).unwrap();
        let mut findings = Findings::default();
        let e = normalize(
            raw,
            SequentialIds::default().event_id(Timestamp::parse("2025-12-30T10:00:00Z").unwrap()),
            &TenantId::parse("t").unwrap(),
            Timestamp::parse("2025-12-30T10:00:00Z").unwrap(),
            header,
            &mut findings,
        );
        (e.correlation, findings.warnings)
    }

    const TP_A: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const TP_B: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn an_invalid_traceparent_is_a_warning() {
        let (c, w) = traced(serde_json::json!({}), Some("00-XYZ"), Some(TP_A));
        assert_eq!(
            c.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            "the header's"
        );
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].field, "/traceparent");
        assert_eq!(
            w[0].message,
            "traceparent `00-XYZ` is not a valid W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>); ignored"
        );
        // Even when correlation.trace_id makes it moot.
        let (_, w) = traced(serde_json::json!({"trace_id": "t"}), None, Some("nope"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].field, "");
        assert!(
            w[0].message
                .starts_with("traceparent header `nope` is not a valid"),
            "{}",
            w[0].message
        );
    }

    #[test]
    fn a_traceparent_that_loses_says_which_won() {
        let (c, w) = traced(serde_json::json!({"trace_id": "given"}), Some(TP_A), None);
        assert_eq!(c.trace_id.as_deref(), Some("given"));
        assert_eq!(c.span_id, None);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].field, "/traceparent");
        assert_eq!(
            w[0].message,
            "traceparent names trace 4bf92f3577b34da6a3ce929d0e0e4736, but correlation.trace_id gives \
             trace given; correlation.trace_id is used and the traceparent ignored"
        );
        let (c, w) = traced(serde_json::json!({}), Some(TP_A), Some(TP_B));
        assert_eq!(
            c.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(c.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].field, "");
        assert!(
            w[0].message.starts_with(
                "traceparent header names trace 0af7651916cd43dd8448eb211c80319c, but traceparent gives"
            ),
            "{}",
            w[0].message
        );
        // The same trace twice loses nothing: no warning.
        let (_, w) = traced(
            serde_json::json!({"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}),
            Some(TP_A),
            Some(TP_A),
        );
        assert_eq!(w, vec![]);
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
