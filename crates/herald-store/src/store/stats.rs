//! Statistics from rollups, exact, written once for both backends.
//!
//! **Rollups.** `stats_rollups` holds, per tenant, rollup level (minute,
//! hour, day, all time), bucket of event time and dimension (event type,
//! source, category, event category), how many events there are and how
//! many of them are processed and failed, and the processed ones'
//! processing time. The rollup follower ([`Store::roll_up`]) folds events
//! in commit order from the durable cursor `rollups` and moves the cursor
//! in the same transaction. A status change of an event the follower has
//! already counted adjusts the rollups in the transaction that changes the
//! status ([`finish_delta`], [`after_finish`]); on PostgreSQL that
//! statement reads the cursor `FOR SHARE`, so a follower step and a status
//! change never miss or double each other. An event the follower has not
//! reached is counted with the status it has when it is reached.
//!
//! **Top users** are per (hour, day, all time) bucket and dimension a
//! mergeable Misra–Gries summary ([`herald_core::topk`]) of `user_id`:
//! exact while a bucket has at most 128 users, otherwise each count is at
//! most `error` below the truth, and `error` ≤ 1/129 of the events summed.
//!
//! **Answers** read the rollups for the aligned part of a time range, the
//! events themselves for the unaligned edges (less than a minute, or an
//! hour for users, on each side), and the events committed after the
//! cursor (the tail) — so an answer is exact at the moment it is read,
//! whatever the follower's lag. A request whose filter the rollups cannot
//! answer (status, correlation keys, actor/object fields, text, …) is
//! counted from the events, exactly, and says so.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use herald_core::TenantId;
use herald_core::filter::EventFilter;
use herald_core::topk::{DEFAULT_CAPACITY, TopK};

use crate::query::{self, Arg, Dialect, Guarded, SeqBound, Stmt};
use crate::{Store, StoreError};

/// The rollup follower's cursor.
pub const ROLLUP_CURSOR: &str = "rollups";

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 86_400_000_000;

/// A rollup level: how wide its buckets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Minute = 0,
    Hour = 1,
    Day = 2,
    /// One bucket (0) for all time.
    All = 3,
}

impl Level {
    /// A bucket's width in µs; 0 for [`Level::All`].
    pub fn width(self) -> i64 {
        match self {
            Level::Minute => MINUTE,
            Level::Hour => HOUR,
            Level::Day => DAY,
            Level::All => 0,
        }
    }

    /// The bucket `ts` (µs) falls in.
    pub fn bucket(self, ts: i64) -> i64 {
        match self.width() {
            0 => 0,
            w => floor(ts, w),
        }
    }
}

fn floor(ts: i64, w: i64) -> i64 {
    ts - ts.rem_euclid(w)
}

fn ceil(ts: i64, w: i64) -> i64 {
    let f = floor(ts, w);
    if f == ts { f } else { f + w }
}

/// How a time range `[start, end)` is read: whole rollup buckets, and the
/// edges left over, read from the events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cover {
    /// `(level, first bucket, end)`: the level's buckets in `[first, end)`.
    pub rollups: Vec<(Level, i64, i64)>,
    /// Half-open ranges of event time read from the events.
    pub edges: Vec<(i64, i64)>,
}

/// Covers `[start, end)` with the fewest buckets of `levels` (finest
/// first, each dividing the next), leaving the rest as edges.
pub fn cover(start: i64, end: i64, levels: &[Level]) -> Cover {
    let mut out = Cover::default();
    if start >= end {
        return out;
    }
    let Some(finest) = levels.first() else {
        out.edges.push((start, end));
        return out;
    };
    let w = finest.width();
    let (a, b) = (ceil(start, w), floor(end, w));
    if a > b {
        // Inside one bucket.
        out.edges.push((start, end));
        return out;
    }
    if start < a {
        out.edges.push((start, a));
    }
    if b < end {
        out.edges.push((b, end));
    }
    if a < b {
        inner(a, b, levels, &mut out.rollups);
    }
    out
}

