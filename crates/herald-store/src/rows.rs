//! Turning stored rows back into values, written once for both backends:
//! each backend exposes its row through [`RowAccess`] (by column index, in
//! the order of the column lists here) and these mappers do the rest, naming
//! what is corrupt when they cannot.

use herald_core::correlation::CorrelationKey;
use herald_core::{CanonicalEvent, EventId, EventStatus, TenantId, Timestamp};
use herald_registry::EventDefinition;

use crate::records::*;

/// One result row, read by column index.
pub(crate) trait RowAccess {
    fn text(&self, i: usize) -> Result<String, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;
    /// Any integer column, whatever its width.
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError>;
    fn event_id(&self, i: usize) -> Result<EventId, StoreError>;
    fn opt_event_id(&self, i: usize) -> Result<Option<EventId>, StoreError>;
}

pub(crate) fn corrupt<T, E: std::error::Error + Send + Sync + 'static>(
    r: Result<T, E>,
) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Corrupt {
        context: "a stored value does not decode".into(),
        source: Some(e.into()),
    })
}

/// A JSON column's text.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    corrupt(serde_json::to_string(v))
}

pub(crate) fn event_id_from(bytes: &[u8]) -> Result<EventId, StoreError> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| StoreError::corrupt(format!("event id of {} bytes", bytes.len())))?;
    corrupt(EventId::from_bytes(bytes))
}

pub(crate) fn decode_body(body: &str) -> Result<CanonicalEvent, StoreError> {
    corrupt(herald_core::codec::json::decode(body.as_bytes()))
}

pub(crate) fn status(s: &str) -> Result<EventStatus, StoreError> {
    EventStatus::parse(s).ok_or_else(|| StoreError::corrupt(format!("status `{s}`")))
}

fn timestamp(s: &str) -> Result<Timestamp, StoreError> {
    Timestamp::parse(s).map_err(|e| StoreError::corrupt(format!("timestamp `{s}`: {e}")))
}

fn tenant_id(s: String) -> Result<TenantId, StoreError> {
    TenantId::parse(&s).map_err(|e| StoreError::corrupt(format!("tenant id `{s}`: {e}")))
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
    let processed_at = processed_at.map(|t| timestamp(&t)).transpose()?;
    Ok(StoredEvent {
        event,
        processed_at,
        processing_ms,
    })
}

/// A row starting with `body, status, processed_at, processing_ms` (an
/// event read or a query page row).
pub(crate) fn stored_event_row(r: &impl RowAccess) -> Result<StoredEvent, StoreError> {
    stored_event(&r.text(0)?, &r.text(1)?, r.opt_text(2)?, r.opt_float(3)?)
}

/// A query page row (`body, status, processed_at, processing_ms, ts, seq,
/// user_id`) left as stored JSON.
pub(crate) fn event_json_row(r: &impl RowAccess) -> Result<EventJson, StoreError> {
    Ok(EventJson {
        body: r.text(0)?,
        status: status(&r.text(1)?)?,
        processed_at: r.opt_text(2)?,
        processing_ms: r.opt_float(3)?,
        user_id: r.opt_text(6)?,
    })
}

/// One page of a query, gathered row by row: the statement asks for one
/// row more than the page holds, to know whether there are more.
pub(crate) struct PageRows<T> {
    limit: usize,
    events: Vec<T>,
    last: Option<Cursor>,
    has_more: bool,
}

impl<T> PageRows<T> {
    pub(crate) fn new(limit: usize) -> PageRows<T> {
        PageRows {
            limit,
            events: Vec::with_capacity(limit.min(128)),
            last: None,
            has_more: false,
        }
    }

    /// Takes one page row (`ts` at 4, `seq` at 5); `false` once the page
    /// is full and the rest need not be read.
    pub(crate) fn push<R: RowAccess>(
        &mut self,
        row: &R,
        map: impl Fn(&R) -> Result<T, StoreError>,
    ) -> Result<bool, StoreError> {
        if self.events.len() == self.limit {
            self.has_more = true;
            return Ok(false);
        }
        self.events.push(map(row)?);
        self.last = Some(Cursor {
            ts_micros: row.int(4)?,
            seq: row.int(5)?,
        });
        Ok(true)
    }

