//! The SQL of an event query (an [`EventFilter`] with its paging), built
//! once for both backends. Every field of the filter becomes a condition;
//! filters, counting, ordering and keyset paging are the same everywhere;
//! only full text, JSON field access and placeholders differ, and a
//! [`Dialect`] says how. Every user value travels as a bound argument.
//!
//! [`EventFilter`]: herald_core::filter::EventFilter

use herald_core::EventId;
use herald_core::filter::{EventFilter, FieldFilter};

use crate::records::{AuditQuery, EventQuery, Order, ReplayScan, TOTAL_CAP};

/// One bound argument.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    /// An event id as its column stores it (a blob on SQLite, a `uuid` on
    /// PostgreSQL).
    EventId(EventId),
    Float(f64),
    /// A NULL (bound as text on PostgreSQL).
    Null,
}

/// One statement with its arguments, `?` placeholders, written once for
/// both backends.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stmt {
    pub text: String,
    pub args: Vec<Arg>,
}

impl Stmt {
    pub fn new(text: impl Into<String>, args: Vec<Arg>) -> Stmt {
        Stmt {
            text: text.into(),
            args,
        }
    }
}

/// Statements run in one transaction, in order: `then` runs only when
/// `guard` (a statement with `RETURNING`) returned a row, or always
/// without a guard. A compare-and-set and what it allows, written once.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Guarded {
    pub guard: Option<Stmt>,
    pub then: Vec<Stmt>,
}

/// A row mapper both backends can call.
pub(crate) type MapRow<T> = fn(&dyn crate::rows::RowAccess) -> Result<T, crate::StoreError>;

/// Where the backends' SQL differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `?` placeholders, FTS5, `json_extract`.
    Sqlite,
    /// `$n` placeholders, `tsvector` + GIN, `json` operators.
    Postgres,
}

/// The statements of one query: count first, then the page. Each page row
/// is `body, status, processed_at, processing_ms, ts, seq, user_id`.
#[derive(Debug)]
pub(crate) struct QuerySql {
    pub count_sql: String,
    pub count_args: Vec<Arg>,
    pub page_sql: String,
    pub page_args: Vec<Arg>,
    /// The page's row limit (the statement asks for one more to see `has_more`).
    pub limit: usize,
}

/// The columns a page row starts with; `body` is text in both backends.
pub(crate) fn page_columns(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "body, status, processed_at, processing_ms, ts, seq, user_id",
        Dialect::Postgres => "body::text, status, processed_at, processing_ms, ts, seq, user_id",
    }
}

struct Builder {
    sql: String,
    args: Vec<Arg>,
}

impl Builder {
    fn any_of(&mut self, col: &str, values: impl IntoIterator<Item = String>) {
        let values: Vec<String> = values.into_iter().collect();
        if values.is_empty() {
            return;
        }
        self.sql.push_str(&format!(
            " AND {col} IN ({})",
            vec!["?"; values.len()].join(",")
        ));
        self.args.extend(values.into_iter().map(Arg::Text));
    }
}

/// The tenant and the filter's dimensions (types, sources, categories) as
/// conditions on a statistics rollup table, which keeps those columns
/// under the events' names.
pub(crate) fn rollup_dims(tenant: &str, filter: &EventFilter) -> (String, Vec<Arg>) {
    let mut b = Builder {
        sql: String::from("tenant_id = ?"),
        args: vec![Arg::Text(tenant.to_string())],
    };
    b.any_of("event_type", filter.event_types.iter().cloned());
    b.any_of(
        "event_source",
        filter.event_sources.iter().map(|s| s.as_str().to_string()),
    );
    b.any_of(
        "event_category",
        filter
            .event_categories
            .iter()
            .map(|s| s.as_str().to_string()),
    );
    b.any_of(
        "category",
        filter.categories.iter().map(|s| s.as_str().to_string()),
    );
    (b.sql, b.args)
}

/// Quotes each whitespace-separated term so user text is never FTS5 syntax.
fn fts5_terms(q: &str) -> Option<String> {
    let terms: Vec<String> = q
        .split_whitespace()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" "))
}

