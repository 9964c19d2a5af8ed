//! The query path's answer for a stored row without decoding it: the
//! `EventResponse`, spliced from the stored canonical JSON. The stored text's
//! top-level `status`, `processing_timestamp` and `event_category` are found
//! as members of the object (whatever their order), the stale `status` is
//! replaced in place, and the response's own fields are appended: byte for
//! byte what serialising the decoded event gives (the tests below hold the
//! two together). A 1,000-row page is the hot path this exists for, so the
//! common layout is found without walking the whole text ([`Layout::find`]);
//! decoding each row is the fallback.

use std::ops::Range;

use std::collections::HashMap;

use herald_core::{EventId, Timestamp};
use herald_store::{EventJson, ProcessorResult, StoredEvent};
use serde::Serialize;

use super::response::EventResponse;
use crate::http::problem::ApiError;

/// Appends the `EventResponse` of `row`: its stored JSON with the current
/// status in place of the stored one, then `user_id`, `event_category`
/// (`null`, when the event has none), `created_at`, `processed_at` and
/// `processing_ms`, in the order `EventResponse` serialises them. `false`
/// (nothing appended) when the row is not an object with a `status` and a
/// `processing_timestamp`; the caller then decodes it.
pub(crate) fn splice_response(out: &mut String, row: &EventJson) -> bool {
    let body = row.body.as_str();
    let Some(at) = Layout::find(body) else {
        return false;
    };
    out.push_str(&body[..at.status.start]);
    out.push('"');
    out.push_str(row.status.as_str());
    out.push('"');
    // The members after the status, without the object's closing brace.
    out.push_str(&body[at.status.end..at.end]);
    out.push_str(",\"user_id\":");
    match row.user_id.as_deref() {
        Some(u) => out.push_str(&json_text(u)),
        None => out.push_str("null"),
    }
    if !at.has_event_category {
        out.push_str(",\"event_category\":null");
    }
    out.push_str(",\"created_at\":");
    out.push_str(&body[at.created]);
    if let Some(p) = row.processed_at.as_deref() {
        out.push_str(",\"processed_at\":");
        out.push_str(&json_text(p));
    }
    if let Some(ms) = row.processing_ms {
        out.push_str(",\"processing_ms\":");
        out.push_str(&json_text(&ms));
    }
    out.push('}');
    true
}

/// Where the splice's members are in a stored event's JSON text.
#[derive(Debug, PartialEq)]
struct Layout {
    /// The top-level `status` value, quotes included.
    status: Range<usize>,
    /// The top-level `processing_timestamp` value, quotes included.
    created: Range<usize>,
    has_event_category: bool,
    /// The object's closing brace.
    end: usize,
}

impl Layout {
    /// The members walked from the start, stopping early when the rest is
    /// known without walking it: a text ending in `,"status":"<word>"}`
    /// has `status` as its last top-level member (that brace closes the
    /// object, and no string holds an unescaped quote), and once
    /// `processing_timestamp` is found, an `event_category` member can
    /// only be in the rest if its key occurs there at all. Otherwise the
    /// whole object is walked.
    fn find(body: &str) -> Option<Layout> {
        match last_status(body) {
            Some(last) => Self::walk(body, Some(&last)).or_else(|| Self::walk(body, None)),
            None => Self::walk(body, None),
        }
    }

    /// One walk; with `last` (the status known to be the last member) it
    /// may stop after `processing_timestamp`.
    fn walk(body: &str, last: Option<&(Range<usize>, usize)>) -> Option<Layout> {
        let (mut status, mut created, mut event_category) = (None, None, None);
        let walked = top_level_members(body, |key, value| {
            match key {
                "status" => status = Some(value),
                "processing_timestamp" => created = Some(value),
                "event_category" => event_category = Some(value),
                _ => {}
            }
            last.is_some() && created.is_some()
        })?;
        let (status, end) = match walked {
            Walked::To(end) => (status?, end),
            Walked::Stopped(rest) => {
                if event_category.is_none() && body[rest..].contains("\"event_category\":") {
                    return None;
                }
                last?.clone()
            }
        };
        let has_event_category = match event_category {
            None => false,
            // Never stored (the codec leaves a missing one out); decode it.
            Some(v) if &body[v.clone()] == "null" => return None,
            Some(_) => true,
        };
        Some(Layout {
            status,
            created: created?,
            has_event_category,
            end,
        })
    }
}

/// The value of a top-level `status` that is the text's last member (the
/// text ends in `,"status":"<lowercase word>"}`), and the closing brace.
fn last_status(body: &str) -> Option<(Range<usize>, usize)> {
    const KEY: &str = ",\"status\":\"";
    let inner = body.strip_suffix("\"}")?;
    let cut = inner.rfind(KEY)?;
    let word = &inner[cut + KEY.len()..];
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    Some((cut + KEY.len() - 1..inner.len() + 1, body.len() - 1))
}

/// How a walk over the members ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walked {
    /// Every member; the object's closing brace is here.
    To(usize),
    /// The caller stopped it; the next member starts at or after here.
    Stopped(usize),
}