    /// The page, with what the count statement said.
    pub(crate) fn finish(self, counted: i64, exact_total: bool) -> Page<T> {
        Page::assemble(
            self.events,
            counted.max(0) as u64,
            exact_total,
            self.has_more,
            self.last,
        )
    }
}

/// The columns [`audit_row`] reads, after `seq`.
pub(crate) const AUDIT_COLUMNS: &str = "seq, at, tenant_id, key_id, operation, resource, outcome, status_code, request_id, duration_us, detail";

/// An audit row in [`AUDIT_COLUMNS`] order, with its `seq`.
pub(crate) fn audit_row(r: &impl RowAccess) -> Result<(i64, AuditRecord), StoreError> {
    let outcome = r.text(6)?;
    Ok((
        r.int(0)?,
        AuditRecord {
            at: timestamp(&r.text(1)?)?,
            tenant_id: r.opt_text(2)?,
            key_id: r.opt_text(3)?,
            operation: r.text(4)?,
            resource: r.text(5)?,
            outcome: outcome
                .parse()
                .map_err(|e| StoreError::corrupt(format!("{e}")))?,
            status_code: u16::try_from(r.int(7)?)
                .map_err(|_| StoreError::corrupt("audit status code out of range"))?,
            request_id: r.text(8)?,
            duration_us: r.int(9)?.max(0) as u64,
            detail: r.opt_text(10)?,
        },
    ))
}

pub(crate) const TENANT_COLUMNS: &str = "tenant_id, name, created_at";

pub(crate) fn tenant_row(r: &impl RowAccess) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        tenant_id: tenant_id(r.text(0)?)?,
        name: r.text(1)?,
        created_at: timestamp(&r.text(2)?)?,
    })
}

/// A key's columns, less its secret's hash (the caller looked it up by it).
pub(crate) const KEY_COLUMNS: &str = "key_id, tenant_id, name, scopes, created_at, collect";

pub(crate) fn api_key_row(r: &impl RowAccess, hash: [u8; 32]) -> Result<ApiKey, StoreError> {
    let key_id = r.text(0)?;
    let scopes = r.text(3)?;
    let (scopes, unknown) = split_scopes(&scopes);
    if !unknown.is_empty() {
        // A newer Herald wrote scopes this one does not know: the key keeps
        // only the rights this version can name, never more.
        tracing::warn!(key_id = %key_id, ?unknown, "key has stored scopes this Herald does not know; ignoring them");
    }
    Ok(ApiKey {
        key_id,
        tenant_id: tenant_id(r.text(1)?)?,
        name: r.text(2)?,
        scopes,
        secret_hash: hash,
        created_at: timestamp(&r.text(4)?)?,
        collect: match r.opt_text(5)? {
            Some(json) => corrupt(serde_json::from_str(&json))?,
            None => KeyCollect::default(),
        },
    })
}

/// A key's scopes as stored: their names, comma-separated.
pub(crate) fn join_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The scopes stored in `text`, and the names that are no scope.
pub(crate) fn split_scopes(text: &str) -> (Vec<Scope>, Vec<&str>) {
    let mut scopes = Vec::new();
    let mut unknown = Vec::new();
    for name in text.split(',').filter(|n| !n.is_empty()) {
        match Scope::parse(name) {
            Some(s) => scopes.push(s),
            None => unknown.push(name),
        }
    }
    (scopes, unknown)
}

/// `seq, event_id, tenant_id, category, event_type, body, stream_id,
/// stream_version`: the commit log.
pub(crate) fn sequenced_row(r: &impl RowAccess) -> Result<SequencedEvent, StoreError> {
    Ok(SequencedEvent {
        seq: r.int(0)?,
        event_id: r.event_id(1)?,
        tenant_id: r.text(2)?,
        category: r.text(3)?,
        event_type: r.text(4)?,
        body: r.text(5)?,
        stream: match (r.opt_text(6)?, r.opt_int(7)?) {
            (Some(id), Some(v)) => Some((id, v as u64)),
            _ => None,
        },
    })
}

