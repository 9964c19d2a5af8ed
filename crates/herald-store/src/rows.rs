//! Turning stored columns back into values, shared by both backends: each
//! backend reads its row into plain strings and numbers, and these
//! functions do the rest (and name what is corrupt when they cannot).

use herald_core::correlation::CorrelationKey;
use herald_core::{CanonicalEvent, EventId, EventStatus, Timestamp};
use herald_registry::EventDefinition;

use crate::records::*;

pub(crate) fn corrupt<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A JSON column's text.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    corrupt(serde_json::to_string(v))
}

pub(crate) fn event_id_from(bytes: &[u8]) -> Result<EventId, StoreError> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("event id of {} bytes", bytes.len())))?;
    corrupt(EventId::from_bytes(bytes))
}

pub(crate) fn decode_body(body: &str) -> Result<CanonicalEvent, StoreError> {
    herald_core::codec::json::decode(body.as_bytes())
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn status(s: &str) -> Result<EventStatus, StoreError> {
    EventStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("status `{s}`")))
}

/// A stored event from its body and the columns that change after storing.
pub(crate) fn stored_event(
    body: &str,
    status_text: &str,
    processed_at: Option<String>,
    processing_ms: Option<f64>,
) -> Result<StoredEvent, StoreError> {
    let mut event = decode_body(body)?;
    event.status = status(status_text)?;
    let processed_at = processed_at
        .map(|t| corrupt(Timestamp::parse(&t)))
        .transpose()?;
    Ok(StoredEvent {
        event,
        processed_at,
        processing_ms,
    })
}

/// The text full-text search indexes for `q`: the type, outcome, context
/// and ids, and every string in `data`, capped so one event cannot bloat
/// the index.
pub(crate) fn search_text(e: &CanonicalEvent) -> String {
    const CAP: usize = 8 * 1024;
    let mut out = String::with_capacity(256);
    let mut push = |s: &str| {
        if out.len() + s.len() < CAP {
            out.push_str(s);
            out.push(' ');
        }
    };
    push(e.event_type.as_str());
    for s in [
        &e.outcome.error_class,
        &e.outcome.error_code,
        &e.outcome.message,
        &e.context.service,
        &e.context.endpoint,
    ]
    .into_iter()
    .flatten()
    {
        push(s);
    }
    for k in CorrelationKey::ALL {
        if let Some(v) = k.value_in(e) {
            push(v);
        }
    }
    fn strings<'a>(v: &'a serde_json::Value, push: &mut impl FnMut(&'a str)) {
        match v {
            serde_json::Value::String(s) => push(s),
            serde_json::Value::Array(a) => a.iter().for_each(|v| strings(v, push)),
            serde_json::Value::Object(m) => m.values().for_each(|v| strings(v, push)),
            _ => {}
        }
    }
    strings(&e.data, &mut push);
    out
}

/// The columns of an `event_definitions` row, in `DEFINITION_COLUMNS` order.
pub(crate) const DEFINITION_COLUMNS: &str = "definition_id, version, event_type, category, event_category, name, description, \
payload_schema, allowed_sources, examples, ui, compatibility, created_at, updated_at";

/// One `event_definitions` row as read, before parsing.
#[derive(Debug)]
pub(crate) struct DefinitionRow {
    pub id: String,
    pub version: u32,
    pub event_type: String,
    pub category: String,
    pub event_category: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub schema: Option<String>,
    pub sources: String,
    pub examples: String,
    pub ui: String,
    pub compatibility: Option<String>,
    pub created: String,
    pub updated: String,
}

impl DefinitionRow {
    pub(crate) fn parse(self) -> Result<EventDefinition, StoreError> {
        fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
            corrupt(serde_json::from_str(s))
        }
        let category = self.category;
        Ok(EventDefinition {
            definition_id: self.id,
            version: self.version,
            event_type: corrupt(herald_registry::TypePattern::parse(&self.event_type))?,
            category: herald_core::Category::parse(&category)
                .ok_or_else(|| StoreError::Corrupt(format!("category `{category}`")))?,
            event_category: self
                .event_category
                .map(|c| {
                    herald_core::EventCategory::parse(&c)
                        .ok_or_else(|| StoreError::Corrupt(format!("event_category `{c}`")))
                })
                .transpose()?,
            name: self.name,
            description: self.description,
            payload_schema: self.schema.map(|s| json(&s)).transpose()?,
            allowed_sources: json(&self.sources)?,
            examples: json(&self.examples)?,
            ui: json(&self.ui)?,
            compatibility: self.compatibility.map(|s| json(&s)).transpose()?,
            builtin: false,
            created_at: corrupt(Timestamp::parse(&self.created))?,
            updated_at: corrupt(Timestamp::parse(&self.updated))?,
        })
    }
}

/// The values of a definition version as stored, in `DEFINITION_COLUMNS`
/// order after `tenant_id`, plus `is_pattern`.
pub(crate) struct DefinitionValues {
    pub id: String,
    pub version: u32,
    pub event_type: String,
    pub is_pattern: bool,
    pub category: &'static str,
    pub event_category: Option<&'static str>,
    pub name: String,
    pub description: Option<String>,
    pub schema: Option<String>,
    pub sources: String,
    pub examples: String,
    pub ui: String,
    pub compatibility: Option<String>,
    pub created: String,
    pub updated: String,
}

impl DefinitionValues {
    pub(crate) fn of(d: &EventDefinition) -> Result<DefinitionValues, StoreError> {
        Ok(DefinitionValues {
            id: d.definition_id.clone(),
            version: d.version,
            event_type: d.event_type.as_str().to_string(),
            is_pattern: d.event_type.is_pattern(),
            category: d.category.as_str(),
            event_category: d.event_category.map(|c| c.as_str()),
            name: d.name.clone(),
            description: d.description.clone(),
            schema: d.payload_schema.as_ref().map(to_json).transpose()?,
            sources: to_json(&d.allowed_sources)?,
            examples: to_json(&d.examples)?,
            ui: to_json(&d.ui)?,
            compatibility: d.compatibility.as_ref().map(to_json).transpose()?,
            created: d.created_at.to_string(),
            updated: d.updated_at.to_string(),
        })
    }

    /// The message for a uniqueness conflict on this version.
    pub(crate) fn conflict(&self, tenant: &str) -> StoreError {
        StoreError::Conflict(if self.version == 1 {
            format!(
                "tenant {tenant} already has a definition for `{}`",
                self.event_type
            )
        } else {
            format!(
                "definition {} already has a version {}",
                self.id, self.version
            )
        })
    }
}
