//! `GET /api/v1/events/statistics` and `…/statistics/timeseries`: counts,
//! distributions, rates, top users and event types, and counts per time
//! bucket, filtered with the event query's filter fields (as query
//! parameters). They are read from the rollups the store keeps from the
//! commit log, plus the events not folded in yet, so they are exact; a
//! filter the rollups cannot answer (status, correlation keys, part
//! fields, `q`, …) is counted from the events and the answer says so.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use chrono::{Datelike, Offset, TimeZone};
use herald_core::filter::{self, EventFilter, Parsed};
use herald_core::{FieldError, TenantId, Timestamp};
use herald_store::{Dims, Level, Measures, Scope, SeriesRow, Tallies};
use serde_json::{Map, Value, json};

use crate::App;
use crate::api::tail::{filter_params, p, param_value};
use crate::http::auth::Principal;
use crate::http::params::{self, Param, ParamKind, Params};
use crate::http::problem::ApiError;

/// Users and event types listed by default in the top lists.
const TOP_DEFAULT: usize = 10;
/// The most a top list may ask for.
const TOP_MAX: usize = 100;
/// The most buckets one timeseries answers.
pub const MAX_BUCKETS: i64 = 10_000;

/// The query's filter fields, status and `q` included (the rollups do
/// not keep them: such requests are counted from the events), then
/// `$extra`.
macro_rules! counted_params {
    ($($extra:expr),* $(,)?) => {
        filter_params!(
            p!("status", String, "Statuses, comma-separated (counted from the events)"),
            p!("statuses", String, "Same as status"),
            p!("q", String, "Full-text terms, all of which must occur (counted from the events)"),
            $($extra),*
        )
    };
}

pub const STATISTICS_PARAMS: &[Param] = counted_params!(
    p!(
        "tz",
        String,
        "Time zone for events_today/this_week/this_month: an IANA name (Europe/Berlin) or an offset (+05:30); default UTC"
    ),
    p!(
        "top",
        Integer,
        "How many top users and event types (1..=100, default 10)"
    ),
);

pub const TIMESERIES_PARAMS: &[Param] = counted_params!(
    p!(
        "interval",
        String,
        "Bucket width: 1m, 1h or 1d (default 1h); buckets are aligned to it in UTC"
    ),
    p!(
        "group_by",
        String,
        "Counts per bucket by category, event_type, event_source or status (default: totals only)"
    ),
);

pub async fn statistics(
    State(app): State<App>,
    principal: Principal,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let key = principal.require(Scope::Read)?;
    let (mut params, mut errors) = params::parse(&uri, STATISTICS_PARAMS);
    let tz = params
        .take("tz")
        .map(|t| Zone::parse(&t, &mut errors))
        .unwrap_or(Zone::Utc);
    let top = top_param(params.take("top"), &mut errors);
    let filter = parse_filter(&params, "tz, top", &mut errors);
    params::check(errors)?;
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let mut filter = filter;
    tenant.filter_as_stored(&mut filter);

    let store = &app.store;
    let tenant_id = &key.tenant_id;
    let now = app.clock.now().unix_micros();
    let (today, week, month) = tz.periods(now);
    // The parts are independent reads: side by side.
    let (all, users, day, wk, mo) = tokio::join!(
        store.stats_tallies(tenant_id, &filter),
        store.stats_top_users(tenant_id, &filter),
        period_events(&app, tenant_id, &filter, today, tz.next_day(today)),
        period_events(&app, tenant_id, &filter, week, tz.next_week(week)),
        period_events(&app, tenant_id, &filter, month, tz.next_month(month)),
    );
    let (all, users) = (all?, users?);
    let in_period = [day?, wk?, mo?];
    let total = all.total();
    let pct = |n: i64| {
        if total.events == 0 {
            0.0
        } else {
            round3(n as f64 * 100.0 / total.events as f64)
        }
    };
    let mut by_type: BTreeMap<&str, i64> = BTreeMap::new();
    for (d, m) in &all.by_dims {
        *by_type.entry(d.event_type.as_str()).or_default() += m.events;
    }
    let mut top_types: Vec<(&str, i64)> = by_type.iter().map(|(k, v)| (*k, *v)).collect();
    top_types.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top_types.truncate(top);
    Ok(Json(json!({
        "total_events": total.events,
        "pending_events": total.pending(),
        "processed_events": total.processed,
        "failed_events": total.failed,
        "events_by_source": distribution(&all, |d| &d.event_source),
        "events_by_category": distribution(&all, |d| &d.category),
        "events_by_event_category": distribution(&all, |d| &d.event_category),
        "events_by_type": distribution(&all, |d| &d.event_type),
        "events_today": in_period[0],
        "events_this_week": in_period[1],
        "events_this_month": in_period[2],
        "average_processing_time": (total.processed > 0)
            .then(|| round3(total.processing_ms / total.processed as f64)),
        "processing_rate": pct(total.processed),
        "error_rate": pct(total.failed),
        "top_users": users.top(top).into_iter().map(|h| json!({
            "user_id": h.item, "events": h.count, "max_error": users.error,
        })).collect::<Vec<_>>(),
        "top_users_exact": users.is_exact(),
        "top_event_types": top_types.into_iter().map(|(t, n)| json!({"event_type": t, "events": n})).collect::<Vec<_>>(),
        "time_zone": tz.name(),
        "computed_from": source(&all),
        "rollup_lag_events": all.lag_events,
        "generated_at": Timestamp::from(app.clock.now().as_offset_date_time()).to_rfc3339(),
    })))
}