/// `id, tenant_id, event_id, kind, payload` of the lifecycle outbox.
pub(crate) fn pending_lifecycle_row(r: &impl RowAccess) -> Result<PendingLifecycle, StoreError> {
    let kind = r.text(3)?;
    Ok(PendingLifecycle {
        id: r.int(0)?,
        record: LifecycleRecord {
            tenant_id: r.text(1)?,
            event_id: r.opt_event_id(2)?,
            kind: kind
                .parse()
                .map_err(|e| StoreError::corrupt(format!("{e}")))?,
            payload: r.text(4)?,
        },
    })
}

/// A tenant's settings from their stored JSON; the defaults when none.
pub(crate) fn settings_from(stored: Option<String>) -> Result<TenantSettings, StoreError> {
    match stored {
        Some(s) => corrupt(serde_json::from_str(&s)),
        None => Ok(TenantSettings::default()),
    }
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

/// The columns [`definition_row`] reads, in its order.
pub(crate) const DEFINITION_COLUMNS: &str = "definition_id, version, event_type, category, event_category, name, description, \
payload_schema, allowed_sources, examples, ui, compatibility, created_at, updated_at, projection";

/// An `event_definitions` row in [`DEFINITION_COLUMNS`] order.
pub(crate) fn definition_row(r: &impl RowAccess) -> Result<EventDefinition, StoreError> {
    fn json<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, StoreError> {
        corrupt(serde_json::from_str(s))
    }
    let category = r.text(3)?;
    Ok(EventDefinition {
        definition_id: r.text(0)?,
        version: u32::try_from(r.int(1)?)
            .map_err(|_| StoreError::corrupt("definition version out of range"))?,
        event_type: {
            let t = r.text(2)?;
            herald_registry::TypePattern::parse(&t)
                .map_err(|e| StoreError::corrupt(format!("definition type `{t}`: {e}")))?
        },
        category: herald_core::Category::parse(&category)
            .ok_or_else(|| StoreError::corrupt(format!("category `{category}`")))?,
        event_category: r
            .opt_text(4)?
            .map(|c| {
                herald_core::EventCategory::parse(&c)
                    .ok_or_else(|| StoreError::corrupt(format!("event_category `{c}`")))
            })
            .transpose()?,
        name: r.text(5)?,
        description: r.opt_text(6)?,
        payload_schema: r.opt_text(7)?.map(|s| json(&s)).transpose()?,
        allowed_sources: json(&r.text(8)?)?,
        examples: json(&r.text(9)?)?,
        ui: json(&r.text(10)?)?,
        compatibility: r.opt_text(11)?.map(|s| json(&s)).transpose()?,
        builtin: false,
        created_at: timestamp(&r.text(12)?)?,
        updated_at: timestamp(&r.text(13)?)?,
        projection: r.opt_text(14)?.map(|s| json(&s)).transpose()?,
    })
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
    pub projection: Option<String>,
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
            projection: d.projection.as_ref().map(to_json).transpose()?,
        })
    }

    /// The conflict a uniqueness violation on this version means.
    pub(crate) fn conflict(&self, tenant: &str) -> StoreError {
        StoreError::Conflict(if self.version == 1 {
            ConflictReason::DefinitionExists {
                tenant_id: tenant.to_string(),
                event_type: self.event_type.clone(),
            }
        } else {
            ConflictReason::DefinitionVersionExists {
                definition_id: self.id.clone(),
                version: self.version,
            }
        })
    }
}

/// The insert of one definition version: `tenant_id`, then the columns of
/// [`DefinitionValues`] in order, as `?` placeholders.
pub(crate) const INSERT_DEFINITION: &str = "INSERT INTO event_definitions (tenant_id, definition_id, version, \
event_type, is_pattern, category, event_category, name, description, payload_schema, allowed_sources, examples, ui, \
compatibility, created_at, updated_at, projection) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The columns [`subscription_row`] reads, in its order.
pub(crate) const SUBSCRIPTION_COLUMNS: &str = "subscription_id, tenant_id, spec, secret, previous_secret, \
previous_secret_expires_at, created_at, updated_at";