/// `[a, b)`, aligned to `levels[0]`, in buckets.
fn inner(a: i64, b: i64, levels: &[Level], out: &mut Vec<(Level, i64, i64)>) {
    let level = levels[0];
    let Some(coarser) = levels.get(1).filter(|l| l.width() > 0) else {
        out.push((level, a, b));
        return;
    };
    let w = coarser.width();
    let (a2, b2) = (ceil(a, w), floor(b, w));
    if a2 >= b2 {
        out.push((level, a, b));
        return;
    }
    if a < a2 {
        out.push((level, a, a2));
    }
    if b2 < b {
        out.push((level, b2, b));
    }
    inner(a2, b2, &levels[1..], out);
}

/// The rollup dimensions of one group of events.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dims {
    pub event_type: String,
    pub event_source: String,
    pub category: String,
    /// Empty when the events have none.
    pub event_category: String,
}

/// What a group of events adds up to.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measures {
    pub events: i64,
    pub processed: i64,
    pub failed: i64,
    /// Summed over the processed events.
    pub processing_ms: f64,
}

impl Measures {
    pub fn add(&mut self, o: &Measures) {
        self.events += o.events;
        self.processed += o.processed;
        self.failed += o.failed;
        self.processing_ms += o.processing_ms;
    }

    /// Neither processed nor failed yet (pending or processing).
    pub fn pending(&self) -> i64 {
        self.events - self.processed - self.failed
    }
}

/// Statistics per dimension, and where they came from.
#[derive(Debug, Clone, Default)]
pub struct Tallies {
    pub by_dims: BTreeMap<Dims, Measures>,
    /// Read from the rollups (plus edges and tail), or counted from the
    /// events because the filter needs that.
    pub from_rollups: bool,
    /// Events committed but not yet folded into the rollups when read.
    pub lag_events: i64,
}

impl Tallies {
    pub fn total(&self) -> Measures {
        let mut m = Measures::default();
        for v in self.by_dims.values() {
            m.add(v);
        }
        m
    }
}

/// A timeseries point: a bucket start (µs), a dimension, what it adds up to.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRow {
    pub bucket: i64,
    pub dims: Dims,
    pub measures: Measures,
}

/// One event as the follower folds it.
struct Folded {
    seq: i64,
    tenant: String,
    ts: i64,
    dims: Dims,
    user_id: Option<String>,
}

/// A summary's place: tenant, level, bucket, dimension.
type Cell = (String, Level, i64, Dims);