/// The tenant's events `filter` means: `FROM … WHERE …` and its arguments,
/// for an event query and a replay's scan alike.
fn filtered(d: Dialect, tenant: &str, filter: &EventFilter) -> Builder {
    // Destructured so that a new filter field cannot be left out here.
    let EventFilter {
        event_types,
        event_sources,
        event_categories,
        categories,
        statuses,
        start_time,
        end_time,
        keys,
        fields,
        outcome_status,
        environment,
        service,
        stream_id,
        text,
    } = filter;
    let mut b = match d {
        // On SQLite the correlation keys are found through `events_keys`
        // (FTS5 tokens, see `sqlite::keys`), then held to the column's exact
        // value. `CROSS JOIN` fixes the order: the few candidate rows by
        // rowid, then the filters and a sort. Left to itself the planner
        // walked the tenant's whole time index testing each row.
        Dialect::Sqlite if !keys.is_empty() => Builder {
            sql: String::from(
                " FROM (SELECT rowid AS key_row FROM events_keys WHERE events_keys MATCH ?) AS keyed \
                 CROSS JOIN events ON events.seq = keyed.key_row WHERE tenant_id = ?",
            ),
            args: vec![
                Arg::Text(crate::sqlite::keys::match_all(
                    tenant,
                    keys.iter().map(|(k, v)| (*k, v.as_str())),
                )),
                Arg::Text(tenant.to_string()),
            ],
        },
        _ => Builder {
            sql: String::from(" FROM events WHERE tenant_id = ?"),
            args: vec![Arg::Text(tenant.to_string())],
        },
    };
    b.any_of("event_type", event_types.iter().cloned());
    b.any_of(
        "event_source",
        event_sources.iter().map(|s| s.as_str().to_string()),
    );
    b.any_of(
        "event_category",
        event_categories.iter().map(|s| s.as_str().to_string()),
    );
    b.any_of(
        "category",
        categories.iter().map(|s| s.as_str().to_string()),
    );
    b.any_of("status", statuses.iter().map(|s| s.as_str().to_string()));
    b.any_of(
        "outcome_status",
        outcome_status.iter().map(|s| s.as_str().to_string()),
    );
    b.any_of("environment", environment.iter().cloned());
    b.any_of("service", service.iter().cloned());
    b.any_of("stream_id", stream_id.iter().cloned());
    for (key, value) in keys {
        b.any_of(key.as_str(), [value.clone()]);
    }
    if let Some(t) = start_time {
        b.sql.push_str(" AND ts >= ?");
        b.args.push(Arg::Int(t.unix_micros()));
    }
    if let Some(t) = end_time {
        b.sql.push_str(" AND ts <= ?");
        b.args.push(Arg::Int(t.unix_micros()));
    }
    for FieldFilter { part, key, value } in fields {
        let part = part.as_str();
        match d {
            Dialect::Sqlite => {
                b.sql.push_str(" AND json_extract(body, ?) = ?");
                b.args
                    .push(Arg::Text(format!("$.{part}.\"{}\"", key.replace('"', ""))));
            }
            Dialect::Postgres => {
                b.sql.push_str(" AND (body -> ? ->> ?) = ?");
                b.args.push(Arg::Text(part.to_string()));
                b.args.push(Arg::Text(key.clone()));
            }
        }
        b.args.push(Arg::Text(value.clone()));
    }
    if let Some(text) = text {
        match d {
            Dialect::Sqlite => {
                if let Some(terms) = fts5_terms(text) {
                    b.sql.push_str(
                        " AND seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)",
                    );
                    b.args.push(Arg::Text(terms));
                }
            }
            // Each whitespace-separated term is a phrase and all must
            // occur: FTS5's meaning of quoted terms.
            Dialect::Postgres => {
                for term in text.split_whitespace() {
                    b.sql
                        .push_str(" AND search @@ phraseto_tsquery('simple', ?)");
                    b.args.push(Arg::Text(term.to_string()));
                }
            }
        }
    }
    b
}

