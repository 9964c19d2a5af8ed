//! Herald's event columns on PostgreSQL as arrays, one per column: bound
//! whole to an `UNNEST` by the group commit, or row by row to the storage
//! floor's `COPY`. One array per column is a handful of allocations per
//! batch, not per event.

use herald_core::CanonicalEvent;
use herald_core::correlation::CorrelationKey;
use tokio_postgres::types::ToSql;

use super::clean;
use crate::rows::search_text;

/// `INSERT INTO events ... SELECT ... FROM {source} AS u(...)`: the events
/// insert from any row source with Herald's event columns in this order.
pub(crate) fn insert_events_from(source: &str) -> String {
    format!(
        "INSERT INTO events (event_id, tenant_id, ts, processing_ts, category, event_category, \
event_type, event_source, status, outcome_status, trace_id, span_id, correlation_id, request_id, order_id, \
session_id, ticket_id, user_id, email_hash, environment, service, stream_id, stream_version, idempotency_key, \
body, search) \
SELECT u.event_id, u.tenant_id, u.ts, u.processing_ts, u.category, u.event_category, u.event_type, u.event_source, \
u.status, u.outcome_status, u.trace_id, u.span_id, u.correlation_id, u.request_id, u.order_id, u.session_id, \
u.ticket_id, u.user_id, u.email_hash, u.environment, u.service, u.stream_id, u.stream_version, u.idempotency_key, \
u.body::json, to_tsvector('simple', u.search) \
FROM {source} AS u(event_id, tenant_id, ts, processing_ts, category, event_category, event_type, event_source, status, \
outcome_status, trace_id, span_id, correlation_id, request_id, order_id, session_id, ticket_id, user_id, \
email_hash, environment, service, stream_id, stream_version, idempotency_key, body, search)"
    )
}

/// The arrays `Columns::params` binds, as a row source.
pub(crate) const UNNEST_COLUMNS: &str = "UNNEST($1::uuid[], $2::text[], $3::int8[], $4::int8[], $5::text[], $6::text[], \
$7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], \
$16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::int8[], $24::text[], \
$25::text[], $26::text[])";

/// Herald's event columns as arrays: bound whole to `UNNEST_COLUMNS`, or
/// row by row to the floor's `COPY`.
pub(crate) struct Columns {
    event_id: Vec<uuid::Uuid>,
    tenant_id: Vec<String>,
    ts: Vec<i64>,
    processing_ts: Vec<i64>,
    category: Vec<&'static str>,
    event_category: Vec<Option<&'static str>>,
    event_type: Vec<String>,
    event_source: Vec<&'static str>,
    status: Vec<&'static str>,
    outcome_status: Vec<&'static str>,
    keys: [Vec<Option<String>>; 9],
    environment: Vec<String>,
    service: Vec<Option<String>>,
    stream_id: Vec<Option<String>>,
    stream_version: Vec<Option<i64>>,
    idempotency_key: Vec<Option<String>>,
    body: Vec<String>,
    search: Vec<String>,
}

impl Columns {
    pub(crate) fn of(events: &[&CanonicalEvent]) -> Columns {
        let n = events.len();
        let opt = |s: &Option<String>| s.as_deref().map(clean);
        let mut c = Columns {
            event_id: Vec::with_capacity(n),
            tenant_id: Vec::with_capacity(n),
            ts: Vec::with_capacity(n),
            processing_ts: Vec::with_capacity(n),
            category: Vec::with_capacity(n),
            event_category: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            event_source: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            outcome_status: Vec::with_capacity(n),
            keys: std::array::from_fn(|_| Vec::with_capacity(n)),
            environment: Vec::with_capacity(n),
            service: Vec::with_capacity(n),
            stream_id: Vec::with_capacity(n),
            stream_version: Vec::with_capacity(n),
            idempotency_key: Vec::with_capacity(n),
            body: Vec::with_capacity(n),
            search: Vec::with_capacity(n),
        };
        for e in events {
            c.event_id.push(*e.event_id.as_uuid());
            c.tenant_id.push(e.tenant_id.as_str().to_string());
            c.ts.push(e.timestamp.unix_micros());
            c.processing_ts.push(e.processing_timestamp.unix_micros());
            c.category.push(e.category.as_str());
            c.event_category.push(e.event_category.map(|x| x.as_str()));
            c.event_type.push(clean(e.event_type.as_str()));
            c.event_source.push(e.event_source.as_str());
            c.status.push(e.status.as_str());
            c.outcome_status.push(e.outcome.status.as_str());
            for (i, k) in CorrelationKey::ALL.into_iter().enumerate() {
                c.keys[i].push(k.value_in(e).map(clean));
            }
            c.environment.push(clean(&e.context.environment));
            c.service.push(opt(&e.context.service));
            c.stream_id
                .push(e.stream_id.as_ref().map(|s| clean(s.as_str())));
            c.stream_version.push(e.stream_version.map(|v| v as i64));
            c.idempotency_key.push(opt(&e.idempotency_key));
            // serde_json escapes every control character, NUL included.
            c.body.push(serde_json::to_string(e).unwrap_or_default());
            c.search.push(clean(&search_text(e)));
        }
        c
    }

    #[cfg(any(test, feature = "bench"))]
    pub(crate) fn row(&self, i: usize) -> Vec<&(dyn ToSql + Sync)> {
        let mut r: Vec<&(dyn ToSql + Sync)> = vec![
            &self.event_id[i],
            &self.tenant_id[i],
            &self.ts[i],
            &self.processing_ts[i],
            &self.category[i],
            &self.event_category[i],
            &self.event_type[i],
            &self.event_source[i],
            &self.status[i],
            &self.outcome_status[i],
        ];
        r.extend(self.keys.iter().map(|k| &k[i] as &(dyn ToSql + Sync)));
        r.extend([
            &self.environment[i] as &(dyn ToSql + Sync),
            &self.service[i],
            &self.stream_id[i],
            &self.stream_version[i],
            &self.idempotency_key[i],
            &self.body[i],
            &self.search[i],
        ]);
        r
    }

    pub(crate) fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut p: Vec<&(dyn ToSql + Sync)> = vec![
            &self.event_id,
            &self.tenant_id,
            &self.ts,
            &self.processing_ts,
            &self.category,
            &self.event_category,
            &self.event_type,
            &self.event_source,
            &self.status,
            &self.outcome_status,
        ];
        p.extend(self.keys.iter().map(|k| k as &(dyn ToSql + Sync)));
        p.extend([
            &self.environment as &(dyn ToSql + Sync),
            &self.service,
            &self.stream_id,
            &self.stream_version,
            &self.idempotency_key,
            &self.body,
            &self.search,
        ]);
        p
    }
}