impl Store {
    /// One step of the rollup follower: folds up to `limit` events
    /// committed after the `rollups` cursor into the rollups and moves the
    /// cursor, in one transaction; how many events it folded (0 when
    /// another instance moved the cursor first: nothing is applied twice).
    pub async fn roll_up(&self, limit: usize) -> Result<usize, StoreError> {
        let from = self.cursor(ROLLUP_CURSOR).await?;
        let rows = self
            .select(
                Stmt::new(
                    "SELECT seq, tenant_id, ts, event_type, event_source, category, COALESCE(event_category, ''), user_id \
                     FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    vec![Arg::Int(from), Arg::Int(limit.max(1) as i64)],
                ),
                |r| {
                    Ok(Folded {
                        seq: r.int(0)?,
                        tenant: r.text(1)?,
                        ts: r.int(2)?,
                        dims: Dims {
                            event_type: r.text(3)?,
                            event_source: r.text(4)?,
                            category: r.text(5)?,
                            event_category: r.text(6)?,
                        },
                        user_id: r.opt_text(7)?,
                    })
                },
            )
            .await?;
        let Some(to) = rows.last().map(|r| r.seq) else {
            return Ok(0);
        };
        // Users per summary cell; `user_id` never changes, so reading it
        // outside the transaction is safe.
        let mut cells: BTreeMap<Cell, HashMap<String, u64>> = BTreeMap::new();
        for r in &rows {
            let Some(user) = &r.user_id else { continue };
            for level in [Level::Hour, Level::Day, Level::All] {
                let cell = (r.tenant.clone(), level, level.bucket(r.ts), r.dims.clone());
                *cells
                    .entry(cell)
                    .or_default()
                    .entry(user.clone())
                    .or_default() += 1;
            }
        }
        // Only this follower writes summaries, and only while its cursor
        // move succeeds: what it reads here is what it replaces.
        let mut stored: HashMap<Cell, TopK> = HashMap::new();
        let buckets: BTreeSet<(String, Level, i64)> = cells
            .keys()
            .map(|(t, l, b, _)| (t.clone(), *l, *b))
            .collect();
        for (tenant, level, bucket) in buckets {
            let found = self
                .select(
                    Stmt::new(
                        "SELECT event_type, event_source, category, event_category, summary FROM stats_top_users \
                         WHERE tenant_id = ? AND level = ? AND bucket = ?",
                        vec![
                            Arg::Text(tenant.clone()),
                            Arg::Int(level as i64),
                            Arg::Int(bucket),
                        ],
                    ),
                    |r| Ok((dims_at(r, 0)?, r.text(4)?)),
                )
                .await?;
            for (dims, summary) in found {
                let summary = serde_json::from_str(&summary).map_err(|e| {
                    StoreError::corrupt(format!("a top-users summary does not decode: {e}"))
                })?;
                stored.insert((tenant.clone(), level, bucket, dims), summary);
            }
        }
        let mut then = vec![fold_stmt(from, to)];
        for (cell, counts) in cells {
            let mut summary = stored.remove(&cell).unwrap_or_default();
            summary.merge(&TopK::exact(counts), DEFAULT_CAPACITY);
            let json = serde_json::to_string(&summary)
                .map_err(|e| StoreError::invalid(format!("top-users summary: {e}")))?;
            let (tenant, level, bucket, d) = cell;
            then.push(Stmt::new(
                "INSERT INTO stats_top_users (tenant_id, level, bucket, event_type, event_source, category, event_category, summary) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, level, bucket, event_type, event_source, category, event_category) \
                 DO UPDATE SET summary = excluded.summary",
                vec![
                    Arg::Text(tenant),
                    Arg::Int(level as i64),
                    Arg::Int(bucket),
                    Arg::Text(d.event_type),
                    Arg::Text(d.event_source),
                    Arg::Text(d.category),
                    Arg::Text(d.event_category),
                    Arg::Text(json),
                ],
            ));
        }
        let guard = Stmt::new(
            "UPDATE publish_cursors SET seq = ? WHERE name = ? AND seq = ? RETURNING seq",
            vec![
                Arg::Int(to),
                Arg::Text(ROLLUP_CURSOR.into()),
                Arg::Int(from),
            ],
        );
        let ran = self
            .transact(vec![Guarded {
                guard: Some(guard),
                then,
            }])
            .await?;
        Ok(if ran == [true] { rows.len() } else { 0 })
    }

    /// The last `seq` the rollups have folded.
    pub async fn rollup_watermark(&self) -> Result<i64, StoreError> {
        self.cursor(ROLLUP_CURSOR).await
    }

    /// Events committed after the rollups' watermark.
    pub async fn rollup_lag(&self) -> Result<i64, StoreError> {
        let w = self.rollup_watermark().await?;
        let n = self
            .select(
                Stmt::new(
                    "SELECT COUNT(*) FROM events WHERE seq > ?",
                    vec![Arg::Int(w)],
                ),
                |r| r.int(0),
            )
            .await?;
        Ok(n.first().copied().unwrap_or(0))
    }