pub async fn timeseries(
    State(app): State<App>,
    principal: Principal,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let key = principal.require(Scope::Read)?;
    let (mut params, mut errors) = params::parse(&uri, TIMESERIES_PARAMS);
    let interval = params.take("interval");
    let level = match interval.as_deref().unwrap_or("1h") {
        "1m" => Level::Minute,
        "1h" => Level::Hour,
        "1d" => Level::Day,
        _ => {
            errors.push(params::bad("interval", "expected 1m, 1h or 1d"));
            Level::Hour
        }
    };
    let group_by = params.take("group_by");
    let group = match group_by.as_deref() {
        None => Some(Group::None),
        Some("category") => Some(Group::Category),
        Some("event_type") => Some(Group::EventType),
        Some("event_source") => Some(Group::EventSource),
        Some("status") => Some(Group::Status),
        Some(_) => {
            errors.push(params::bad(
                "group_by",
                "expected category, event_type, event_source or status",
            ));
            None
        }
    };
    // Half-open `[start_time, end_time)`: parsed here, not as the filter's
    // inclusive range.
    let w = level.width();
    let now = app.clock.now().unix_micros();
    let end = time_param(params.take("end_time"), "end_time", &mut errors)
        .unwrap_or_else(|| now - now.rem_euclid(w) + w);
    let default_span = match level {
        Level::Minute => 60,
        Level::Hour => 24,
        _ => 30,
    };
    let start = time_param(params.take("start_time"), "start_time", &mut errors)
        .unwrap_or(end - default_span * w);
    let filter = parse_filter(&params, "interval, group_by", &mut errors);
    if start >= end {
        errors.push(params::bad("end_time", "must be after start_time"));
    } else {
        let first = start - start.rem_euclid(w);
        let buckets = (end - first + w - 1) / w;
        if buckets > MAX_BUCKETS {
            errors.push(params::bad(
                "start_time",
                format!(
                    "the range holds {buckets} buckets of {}; at most {MAX_BUCKETS} per request: narrow the range or widen the interval",
                    interval.as_deref().unwrap_or("1h")
                ),
            ));
        }
    }
    params::check(errors)?;
    let group = group.unwrap_or(Group::None);
    let tenant = app.tenant_context(&key.tenant_id).await?;
    let mut filter = filter;
    tenant.filter_as_stored(&mut filter);
    let rows = app
        .store
        .stats_timeseries(&key.tenant_id, &filter, level, start, end)
        .await?;
    let from_rollups = herald_store::rollups_answer(&filter);
    // Every bucket of the range, empty ones too: what a chart draws.
    let mut buckets: BTreeMap<i64, (i64, BTreeMap<String, i64>)> = BTreeMap::new();
    let mut b = start - start.rem_euclid(w);
    while b < end {
        let mut groups = BTreeMap::new();
        if group == Group::Status {
            for s in ["pending", "processed", "failed"] {
                groups.insert(s.to_string(), 0);
            }
        }
        buckets.insert(b, (0, groups));
        b += w;
    }
    for SeriesRow {
        bucket,
        dims,
        measures,
    } in rows
    {
        let Some((total, groups)) = buckets.get_mut(&bucket) else {
            continue;
        };
        *total += measures.events;
        group.add(&dims, &measures, groups);
    }
    Ok(Json(json!({
        "interval": interval.as_deref().unwrap_or("1h"),
        "group_by": group_by,
        "start_time": herald_store::micros(start).to_rfc3339(),
        "end_time": herald_store::micros(end).to_rfc3339(),
        "computed_from": if from_rollups { "rollups" } else { "events" },
        "buckets": buckets.into_iter().map(|(b, (total, groups))| {
            let mut o = Map::new();
            o.insert("start".into(), json!(herald_store::micros(b).to_rfc3339()));
            o.insert("total".into(), json!(total));
            if group != Group::None {
                o.insert("groups".into(), json!(groups));
            }
            Value::Object(o)
        }).collect::<Vec<_>>(),
    })))
}

