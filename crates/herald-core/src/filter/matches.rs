//! The event filter decided in memory, for one stored event: what the
//! store's SQL (`herald-store`'s `query.rs`) selects, field for field, so
//! a reader that already holds an event (the live tail) need not ask the
//! database. Two things are left out, and [`EventFilter::in_memory_gaps`]
//! names them so callers can refuse them: full text (`q`: the backends'
//! tokenisers, FTS5 and `tsvector`, decide what a term is) and `status`
//! (the store compares the event's *current* processing status, which
//! changes after commit; here only the status as stored in the event is
//! known).
//!
//! A field filter (`actor.role = "admin"`) matches a JSON string equal to
//! its value. The backends differ on non-string values (PostgreSQL
//! compares their text, SQLite never matches them); in memory only
//! strings match, as on SQLite.

use serde::Serialize;
use serde_json::Value;

use super::{EventFilter, EventPart, FieldFilter};
use crate::event::CanonicalEvent;

/// A filter field [`EventFilter::matches`] cannot decide as the store does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InMemoryGap {
    /// `q`: full-text terms.
    Text,
    /// `status` / `statuses`: the current processing status.
    Status,
}

impl EventFilter {
    /// The fields of this filter that [`EventFilter::matches`] ignores.
    pub fn in_memory_gaps(&self) -> Vec<InMemoryGap> {
        let mut gaps = Vec::new();
        if self.text.is_some() {
            gaps.push(InMemoryGap::Text);
        }
        if !self.statuses.is_empty() {
            gaps.push(InMemoryGap::Status);
        }
        gaps
    }

    /// Whether the store would select `e` (an event as stored: values
    /// redacted, as the filter's values must be too), deciding every field
    /// but the ones [`EventFilter::in_memory_gaps`] names, which are
    /// ignored.
    pub fn matches(&self, e: &CanonicalEvent) -> bool {
        // Destructured so that a new filter field cannot be left out here.
        let EventFilter {
            event_types,
            event_sources,
            event_categories,
            categories,
            statuses: _,
            start_time,
            end_time,
            keys,
            fields,
            outcome_status,
            environment,
            service,
            stream_id,
            text: _,
        } = self;
        let ts = e.timestamp.unix_micros();
        any_of(event_types, |t| t == e.event_type.as_str())
            && any_of(event_sources, |s| *s == e.event_source)
            && any_of(event_categories, |c| Some(*c) == e.event_category)
            && any_of(categories, |c| *c == e.category)
            && outcome_status.is_none_or(|s| s == e.outcome.status)
            && environment
                .as_deref()
                .is_none_or(|v| v == e.context.environment)
            && service
                .as_deref()
                .is_none_or(|v| e.context.service.as_deref() == Some(v))
            && stream_id
                .as_deref()
                .is_none_or(|v| e.stream_id.as_ref().map(|s| s.as_str()) == Some(v))
            && keys.iter().all(|(k, v)| k.value_in(e) == Some(v.as_str()))
            && start_time.is_none_or(|t| ts >= t.unix_micros())
            && end_time.is_none_or(|t| ts <= t.unix_micros())
            && fields.iter().all(|f| field_matches(f, e))
    }
}

fn any_of<T>(values: &[T], hit: impl Fn(&T) -> bool) -> bool {
    values.is_empty() || values.iter().any(hit)
}

/// `part.key` of the event as its stored JSON has it (typed and extra keys
/// alike) is the string `value`.
fn field_matches(f: &FieldFilter, e: &CanonicalEvent) -> bool {
    let part = match f.part {
        EventPart::Actor => as_json(&e.actor),
        EventPart::Object => as_json(&e.object),
        EventPart::Context => as_json(&e.context),
        EventPart::Outcome => as_json(&e.outcome),
    };
    matches!(part.get(&f.key), Some(Value::String(s)) if *s == f.value)
}

fn as_json(part: &impl Serialize) -> Value {
    serde_json::to_value(part).unwrap_or(Value::Null)
}