/// Which stored events a statistics scan reads, by commit position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeqBound {
    /// Every one.
    Any,
    /// Those the rollups have counted (`seq <= w`).
    AtMost(i64),
    /// Those they have not yet (`seq > w`).
    After(i64),
}

/// The tenant's events `filter` means within `seq`'s bound. The events
/// after the rollups' watermark are few and found by `seq` (the table's
/// key): on SQLite the tenant's other indexes are kept out of it, which
/// would otherwise walk every event of the tenant testing `seq`.
fn bounded(d: Dialect, tenant: &str, filter: &EventFilter, seq: SeqBound) -> Builder {
    let mut b = filtered(d, tenant, filter);
    match seq {
        SeqBound::Any => {}
        SeqBound::AtMost(w) => {
            b.sql.push_str(" AND seq <= ?");
            b.args.push(Arg::Int(w));
        }
        SeqBound::After(w) => {
            if d == Dialect::Sqlite {
                b.sql = b
                    .sql
                    .replacen(" FROM events WHERE", " FROM events NOT INDEXED WHERE", 1);
            }
            b.sql.push_str(" AND seq > ?");
            b.args.push(Arg::Int(w));
        }
    }
    b
}

/// The statistics of the tenant's events `filter` means, per bucket of
/// `width` µs of event time (0: one bucket) and per rollup dimension: each
/// row is `bucket, event_type, event_source, category, event_category,
/// events, processed, failed, processing_ms` (the last over processed
/// events).
pub(crate) fn tally(
    d: Dialect,
    tenant: &str,
    filter: &EventFilter,
    seq: SeqBound,
    width: i64,
) -> Stmt {
    let mut b = bounded(d, tenant, filter, seq);
    let (bucket, mut args) = if width > 0 {
        (
            "ts - (((ts % ?) + ?) % ?)",
            vec![Arg::Int(width), Arg::Int(width), Arg::Int(width)],
        )
    } else {
        ("0", vec![])
    };
    args.append(&mut b.args);
    let bucket_group = if width > 0 {
        // Grouped by position: the expression's placeholders are bound once.
        "1, "
    } else {
        ""
    };
    Stmt::new(
        format!(
            "SELECT {bucket}, event_type, event_source, category, COALESCE(event_category, ''), COUNT(*), \
             CAST(SUM(CASE WHEN status = 'processed' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT), \
             SUM(CASE WHEN status = 'processed' THEN COALESCE(processing_ms, 0.0) ELSE 0.0 END){} \
             GROUP BY {bucket_group}event_type, event_source, category, COALESCE(event_category, '')",
            b.sql
        ),
        args,
    )
}

/// How often each `user_id` occurs among the tenant's events `filter`
/// means (bounded by commit position as [`tally`]): rows `user_id, n`.
pub(crate) fn user_counts(d: Dialect, tenant: &str, filter: &EventFilter, seq: SeqBound) -> Stmt {
    let b = bounded(d, tenant, filter, seq);
    Stmt::new(
        format!(
            "SELECT user_id, COUNT(*){} AND user_id IS NOT NULL GROUP BY user_id",
            b.sql
        ),
        b.args,
    )
}