/// The answers' OpenAPI schemas.
pub fn schemas() -> Value {
    let int = json!({ "type": "integer" });
    let counts = json!({ "type": "object", "additionalProperties": { "type": "integer" } });
    let source = json!({ "type": "string", "enum": ["rollups", "events"],
        "description": "rollups: read from the rollups plus the events not folded in yet; events: counted from the events (a filter the rollups do not keep)" });
    json!({
        "Statistics": { "type": "object", "additionalProperties": false,
            "required": ["total_events", "pending_events", "processed_events", "failed_events", "events_by_source",
                "events_by_category", "events_by_event_category", "events_by_type", "events_today", "events_this_week",
                "events_this_month", "average_processing_time", "processing_rate", "error_rate", "top_users",
                "top_users_exact", "top_event_types", "time_zone", "computed_from", "rollup_lag_events", "generated_at"],
            "properties": {
                "total_events": int, "pending_events": { "type": "integer", "description": "not yet processed or failed (pending or processing)" },
                "processed_events": int, "failed_events": int,
                "events_by_source": counts, "events_by_category": counts,
                "events_by_event_category": { "type": "object", "additionalProperties": { "type": "integer" }, "description": "`none` counts events without one" },
                "events_by_type": counts,
                "events_today": int, "events_this_week": { "type": "integer", "description": "since Monday 00:00 in time_zone" },
                "events_this_month": int,
                "average_processing_time": { "type": ["number", "null"], "description": "milliseconds, over processed events; null when none is" },
                "processing_rate": { "type": "number", "description": "percent of the events that are processed" },
                "error_rate": { "type": "number", "description": "percent of the events that failed" },
                "top_users": { "type": "array", "items": { "type": "object", "additionalProperties": false,
                    "required": ["user_id", "events", "max_error"], "properties": {
                        "user_id": { "type": "string" },
                        "events": { "type": "integer", "description": "a lower bound: the true count is at most events + max_error" },
                        "max_error": { "type": "integer", "description": "0 when the count is exact; at most 1/129 of the events with a user" } } } },
                "top_users_exact": { "type": "boolean" },
                "top_event_types": { "type": "array", "items": { "type": "object", "additionalProperties": false,
                    "required": ["event_type", "events"], "properties": { "event_type": { "type": "string" }, "events": int } } },
                "time_zone": { "type": "string" },
                "computed_from": source,
                "rollup_lag_events": { "type": "integer", "description": "events committed but not yet folded into the rollups (counted from the events instead)" },
                "generated_at": { "type": "string", "format": "date-time" },
            } },
        "Timeseries": { "type": "object", "additionalProperties": false,
            "required": ["interval", "group_by", "start_time", "end_time", "computed_from", "buckets"],
            "properties": {
                "interval": { "type": "string", "enum": ["1m", "1h", "1d"] },
                "group_by": { "type": ["string", "null"], "enum": ["category", "event_type", "event_source", "status", null] },
                "start_time": { "type": "string", "format": "date-time" },
                "end_time": { "type": "string", "format": "date-time", "description": "exclusive" },
                "computed_from": source,
                "buckets": { "type": "array", "items": { "type": "object", "additionalProperties": false,
                    "required": ["start", "total"], "properties": {
                        "start": { "type": "string", "format": "date-time" },
                        "total": int,
                        "groups": { "type": "object", "additionalProperties": { "type": "integer" },
                            "description": "with group_by: the bucket's events per value (status: pending, processed, failed)" } } } },
            } },
    })
}