    /// The statistics of the tenant's events `filter` means, per
    /// dimension. See the module doc for how they are read.
    pub async fn stats_tallies(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
    ) -> Result<Tallies, StoreError> {
        if !rollups_answer(filter) {
            let rows = self.scan(tenant, filter, SeqBound::Any, 0).await?;
            return Ok(Tallies {
                by_dims: merge_rows(rows),
                from_rollups: false,
                lag_events: 0,
            });
        }
        // Read until no follower step committed meanwhile: the rollups and
        // the tail then meet exactly at the watermark.
        for _ in 0..5 {
            let w = self.rollup_watermark().await?;
            let mut rows = self.settled(tenant, filter, w).await?;
            let tail = self.scan(tenant, filter, SeqBound::After(w), 0).await?;
            let lag = tail.iter().map(|r| r.measures.events).sum();
            rows.extend(tail);
            if self.rollup_watermark().await? == w {
                return Ok(Tallies {
                    by_dims: merge_rows(rows),
                    from_rollups: true,
                    lag_events: lag,
                });
            }
        }
        let rows = self.scan(tenant, filter, SeqBound::Any, 0).await?;
        Ok(Tallies {
            by_dims: merge_rows(rows),
            from_rollups: false,
            lag_events: 0,
        })
    }

    /// The tenant's most active users among the events `filter` means: a
    /// summary whose counts are exact when its `error` is 0.
    pub async fn stats_top_users(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
    ) -> Result<TopK, StoreError> {
        if rollups_answer(filter) {
            for _ in 0..5 {
                let w = self.rollup_watermark().await?;
                let mut top = self.settled_users(tenant, filter, w).await?;
                let tail = self.users(tenant, filter, SeqBound::After(w)).await?;
                top.merge(&tail, DEFAULT_CAPACITY);
                if self.rollup_watermark().await? == w {
                    return Ok(top);
                }
            }
        }
        let mut top = self.users(tenant, filter, SeqBound::Any).await?;
        top.shrink(DEFAULT_CAPACITY);
        Ok(top)
    }

    /// Counts per bucket of `level` in `[start, end)` (µs), per dimension.
    /// Buckets are aligned to the level; the first and last hold only the
    /// part of them inside the range.
    pub async fn stats_timeseries(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        level: Level,
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        let w = level.width();
        let ranged = |a: i64, b: i64| with_range(filter, a, b);
        if !rollups_answer(filter) || w == 0 {
            return self
                .scan(tenant, &ranged(start, end), SeqBound::Any, w)
                .await;
        }
        let (a, b) = (ceil(start, w).min(end), floor(end, w).max(start));
        for _ in 0..5 {
            let mark = self.rollup_watermark().await?;
            let mut rows = Vec::new();
            if a < b {
                rows.extend(self.rollups(tenant, filter, &[(level, a, b)], true).await?);
            }
            // The partial buckets at either end, from finer rollups.
            for (from, to) in [(start, a.min(end)), (b.max(a).max(start), end)] {
                if from >= to {
                    continue;
                }
                let settled = self.settled(tenant, &ranged(from, to), mark).await?;
                rows.extend(settled.into_iter().map(|mut r| {
                    r.bucket = floor(from, w);
                    r
                }));
            }
            rows.extend(
                self.scan(tenant, &ranged(start, end), SeqBound::After(mark), w)
                    .await?,
            );
            if self.rollup_watermark().await? == mark {
                return Ok(rows);
            }
        }
        self.scan(tenant, &ranged(start, end), SeqBound::Any, w)
            .await
    }

    /// The statistics of events up to the watermark `w`: rollups for whole
    /// buckets, the events for the edges. Rows carry bucket 0.
    async fn settled(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        w: i64,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        let Some((start, end)) = self.range_of(tenant, filter).await? else {
            return self
                .rollups(tenant, filter, &[(Level::All, 0, 1)], false)
                .await;
        };
        let c = cover(start, end, &[Level::Minute, Level::Hour, Level::Day]);
        let mut rows = if c.rollups.is_empty() {
            Vec::new()
        } else {
            self.rollups(tenant, filter, &c.rollups, false).await?
        };
        for (a, b) in c.edges {
            rows.extend(
                self.scan(tenant, &with_range(filter, a, b), SeqBound::AtMost(w), 0)
                    .await?,
            );
        }
        Ok(rows)
    }