/// Walks the top-level members of the JSON object `text`, handing each
/// key and the byte range of its value to `each`, in order, until `each`
/// answers `true` (stop) or the object ends. `None` when `text` is not an
/// object or a key would need unescaping. Values are skipped, not
/// validated (the text is the store's own encoding): strings by their
/// quotes and escapes, the rest by bracket depth.
fn top_level_members(
    text: &str,
    mut each: impl FnMut(&str, Range<usize>) -> bool,
) -> Option<Walked> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Some(Walked::To(i));
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i)?;
        let key = &text[i + 1..key_end - 1];
        if key.contains('\\') {
            return None;
        }
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return None;
        }
        let start = skip_ws(b, i + 1);
        i = start;
        let mut depth = 0usize;
        let stop = loop {
            match *b.get(i)? {
                b'"' => i = string_end(b, i)?,
                b'{' | b'[' => {
                    depth += 1;
                    i += 1;
                }
                c @ (b'}' | b']') => {
                    if depth == 0 {
                        break c;
                    }
                    depth -= 1;
                    i += 1;
                }
                b',' if depth == 0 => break b',',
                _ => i += 1,
            }
        };
        let mut value_end = i;
        while value_end > start && b[value_end - 1].is_ascii_whitespace() {
            value_end -= 1;
        }
        if value_end == start {
            return None;
        }
        if each(key, start..value_end) {
            return Some(Walked::Stopped(i));
        }
        match stop {
            b',' => i = skip_ws(b, i + 1),
            b'}' => return Some(Walked::To(i)),
            _ => return None,
        }
    }
}