/// What a timeseries counts per bucket besides the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    None,
    Category,
    EventType,
    EventSource,
    Status,
}

impl Group {
    fn add(self, d: &Dims, m: &Measures, groups: &mut BTreeMap<String, i64>) {
        let mut bump = |k: &str, n: i64| {
            if n != 0 {
                *groups.entry(k.to_string()).or_default() += n;
            }
        };
        match self {
            Group::None => {}
            Group::Category => bump(&d.category, m.events),
            Group::EventType => bump(&d.event_type, m.events),
            Group::EventSource => bump(&d.event_source, m.events),
            Group::Status => {
                bump("pending", m.pending());
                bump("processed", m.processed);
                bump("failed", m.failed);
            }
        }
    }
}

/// The events of `filter` with event time in `[start, end)` (intersected
/// with the filter's own range).
async fn period_events(
    app: &App,
    tenant: &TenantId,
    filter: &EventFilter,
    start: i64,
    end: i64,
) -> Result<i64, ApiError> {
    let mut f = filter.clone();
    let from = f.start_time.map_or(start, |t| t.unix_micros().max(start));
    let to = f
        .end_time
        .map_or(end, |t| t.unix_micros().saturating_add(1).min(end));
    if from >= to {
        return Ok(0);
    }
    f.start_time = Some(herald_store::micros(from));
    f.end_time = Some(herald_store::micros(to - 1));
    Ok(app.store.stats_tallies(tenant, &f).await?.total().events)
}

fn parse_filter(params: &Params, others: &str, errors: &mut Vec<FieldError>) -> EventFilter {
    let mut body = Map::new();
    for (name, value) in params.iter() {
        body.insert(name.to_string(), param_value(name, value, errors));
    }
    filter::parse_with(&body, others, |_, _, _| Parsed::Unknown, errors)
}

fn top_param(v: Option<String>, errors: &mut Vec<FieldError>) -> usize {
    match v.map(|v| v.parse::<usize>()) {
        None => TOP_DEFAULT,
        Some(Ok(n)) if (1..=TOP_MAX).contains(&n) => n,
        Some(_) => {
            errors.push(params::bad(
                "top",
                format!("expected an integer in 1..={TOP_MAX}"),
            ));
            TOP_DEFAULT
        }
    }
}

fn time_param(v: Option<String>, name: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
    let v = v?;
    match Timestamp::parse(&v) {
        Ok(t) => Some(t.unix_micros()),
        Err(e) => {
            errors.push(params::bad(
                name,
                format!("expected an RFC 3339 timestamp (2026-01-31T12:00:00Z): {e}"),
            ));
            None
        }
    }
}

fn distribution(all: &Tallies, key: impl Fn(&Dims) -> &String) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for (d, m) in &all.by_dims {
        let k = key(d);
        let k = if k.is_empty() { "none" } else { k.as_str() };
        *out.entry(k.to_string()).or_default() += m.events;
    }
    out
}