    /// The top-users summary of events up to the watermark `w`.
    async fn settled_users(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        w: i64,
    ) -> Result<TopK, StoreError> {
        let ranges = match self.range_of(tenant, filter).await? {
            None => Cover {
                rollups: vec![(Level::All, 0, 1)],
                edges: vec![],
            },
            Some((start, end)) => cover(start, end, &[Level::Hour, Level::Day]),
        };
        let mut top = TopK::default();
        if !ranges.rollups.is_empty() {
            let (cond, mut args) = query::rollup_dims(tenant.as_str(), filter);
            let (span, span_args) = ranges_sql(&ranges.rollups);
            args.extend(span_args);
            let summaries = self
                .select(
                    Stmt::new(
                        format!("SELECT summary FROM stats_top_users WHERE {cond} AND ({span})"),
                        args,
                    ),
                    |r| r.text(0),
                )
                .await?;
            for s in summaries {
                let s: TopK = serde_json::from_str(&s).map_err(|e| {
                    StoreError::corrupt(format!("a top-users summary does not decode: {e}"))
                })?;
                top.merge(&s, DEFAULT_CAPACITY);
            }
        }
        // The edges side by side (each may read up to an hour of events).
        let edges = futures_util::future::join_all(ranges.edges.iter().map(|&(a, b)| {
            let f = with_range(filter, a, b);
            async move { self.users(tenant, &f, SeqBound::AtMost(w)).await }
        }))
        .await;
        for edge in edges {
            top.merge(&edge?, DEFAULT_CAPACITY);
        }
        Ok(top)
    }

    /// `[start, end)` of the filter's time range, its open ends closed at
    /// the tenant's first and last day of rollups; `None` without a range.
    async fn range_of(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let (start, end) = (
            filter.start_time.map(|t| t.unix_micros()),
            // The filter's end is inclusive.
            filter.end_time.map(|t| t.unix_micros().saturating_add(1)),
        );
        if start.is_none() && end.is_none() {
            return Ok(None);
        }
        let (first, last) = match (start, end) {
            (Some(s), Some(e)) => (s, e),
            _ => {
                let span = self
                    .select(
                        Stmt::new(
                            "SELECT MIN(bucket), MAX(bucket) FROM stats_rollups WHERE tenant_id = ? AND level = 2",
                            vec![Arg::Text(tenant.to_string())],
                        ),
                        |r| Ok((r.opt_int(0)?, r.opt_int(1)?)),
                    )
                    .await?;
                let Some((Some(min), Some(max))) = span.first().copied() else {
                    return Ok(Some((0, 0)));
                };
                (start.unwrap_or(min), end.unwrap_or(max + DAY))
            }
        };
        Ok(Some((first, last.max(first))))
    }

    /// Sums of rollup rows over `ranges` for the filter's dimensions, per
    /// bucket when `by_bucket` (else bucket 0).
    async fn rollups(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        ranges: &[(Level, i64, i64)],
        by_bucket: bool,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        let (cond, mut args) = query::rollup_dims(tenant.as_str(), filter);
        let (span, span_args) = ranges_sql(ranges);
        args.extend(span_args);
        let (bucket, group) = if by_bucket {
            ("bucket", "bucket, ")
        } else {
            ("0", "")
        };
        let stmt = Stmt::new(
            format!(
                "SELECT {bucket}, event_type, event_source, category, event_category, \
                 CAST(SUM(events) AS BIGINT), CAST(SUM(processed) AS BIGINT), CAST(SUM(failed) AS BIGINT), \
                 SUM(processing_ms) FROM stats_rollups WHERE {cond} AND ({span}) \
                 GROUP BY {group}event_type, event_source, category, event_category"
            ),
            args,
        );
        self.select(stmt, series_row).await
    }