/// Where the JSON string starting at the quote `b[at]` ends (just past its
/// closing quote).
fn string_end(b: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', &b[i..])?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
        if i > b.len() {
            return None;
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// JSON text of a scalar, exactly as serde_json writes it inside a struct.
fn json_text<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Appends `rows` as a JSON array of `EventResponse`s (spliced where the
/// stored JSON allows, decoded otherwise).
pub(crate) fn push_events(
    out: &mut String,
    rows: &[EventJson],
    results: &ProcessingResults,
) -> Result<(), ApiError> {
    out.push('[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if !splice_response(out, row) {
            out.push_str(&decoded_response(row)?);
        }
        if let Some(r) = leading_event_id(&row.body).and_then(|id| results.get(&id))
            && out.ends_with('}')
        {
            out.pop();
            out.push_str(",\"processing_results\":");
            out.push_str(&serde_json::to_string(r).map_err(ApiError::internal)?);
            out.push('}');
        }
    }
    out.push(']');
    Ok(())
}

/// What processors made of a page's events, by event.
pub(crate) type ProcessingResults = HashMap<EventId, Vec<ProcessorResult>>;

/// The event id a stored body starts with (the canonical event serialises
/// it first); `None` for any other layout.
pub(crate) fn leading_event_id(body: &str) -> Option<EventId> {
    let rest = body.strip_prefix("{\"event_id\":\"")?;
    EventId::parse(rest.get(..36)?).ok()
}

/// The results of `rows`' events, read in one query per 500 events.
pub(crate) async fn results_of(
    store: &herald_store::Store,
    rows: &[EventJson],
) -> Result<ProcessingResults, ApiError> {
    let ids: Vec<EventId> = rows
        .iter()
        .filter_map(|r| leading_event_id(&r.body))
        .collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(store.processing_results(&ids).await?)
}

/// The slow path: decode the row and serialise its `EventResponse`.
pub(crate) fn decoded_response(row: &EventJson) -> Result<String, ApiError> {
    let mut event =
        herald_core::codec::json::decode(row.body.as_bytes()).map_err(ApiError::internal)?;
    event.status = row.status;
    let processed_at = row
        .processed_at
        .as_deref()
        .map(Timestamp::parse)
        .transpose()
        .map_err(ApiError::internal)?;
    let stored = StoredEvent {
        event,
        processed_at,
        processing_ms: row.processing_ms,
    };
    serde_json::to_string(&EventResponse::stored(&stored)).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use herald_core::{
        EmailHasher, EventProcessor, EventStatus, ProcessingContext, TenantId, Timestamp,
    };
    use herald_store::{EventJson, StoredEvent};

    use super::*;

    /// The spliced answer is byte-for-byte what serialising the decoded
    /// event gives, for rows with and without the optional parts.
    #[test]
    fn spliced_rows_equal_the_decoded_response_exactly() {
        let tenant = TenantId::parse("acme").unwrap();
        let hasher = EmailHasher::new(b"k");
        let ctx = ProcessingContext {
            tenant_id: &tenant,
            email_hasher: &hasher,
            processing_timestamp: Timestamp::now(),
            ids: &herald_core::SequentialIds::default(),
            traceparent: None,
        };
        let bodies = [
            serde_json::json!({"event_type": "a", "category": "system"}),
            serde_json::json!({"event_type": "b", "category": "business", "user_id": "u-\"quoted\"\n", "data": {"status": "x", "processing_timestamp": "nope"},
                               "metadata": {"k": "\",\"status\":\"pending\"}"}, "idempotency_key": "k1", "schema_version": 3}),
            serde_json::json!({"event_type": "c", "category": "security", "actor": {"user_id": ""}, "stream_id": "order:1"}),
            serde_json::json!({"event_type": "d", "event_category": "order", "data": {"event_category": null}}),
        ];
        for body in bodies {
            let event = EventProcessor::default()
                .process_value(body, &ctx)
                .unwrap()
                .event;
            for (status, processed_at, processing_ms) in [
                (EventStatus::Pending, None, None),
                (EventStatus::Processed, Some(Timestamp::now()), Some(0.0123)),
                (EventStatus::Failed, Some(Timestamp::now()), Some(12.0)),
            ] {
                let row = EventJson {
                    body: String::from_utf8(herald_core::codec::json::encode(&event)).unwrap(),
                    status,
                    user_id: event.actor.user_id.clone().filter(|u| !u.is_empty()),
                    processed_at: processed_at.map(|t| t.to_string()),
                    processing_ms,
                };
                let mut spliced = String::new();
                assert!(splice_response(&mut spliced, &row));
                let mut decoded = event.clone();
                decoded.status = status;
                let want = serde_json::to_string(&EventResponse::stored(&StoredEvent {
                    event: decoded,
                    processed_at,
                    processing_ms,
                }))
                .unwrap();
                assert_eq!(spliced, want);
                assert_eq!(decoded_response(&row).unwrap(), want);
            }
        }
        // A body not in the expected shape is left to the slow path.
        let odd = EventJson {
            body: "{\"a\":1}".into(),
            status: EventStatus::Pending,
            user_id: None,
            processed_at: None,
            processing_ms: None,
        };
        assert!(!splice_response(&mut String::new(), &odd));
    }

    /// Only the top-level `status` is replaced, wherever it stands, and the
    /// nested ones (`outcome.status`, keys inside strings and payloads) are
    /// left alone: the splice does not depend on the codec's field order.
    #[test]
    fn the_top_level_status_is_replaced_wherever_it_stands() {
        let body = r#"{"status":"pending","outcome":{"status":"success"},"data":{"s":"\",\"status\":\"x\"}","status":["a"]},"processing_timestamp":"2025-01-01T00:00:00Z","event_category":"order","z":[{"}":"{"}]}"#;
        let row = EventJson {
            body: body.into(),
            status: EventStatus::Processed,
            user_id: Some("u".into()),
            processed_at: None,
            processing_ms: None,
        };
        let mut out = String::new();
        assert!(splice_response(&mut out, &row));
        let want = body.replacen(r#""status":"pending""#, r#""status":"processed""#, 1);
        let want = format!(
            r#"{},"user_id":"u","created_at":"2025-01-01T00:00:00Z"}}"#,
            want.strip_suffix('}').unwrap()
        );
        assert_eq!(out, want);
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed["outcome"]["status"], "success");
        assert_eq!(parsed["data"]["status"], serde_json::json!(["a"]));

        // Without a top-level status or processing_timestamp, or not an
        // object at all, the row is left to the slow path.
        for odd in [
            r#"{"outcome":{"status":"x"},"processing_timestamp":"t"}"#,
            r#"{"status":"pending"}"#,
            r#"["status"]"#,
            r#"{"status":"pending","processing_timestamp":"t""#,
        ] {
            let row = EventJson {
                body: odd.into(),
                ..row.clone()
            };
            assert!(!splice_response(&mut String::new(), &row), "{odd}");
        }
    }

    /// The early stop after `processing_timestamp` gives what walking the
    /// whole object gives, `event_category` after it included.
    #[test]
    fn the_early_stop_agrees_with_the_whole_walk() {
        for (body, has_event_category) in [
            (r#"{"processing_timestamp":"t","status":"pending"}"#, false),
            (
                r#"{"event_category":"order","processing_timestamp":"t","status":"pending"}"#,
                true,
            ),
            (
                r#"{"processing_timestamp":"t","event_category":"order","status":"pending"}"#,
                true,
            ),
            (
                r#"{"processing_timestamp":"t","data":{"event_category":"x"},"status":"pending"}"#,
                false,
            ),
            (
                r#"{"processing_timestamp":"t","data":"\",\"event_category\":\"x","status":"pending"}"#,
                false,
            ),
            (
                r#"{"status":"pending","processing_timestamp":"t","event_category":"order"}"#,
                true,
            ),
        ] {
            let found = Layout::find(body).unwrap_or_else(|| panic!("{body}"));
            let walked = Layout::walk(body, None).unwrap();
            assert_eq!(found, walked, "{body}");
            assert_eq!(found.has_event_category, has_event_category, "{body}");
            assert_eq!(&body[found.created.clone()], "\"t\"");
            assert_eq!(&body[found.status.clone()], "\"pending\"");
            assert_eq!(found.end, body.len() - 1);
        }
    }
}