fn source(all: &Tallies) -> &'static str {
    if all.from_rollups {
        "rollups"
    } else {
        "events"
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The caller's time zone for "today", "this week" (from Monday) and "this
/// month".
#[derive(Debug, Clone)]
enum Zone {
    Utc,
    Named(chrono_tz::Tz),
    Fixed(chrono::FixedOffset),
}

impl Zone {
    fn parse(v: &str, errors: &mut Vec<FieldError>) -> Zone {
        if v.eq_ignore_ascii_case("utc") || v == "Z" {
            return Zone::Utc;
        }
        if let Ok(tz) = v.parse::<chrono_tz::Tz>() {
            return Zone::Named(tz);
        }
        if let Some(off) = fixed_offset(v) {
            return Zone::Fixed(off);
        }
        errors.push(params::bad(
            "tz",
            format!(
                "`{v}` is not a time zone: give an IANA name (Europe/Berlin) or an offset (+05:30)"
            ),
        ));
        Zone::Utc
    }

    fn name(&self) -> String {
        match self {
            Zone::Utc => "UTC".into(),
            Zone::Named(tz) => tz.name().into(),
            Zone::Fixed(off) => off.to_string(),
        }
    }

    /// The instant local midnight of `date` is (the first instant of the
    /// day when a shift skips midnight), in µs.
    fn midnight(&self, date: chrono::NaiveDate) -> i64 {
        let local = date.and_time(chrono::NaiveTime::MIN);
        let at = |r: chrono::LocalResult<chrono::DateTime<chrono::FixedOffset>>| {
            r.earliest()
                .map(|t| t.timestamp_micros())
                .unwrap_or_else(|| local.and_utc().timestamp_micros())
        };
        match self {
            Zone::Utc => local.and_utc().timestamp_micros(),
            Zone::Named(tz) => tz
                .from_local_datetime(&local)
                .earliest()
                .or_else(|| {
                    tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                        .earliest()
                })
                .map(|t| t.timestamp_micros())
                .unwrap_or_else(|| local.and_utc().timestamp_micros()),
            Zone::Fixed(off) => at(off.from_local_datetime(&local)),
        }
    }

    /// The local date at `us`.
    fn date_at(&self, us: i64) -> chrono::NaiveDate {
        let utc = chrono::DateTime::from_timestamp_micros(us).unwrap_or_default();
        match self {
            Zone::Utc => utc.date_naive(),
            Zone::Named(tz) => {
                let off = tz.offset_from_utc_datetime(&utc.naive_utc()).fix();
                utc.with_timezone(&off).date_naive()
            }
            Zone::Fixed(off) => utc.with_timezone(off).date_naive(),
        }
    }

    /// The starts of today, this week and this month at `now`.
    fn periods(&self, now: i64) -> (i64, i64, i64) {
        let d = self.date_at(now);
        let week = d - chrono::Days::new(u64::from(d.weekday().num_days_from_monday()));
        let month = d.with_day(1).unwrap_or(d);
        (self.midnight(d), self.midnight(week), self.midnight(month))
    }

    fn next_day(&self, start: i64) -> i64 {
        self.midnight(self.date_at(start) + chrono::Days::new(1))
    }

    fn next_week(&self, start: i64) -> i64 {
        self.midnight(self.date_at(start) + chrono::Days::new(7))
    }

    fn next_month(&self, start: i64) -> i64 {
        let d = self.date_at(start);
        self.midnight(d + chrono::Months::new(1))
    }
}

/// `+05:30`, `-08:00`, `+0530`.
fn fixed_offset(v: &str) -> Option<chrono::FixedOffset> {
    let (sign, rest) = match v.as_bytes().first()? {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    if h > 18 || m > 59 {
        return None;
    }
    chrono::FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().unix_micros()
    }

    #[test]
    fn periods_start_at_local_midnight_monday_and_the_first() {
        let mut errors = Vec::new();
        let berlin = Zone::parse("Europe/Berlin", &mut errors);
        let kolkata = Zone::parse("+05:30", &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        // Thursday 2026-12-10, 23:30 UTC: already Friday in Berlin.
        let now = us("2026-12-10T23:30:00Z");
        let (day, week, month) = berlin.periods(now);
        assert_eq!(day, us("2026-12-11T00:00:00+01:00"));
        assert_eq!(week, us("2026-12-07T00:00:00+01:00"));
        assert_eq!(month, us("2026-12-01T00:00:00+01:00"));
        assert_eq!(berlin.next_month(month), us("2027-01-01T00:00:00+01:00"));
        let (day, _, _) = kolkata.periods(now);
        assert_eq!(day, us("2026-12-11T00:00:00+05:30"));
        let (day, week, _) = Zone::Utc.periods(now);
        assert_eq!(day, us("2026-12-10T00:00:00Z"));
        assert_eq!(Zone::Utc.next_week(week), us("2026-12-14T00:00:00Z"));
    }

    #[test]
    fn a_day_across_a_clock_change_is_23_hours_long() {
        let mut errors = Vec::new();
        let berlin = Zone::parse("Europe/Berlin", &mut errors);
        let start = us("2026-03-29T00:00:00+01:00");
        assert_eq!(berlin.next_day(start) - start, 23 * 3_600_000_000);
    }

    #[test]
    fn a_bad_zone_is_named() {
        let mut errors = Vec::new();
        Zone::parse("Mars/Olympus", &mut errors);
        Zone::parse("+25:00", &mut errors);
        assert_eq!(errors.len(), 2);
        assert!(errors[0].message.contains("IANA"));
    }
}