    /// Counted from the events themselves.
    async fn scan(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        seq: SeqBound,
        width: i64,
    ) -> Result<Vec<SeriesRow>, StoreError> {
        let stmt = query::tally(self.dialect(), tenant.as_str(), filter, seq, width);
        self.select(stmt, series_row).await
    }

    /// Exact user counts from the events themselves.
    async fn users(
        &self,
        tenant: &TenantId,
        filter: &EventFilter,
        seq: SeqBound,
    ) -> Result<TopK, StoreError> {
        let stmt = query::user_counts(self.dialect(), tenant.as_str(), filter, seq);
        let rows = self.select(stmt, |r| Ok((r.text(0)?, r.int(1)?))).await?;
        Ok(TopK::exact(
            rows.into_iter()
                .map(|(u, n)| (u, u64::try_from(n).unwrap_or(0)))
                .collect(),
        ))
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Store::Sqlite(_) => Dialect::Sqlite,
            Store::Postgres(_) => Dialect::Postgres,
        }
    }
}

/// Whether the rollups can answer `filter`: only the dimensions they keep
/// and a time range.
pub fn rollups_answer(filter: &EventFilter) -> bool {
    let EventFilter {
        event_types: _,
        event_sources: _,
        event_categories: _,
        categories: _,
        statuses,
        start_time: _,
        end_time: _,
        keys,
        fields,
        outcome_status,
        environment,
        service,
        stream_id,
        text,
    } = filter;
    statuses.is_empty()
        && keys.is_empty()
        && fields.is_empty()
        && outcome_status.is_none()
        && environment.is_none()
        && service.is_none()
        && stream_id.is_none()
        && text.is_none()
}

/// `filter` with the time range `[start, end)` instead of its own.
fn with_range(filter: &EventFilter, start: i64, end: i64) -> EventFilter {
    let mut f = filter.clone();
    f.start_time = Some(micros(start));
    // The filter's end is inclusive.
    f.end_time = Some(micros(end - 1));
    f
}

/// The instant `us` µs after the epoch, in UTC.
pub fn micros(us: i64) -> herald_core::Timestamp {
    herald_core::Timestamp::from_parts(
        us.div_euclid(1_000_000),
        (us.rem_euclid(1_000_000) * 1_000) as u32,
        0,
    )
    .unwrap_or_else(|_| herald_core::Timestamp::from(time::OffsetDateTime::UNIX_EPOCH))
}

/// `(level = ? AND bucket >= ? AND bucket < ?) OR …`.
fn ranges_sql(ranges: &[(Level, i64, i64)]) -> (String, Vec<Arg>) {
    let mut parts = Vec::with_capacity(ranges.len());
    let mut args = Vec::with_capacity(ranges.len() * 3);
    for &(level, a, b) in ranges {
        parts.push("(level = ? AND bucket >= ? AND bucket < ?)");
        args.extend([Arg::Int(level as i64), Arg::Int(a), Arg::Int(b)]);
    }
    (parts.join(" OR "), args)
}

fn dims_at(r: &dyn crate::rows::RowAccess, i: usize) -> Result<Dims, StoreError> {
    Ok(Dims {
        event_type: r.text(i)?,
        event_source: r.text(i + 1)?,
        category: r.text(i + 2)?,
        event_category: r.text(i + 3)?,
    })
}

fn series_row(r: &dyn crate::rows::RowAccess) -> Result<SeriesRow, StoreError> {
    Ok(SeriesRow {
        bucket: r.int(0)?,
        dims: dims_at(r, 1)?,
        measures: Measures {
            events: r.int(5)?,
            processed: r.int(6)?,
            failed: r.int(7)?,
            processing_ms: r.opt_float(8)?.unwrap_or(0.0),
        },
    })
}