/// A `subscriptions` row in [`SUBSCRIPTION_COLUMNS`] order.
pub(crate) fn subscription_row(r: &impl RowAccess) -> Result<Subscription, StoreError> {
    Ok(Subscription {
        subscription_id: r.text(0)?,
        tenant_id: tenant_id(r.text(1)?)?,
        spec: corrupt(serde_json::from_str(&r.text(2)?))?,
        secret: r.text(3)?,
        previous_secret: r.opt_text(4)?,
        previous_secret_expires_at: r.opt_text(5)?.map(|t| timestamp(&t)).transpose()?,
        created_at: timestamp(&r.text(6)?)?,
        updated_at: timestamp(&r.text(7)?)?,
    })
}

/// The insert of one subscription: the values of [`SubscriptionValues`]
/// in order, as `?` placeholders.
pub(crate) const INSERT_SUBSCRIPTION: &str = "INSERT INTO subscriptions (subscription_id, tenant_id, \
subscriber_name, enabled, spec, secret, previous_secret, previous_secret_expires_at, created_at, updated_at) \
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// A definition change: `subscriber_name, enabled, spec, updated_at`, then
/// `tenant_id, subscription_id`. A changed definition (turned back on,
/// say) starts its run of delivery failures afresh.
pub(crate) fn update_subscription_sql() -> String {
    format!(
        "UPDATE subscriptions SET subscriber_name = ?, enabled = ?, spec = ?, updated_at = ?, \
         failing_since = NULL \
         WHERE tenant_id = ? AND subscription_id = ? RETURNING {SUBSCRIPTION_COLUMNS}"
    )
}

/// A rotation: `secret, previous_secret_expires_at, updated_at`, then
/// `tenant_id, subscription_id`. The current secret becomes the previous
/// one (SQL reads the row's old values on the right of `SET`).
pub(crate) fn rotate_subscription_sql() -> String {
    format!(
        "UPDATE subscriptions SET previous_secret = secret, secret = ?, previous_secret_expires_at = ?, \
         updated_at = ? WHERE tenant_id = ? AND subscription_id = ? RETURNING {SUBSCRIPTION_COLUMNS}"
    )
}

/// One subscription by tenant and id.
pub(crate) fn get_subscription_sql() -> String {
    format!(
        "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant_id = ? AND subscription_id = ?"
    )
}

/// A subscription's values as stored, in [`INSERT_SUBSCRIPTION`] order.
pub(crate) struct SubscriptionValues {
    pub id: String,
    pub tenant: String,
    pub name: String,
    pub enabled: bool,
    pub spec: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_expires: Option<String>,
    pub created: String,
    pub updated: String,
}

impl SubscriptionValues {
    pub(crate) fn of(s: &Subscription) -> Result<SubscriptionValues, StoreError> {
        Ok(SubscriptionValues {
            id: s.subscription_id.clone(),
            tenant: s.tenant_id.to_string(),
            name: s.spec.subscriber_name.clone(),
            enabled: s.spec.enabled,
            spec: to_json(&s.spec)?,
            secret: s.secret.clone(),
            previous_secret: s.previous_secret.clone(),
            previous_expires: s.previous_secret_expires_at.map(|t| t.to_string()),
            created: s.created_at.to_string(),
            updated: s.updated_at.to_string(),
        })
    }
}

/// The conflict a uniqueness violation on a subscription write means: the
/// name is taken (ids are minted unique).
pub(crate) fn subscription_name_taken(tenant: &str, name: &str) -> StoreError {
    StoreError::Conflict(ConflictReason::SubscriptionNameExists {
        tenant_id: tenant.to_string(),
        subscriber_name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_unknown_stored_names_are_reported_not_kept() {
        let text = join_scopes(&[Scope::Ingest, Scope::Manage]);
        assert_eq!(text, "ingest,manage");
        assert_eq!(
            split_scopes(&text),
            (vec![Scope::Ingest, Scope::Manage], vec![])
        );
        assert_eq!(
            split_scopes("read,teleport,collect"),
            (vec![Scope::Read, Scope::Collect], vec!["teleport"])
        );
        assert_eq!(split_scopes(""), (vec![], vec![]));
    }
}