pub(crate) fn build(d: Dialect, tenant: &str, q: &EventQuery) -> QuerySql {
    let mut b = filtered(d, tenant, &q.filter);

    let count_sql = if q.exact_total {
        format!("SELECT COUNT(*){}", b.sql)
    } else {
        format!(
            "SELECT COUNT(*) FROM (SELECT 1{} LIMIT {}) AS capped",
            b.sql,
            TOTAL_CAP + 1
        )
    };
    let count_args = b.args.clone();

    let (dir, cmp) = match q.order {
        Order::Asc => ("ASC", ">"),
        Order::Desc => ("DESC", "<"),
    };
    // A row value, not `ts < ? OR (ts = ? AND seq < ?)`: both backends
    // seek straight to the cursor in `events_tenant_ts (tenant_id, ts, seq)`
    // and walk on in index order. With the `OR`, SQLite read the tenant's
    // whole range from its end and PostgreSQL sorted every earlier row
    // (a `BitmapOr`) before the `LIMIT` (see the plan tests below).
    if let Some(cur) = q.cursor {
        b.sql.push_str(&format!(" AND (ts, seq) {cmp} (?, ?)"));
        b.args.extend([Arg::Int(cur.ts_micros), Arg::Int(cur.seq)]);
    }
    let limit = q.limit.clamp(1, 1000);
    b.args.push(Arg::Int(limit as i64 + 1));
    b.args.push(Arg::Int(q.offset as i64));
    let page_sql = format!(
        "SELECT {}{} ORDER BY ts {dir}, seq {dir} LIMIT ? OFFSET ?",
        page_columns(d),
        b.sql
    );
    let (count_sql, page_sql) = match d {
        Dialect::Sqlite => (count_sql, page_sql),
        Dialect::Postgres => (numbered(&count_sql), numbered(&page_sql)),
    };
    QuerySql {
        count_sql,
        count_args,
        page_sql,
        page_args: b.args,
        limit,
    }
}

/// A replay's next page: up to `limit` of the tenant's events that `scan`
/// selects with `seq > after` (and `seq <= scan.until_seq`), in commit order, as commit-log rows (`seq,
/// event_id, tenant_id, category, event_type, body`). The filter's
/// conditions are the event query's own.
pub(crate) fn commit_order(
    d: Dialect,
    tenant: &str,
    scan: &ReplayScan,
    after: i64,
    limit: usize,
) -> (String, Vec<Arg>) {
    let mut b = filtered(d, tenant, &scan.filter);
    if !scan.event_ids.is_empty() {
        b.sql.push_str(&format!(
            " AND event_id IN ({})",
            vec!["?"; scan.event_ids.len()].join(",")
        ));
        b.args
            .extend(scan.event_ids.iter().copied().map(Arg::EventId));
    }
    b.sql.push_str(" AND seq > ?");
    b.args.push(Arg::Int(after));
    if let Some(until) = scan.until_seq {
        b.sql.push_str(" AND seq <= ?");
        b.args.push(Arg::Int(until));
    }
    b.args.push(Arg::Int(limit.max(1) as i64));
    let body = match d {
        Dialect::Sqlite => "body",
        Dialect::Postgres => "body::text",
    };
    let sql = format!(
        "SELECT seq, event_id, tenant_id, category, event_type, {body}, stream_id, stream_version{} ORDER BY seq LIMIT ?",
        b.sql
    );
    match d {
        Dialect::Sqlite => (sql, b.args),
        Dialect::Postgres => (numbered(&sql), b.args),
    }
}

/// The audit trail's page, newest first, for both backends (`?`
/// placeholders): rows are `seq, at, tenant_id, key_id, operation,
/// resource, outcome, status_code, request_id, duration_us, detail`, one
/// more than the page holds so the caller sees whether another follows.
pub(crate) fn audit(q: &AuditQuery) -> (String, Vec<Arg>, usize) {
    let mut sql = format!(
        "SELECT {} FROM audit WHERE 1 = 1",
        crate::rows::AUDIT_COLUMNS
    );
    let mut args = Vec::new();
    for (col, v) in [
        ("tenant_id", &q.tenant_id),
        ("key_id", &q.key_id),
        ("operation", &q.operation),
        ("outcome", &q.outcome.map(|o| o.as_str().to_string())),
    ] {
        if let Some(v) = v {
            sql.push_str(&format!(" AND {col} = ?"));
            args.push(Arg::Text(v.clone()));
        }
    }
    for (cond, t) in [
        (" AND at_us >= ?", q.start_time),
        (" AND at_us <= ?", q.end_time),
    ] {
        if let Some(t) = t {
            sql.push_str(cond);
            args.push(Arg::Int(t.unix_micros()));
        }
    }
    if let Some(before) = q.before {
        sql.push_str(" AND seq < ?");
        args.push(Arg::Int(before));
    }
    let limit = q.limit.clamp(1, 1000);
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    args.push(Arg::Int(limit as i64 + 1));
    (sql, args, limit)
}