fn merge_rows(rows: Vec<SeriesRow>) -> BTreeMap<Dims, Measures> {
    let mut out: BTreeMap<Dims, Measures> = BTreeMap::new();
    for r in rows {
        out.entry(r.dims).or_default().add(&r.measures);
    }
    out
}

/// The bucket of `e.ts` at the level `l` joined in.
const BUCKET: &str =
    "COALESCE(e.ts - (((e.ts % NULLIF(l.width, 0)) + l.width) % NULLIF(l.width, 0)), 0)";

const UPSERT: &str = "ON CONFLICT (tenant_id, level, bucket, event_type, event_source, category, event_category) \
     DO UPDATE SET events = stats_rollups.events + excluded.events, \
     processed = stats_rollups.processed + excluded.processed, \
     failed = stats_rollups.failed + excluded.failed, \
     processing_ms = stats_rollups.processing_ms + excluded.processing_ms";

/// Folds the events with `from < seq <= to`, at every level, with their
/// status now.
fn fold_stmt(from: i64, to: i64) -> Stmt {
    Stmt::new(
        format!(
            "INSERT INTO stats_rollups (tenant_id, level, bucket, event_type, event_source, category, event_category, \
             events, processed, failed, processing_ms) \
             SELECT e.tenant_id, l.level, {BUCKET}, e.event_type, e.event_source, e.category, COALESCE(e.event_category, ''), \
             COUNT(*), SUM(CASE WHEN e.status = 'processed' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN e.status = 'failed' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN e.status = 'processed' THEN COALESCE(e.processing_ms, 0.0) ELSE 0.0 END) \
             FROM events e CROSS JOIN rollup_levels l WHERE e.seq > ? AND e.seq <= ? \
             GROUP BY 1, 2, 3, 4, 5, 6, 7 {UPSERT}"
        ),
        vec![Arg::Int(from), Arg::Int(to)],
    )
}

/// The watermark, read so that a follower step and a status change are
/// ordered: `FOR SHARE` on PostgreSQL (the follower's move waits for the
/// change to commit, or the change for the move); the embedded store has
/// one writer.
fn watermark_sql(postgres: bool) -> String {
    format!(
        "(SELECT seq FROM publish_cursors WHERE name = '{ROLLUP_CURSOR}'{})",
        if postgres { " FOR SHARE" } else { "" }
    )
}

/// The rollup change of one event about to get `status` (`processed` or
/// `failed`) with `processing_ms`: run *before* the status update, in its
/// transaction; a no-op for events the follower has not reached.
pub(crate) fn finish_delta(
    postgres: bool,
    event: herald_core::EventId,
    status: herald_core::EventStatus,
    processing_ms: f64,
) -> Stmt {
    let processed = i64::from(status == herald_core::EventStatus::Processed);
    let failed = i64::from(status == herald_core::EventStatus::Failed);
    let ms = if processed == 1 { processing_ms } else { 0.0 };
    Stmt::new(
        format!(
            "INSERT INTO stats_rollups (tenant_id, level, bucket, event_type, event_source, category, event_category, \
             events, processed, failed, processing_ms) \
             SELECT e.tenant_id, l.level, {BUCKET}, e.event_type, e.event_source, e.category, COALESCE(e.event_category, ''), \
             0, SUM(? - CASE WHEN e.status = 'processed' THEN 1 ELSE 0 END), \
             SUM(? - CASE WHEN e.status = 'failed' THEN 1 ELSE 0 END), \
             SUM(? - CASE WHEN e.status = 'processed' THEN COALESCE(e.processing_ms, 0.0) ELSE 0.0 END) \
             FROM events e CROSS JOIN rollup_levels l WHERE e.event_id = ? AND e.seq <= {} \
             GROUP BY 1, 2, 3, 4, 5, 6, 7 {UPSERT}",
            watermark_sql(postgres)
        ),
        vec![
            Arg::Int(processed),
            Arg::Int(failed),
            Arg::Float(ms),
            Arg::EventId(event),
        ],
    )
}

/// The rollup change of events just moved from `pending` or `processing`
/// to the status they now have (run *after* the update, in its
/// transaction), by their `seq`s; a no-op for those the follower has not
/// reached.
pub(crate) fn after_finish(postgres: bool, seqs: &[i64]) -> Option<Stmt> {
    if seqs.is_empty() {
        return None;
    }
    Some(Stmt::new(
        format!(
            "INSERT INTO stats_rollups (tenant_id, level, bucket, event_type, event_source, category, event_category, \
             events, processed, failed, processing_ms) \
             SELECT e.tenant_id, l.level, {BUCKET}, e.event_type, e.event_source, e.category, COALESCE(e.event_category, ''), \
             0, SUM(CASE WHEN e.status = 'processed' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN e.status = 'failed' THEN 1 ELSE 0 END), \
             SUM(CASE WHEN e.status = 'processed' THEN COALESCE(e.processing_ms, 0.0) ELSE 0.0 END) \
             FROM events e CROSS JOIN rollup_levels l WHERE e.seq IN ({}) AND e.seq <= {} \
             GROUP BY 1, 2, 3, 4, 5, 6, 7 {UPSERT}",
            vec!["?"; seqs.len()].join(", "),
            watermark_sql(postgres)
        ),
        seqs.iter().map(|s| Arg::Int(*s)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LEVELS: [Level; 3] = [Level::Minute, Level::Hour, Level::Day];

    #[test]
    fn a_range_over_days_uses_days_hours_minutes_and_two_edges() {
        let start = DAY + 3 * HOUR + 5 * MINUTE + 7;
        let end = 4 * DAY + 2 * HOUR + 9 * MINUTE + 11;
        let c = cover(start, end, &LEVELS);
        assert_eq!(
            c.edges,
            vec![
                (start, DAY + 3 * HOUR + 6 * MINUTE),
                (4 * DAY + 2 * HOUR + 9 * MINUTE, end)
            ]
        );
        assert!(c.rollups.contains(&(Level::Day, 2 * DAY, 4 * DAY)));
        assert!(c.rollups.contains(&(Level::Hour, DAY + 4 * HOUR, 2 * DAY)));
        assert!(c.rollups.contains(&(
            Level::Minute,
            4 * DAY + 2 * HOUR,
            4 * DAY + 2 * HOUR + 9 * MINUTE
        )));
    }

    proptest! {
        /// A cover's buckets and edges partition the range exactly: every
        /// instant of `[start, end)` is in exactly one of them, and each
        /// rollup range is whole buckets of its level.
        #[test]
        fn a_cover_partitions_its_range(
            start in -3 * DAY..6 * DAY,
            len in 0i64..5 * DAY,
            probes in prop::collection::vec(0i64..5 * DAY, 1..40),
            hours_only in any::<bool>(),
        ) {
            let end = start + len;
            let levels: &[Level] = if hours_only { &[Level::Hour, Level::Day] } else { &LEVELS };
            let c = cover(start, end, levels);
            let mut total = 0;
            for &(level, a, b) in &c.rollups {
                prop_assert!(a < b);
                prop_assert_eq!(a.rem_euclid(level.width()), 0);
                prop_assert_eq!(b.rem_euclid(level.width()), 0);
                total += b - a;
            }
            for &(a, b) in &c.edges {
                prop_assert!(a < b);
                prop_assert!(b - a < levels[0].width());
                total += b - a;
            }
            prop_assert_eq!(total, len);
            for p in probes {
                let t = start + p;
                let inside = c.rollups.iter().filter(|(_, a, b)| *a <= t && t < *b).count()
                    + c.edges.iter().filter(|(a, b)| *a <= t && t < *b).count();
                prop_assert_eq!(inside, usize::from(t < end), "instant {}", t);
            }
        }
    }
}