/// `?` → `$1, $2, ...`. The builder never writes a literal `?` otherwise.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Cursor;

    fn paged(order: Order) -> EventQuery {
        EventQuery {
            order,
            cursor: Some(Cursor {
                ts_micros: 1_700_000_000_000_000,
                seq: 42,
            }),
            limit: 50,
            ..Default::default()
        }
    }

    /// The plans of the next page after a cursor, both directions, on a
    /// Herald database (empty: the plan must not depend on statistics).
    #[test]
    fn sqlite_keyset_paging_seeks_the_cursor_in_the_tenant_time_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::sqlite::floor::open(&dir.path().join("plan.db"), false).unwrap();
        for order in [Order::Desc, Order::Asc] {
            let sql = build(Dialect::Sqlite, "acme", &paged(order));
            let args: Vec<rusqlite::types::Value> = sql
                .page_args
                .iter()
                .map(|a| match a {
                    Arg::Text(t) => rusqlite::types::Value::Text(t.clone()),
                    Arg::Int(i) => rusqlite::types::Value::Integer(*i),
                    Arg::EventId(id) => rusqlite::types::Value::Blob(id.as_bytes().to_vec()),
                    Arg::Float(f) => rusqlite::types::Value::Real(*f),
                    Arg::Null => rusqlite::types::Value::Null,
                })
                .collect();
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.page_sql))
                .unwrap();
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let cmp = if order == Order::Desc { '<' } else { '>' };
            // `(tenant_id=?)` alone would be the whole tenant, read from one end.
            assert!(
                plan.iter().any(|l| l
                    .starts_with("SEARCH events USING INDEX events_tenant_ts (tenant_id=? AND ")
                    && l.contains(&format!("ts{cmp}?"))),
                "{}\n{plan:#?}",
                sql.page_sql
            );
            assert!(
                !plan
                    .iter()
                    .any(|l| l.starts_with("SCAN") || l.contains("TEMP B-TREE")),
                "no scan, no sort: {plan:#?}"
            );
        }
    }

    /// A correlation-key lookup reaches its rows through `events_keys` by
    /// rowid: it neither scans the tenant's events nor walks its time index.
    #[test]
    fn sqlite_key_lookups_find_rows_through_the_keys_index() {
        use herald_core::correlation::CorrelationKey;
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::sqlite::floor::open(&dir.path().join("plan.db"), false).unwrap();
        let q = EventQuery::new(EventFilter {
            keys: vec![
                (
                    CorrelationKey::TraceId,
                    "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                ),
                (CorrelationKey::UserId, "u1".into()),
            ],
            ..Default::default()
        });
        let sql = build(Dialect::Sqlite, "acme", &q);
        for (statement, args) in [
            (&sql.page_sql, &sql.page_args),
            (&sql.count_sql, &sql.count_args),
        ] {
            let args: Vec<rusqlite::types::Value> = args
                .iter()
                .map(|a| match a {
                    Arg::Text(t) => rusqlite::types::Value::Text(t.clone()),
                    Arg::Int(i) => rusqlite::types::Value::Integer(*i),
                    Arg::EventId(id) => rusqlite::types::Value::Blob(id.as_bytes().to_vec()),
                    Arg::Float(f) => rusqlite::types::Value::Real(*f),
                    Arg::Null => rusqlite::types::Value::Null,
                })
                .collect();
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
                .unwrap();
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|l| l.contains("SCAN events_keys VIRTUAL TABLE")),
                "{statement}\n{plan:#?}"
            );
            assert!(
                plan.iter()
                    .any(|l| l.contains("USING INTEGER PRIMARY KEY (rowid=?)")),
                "rows fetched by rowid: {plan:#?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|l| l.starts_with("SCAN events") && !l.contains("events_keys")),
                "no scan of the events table: {plan:#?}"
            );
        }
    }

    /// On PostgreSQL every partition (the months created ahead and the
    /// default) is read through its copy of `events_tenant_ts` from the
    /// cursor on, in order: the row value is part of the index condition,
    /// and the partitions are merged, not sorted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_keyset_paging_seeks_the_cursor_in_the_tenant_time_index() {
        let Some(url) = herald_testkit::pg_url() else {
            return;
        };
        // One such test per process, and `floor::open` drops a leftover
        // schema of the same name first.
        let schema = format!("plan_{}", std::process::id());
        let client = crate::postgres::floor::open(&url, &schema, time::OffsetDateTime::now_utc())
            .await
            .unwrap();
        for order in [Order::Desc, Order::Asc] {
            let sql = build(Dialect::Postgres, "acme", &paged(order));
            let args: Vec<(
                &(dyn tokio_postgres::types::ToSql + Sync),
                tokio_postgres::types::Type,
            )> = sql
                .page_args
                .iter()
                .map(|a| match a {
                    Arg::Text(t) => (t as _, tokio_postgres::types::Type::TEXT),
                    Arg::Int(i) => (i as _, tokio_postgres::types::Type::INT8),
                    Arg::EventId(id) => (id.as_uuid() as _, tokio_postgres::types::Type::UUID),
                    Arg::Float(f) => (f as _, tokio_postgres::types::Type::FLOAT8),
                    Arg::Null => (&None::<&str> as _, tokio_postgres::types::Type::TEXT),
                })
                .collect();
            let plan: Vec<String> = client
                .query_typed(&format!("EXPLAIN (COSTS OFF) {}", sql.page_sql), &args)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            let cmp = if order == Order::Desc { '<' } else { '>' };
            let scans: Vec<&String> = plan.iter().filter(|l| l.contains(" Scan")).collect();
            assert!(
                scans.len() > 1
                    && scans
                        .iter()
                        .all(|l| l.contains("Index Scan") && l.contains("_tenant_id_ts_seq_idx")),
                "{plan:#?}"
            );
            let conds: Vec<&String> = plan.iter().filter(|l| l.contains("Index Cond")).collect();
            assert!(
                conds.len() == scans.len()
                    && conds
                        .iter()
                        .all(|l| l.contains(&format!("ROW(ts, seq) {cmp} ROW("))),
                "the cursor seeds each index range: {plan:#?}"
            );
            assert!(
                !plan.iter().any(|l| {
                    let node = l.trim_start().trim_start_matches("->").trim_start();
                    node == "Sort"
                        || node.starts_with("Incremental Sort")
                        || node.starts_with("Filter")
                }),
                "no sort, no filter: {plan:#?}"
            );
        }
        crate::postgres::floor::drop_schema(&client, &schema).await;
    }

    #[test]
    fn postgres_placeholders_are_numbered_in_order_and_match_the_arguments() {
        let q = EventQuery {
            limit: 10,
            ..EventQuery::new(EventFilter {
                event_types: vec!["a".into(), "b".into()],
                text: Some("red widget".into()),
                fields: vec![FieldFilter {
                    part: herald_core::filter::EventPart::Actor,
                    key: "tier".into(),
                    value: "gold".into(),
                }],
                ..Default::default()
            })
        };
        let sql = build(Dialect::Postgres, "acme", &q);
        let n = sql.page_args.len();
        assert!(sql.page_sql.contains(&format!("${n}")), "{}", sql.page_sql);
        assert!(!sql.page_sql.contains(&format!("${}", n + 1)));
        assert!(!sql.page_sql.contains('?'));
        assert_eq!(sql.count_args.len() + 2, sql.page_args.len());
        // Two terms, two phrase conditions.
        assert_eq!(sql.page_sql.matches("phraseto_tsquery").count(), 2);
    }

    #[test]
    fn sqlite_text_terms_are_quoted_and_empty_text_adds_nothing() {
        assert_eq!(fts5_terms("a \"b"), Some("\"a\" \"\"\"b\"".into()));
        let sql = build(
            Dialect::Sqlite,
            "acme",
            &EventQuery {
                limit: 1,
                ..EventQuery::new(EventFilter {
                    text: Some("   ".into()),
                    ..Default::default()
                })
            },
        );
        assert!(!sql.page_sql.contains("MATCH"));
    }
}
