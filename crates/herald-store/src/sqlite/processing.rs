//! Processing on the embedded store: claims, results, the shortcut for
//! events no processor wants, and the lifecycle outbox those write.
//! Claims have no lease here (one process owns the database): claims left
//! by a crash are handed back when the store is opened.

use herald_core::{EventId, EventStatus, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, map_rows};
use crate::records::*;
use crate::rows::{decode_body, event_id_from, pending_lifecycle_row};

/// The statements that find pending work. Each repeats the partial index's
/// own condition (`status IN ('pending', 'processing')`): SQLite uses a
/// partial index only when the query contains that term, and without it
/// every worker step scanned the table from its first row (found with
/// `perf`: the writer reading pages back from disk as the store grew).
const RESET_CLAIMS_SQL: &str = "UPDATE events SET status = 'pending' WHERE status IN ('pending', 'processing') AND status = 'processing'";
const CLAIM_SQL: &str = "UPDATE events SET status = 'processing', attempts = attempts + 1 WHERE seq IN \
                 (SELECT seq FROM events WHERE status IN ('pending', 'processing') AND status = 'pending' ORDER BY seq LIMIT ?1) \
                 RETURNING body, attempts, seq";
const COMPLETE_SQL: &str = "UPDATE events SET status = 'processed', processed_at = ?1, processing_ms = 0, attempts = attempts + 1 WHERE seq IN \
                 (SELECT seq FROM events WHERE status IN ('pending', 'processing') AND status = 'pending' ORDER BY seq LIMIT ?2) \
                 RETURNING tenant_id, event_id, category, event_type, seq";
const INSERT_LIFECYCLE_SQL: &str =
    "INSERT INTO lifecycle_outbox (tenant_id, event_id, kind, payload) VALUES (?1, ?2, ?3, ?4)";

/// `sql` with `scope`'s tenant condition added to its pending-work
/// condition.
///
/// The scan stays on the pending index, in commit order, checking each
/// row's tenant against the (small) set of tenants with processors: left
/// to itself SQLite would take every pending row of those tenants from the
/// tenant/status index and sort them all on each call.
fn scoped(sql: &str, scope: PendingScope) -> String {
    if scope == PendingScope::All {
        return sql.to_string();
    }
    sql.replacen(
        "SELECT seq FROM events WHERE",
        "SELECT seq FROM events INDEXED BY events_pending WHERE",
        1,
    )
    .replacen(
        "AND status = 'pending' ORDER BY seq",
        &format!("AND status = 'pending'{} ORDER BY seq", scope.sql()),
        1,
    )
}

/// A crash mid-processing leaves events `processing`: hand them back.
pub(super) fn hand_back_claims(c: &Connection) -> Result<(), StoreError> {
    c.execute(RESET_CLAIMS_SQL, [])?;
    Ok(())
}

impl SqliteStore {
    /// `now` is unused: claims do not lapse on the embedded store.
    pub async fn claim_pending(
        &self,
        limit: usize,
        _now: time::OffsetDateTime,
        scope: PendingScope,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        self.write(move |c| {
            let mut stmt = c.prepare_cached(&scoped(CLAIM_SQL, scope))?;
            let rows = stmt
                .query_map([limit as i64], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.iter()
                .map(|(body, attempt, seq)| {
                    let mut event = decode_body(body)?;
                    event.status = EventStatus::Processing;
                    Ok(ClaimedEvent {
                        event,
                        claim: ClaimToken::new(*attempt),
                        seq: *seq,
                    })
                })
                .collect()
        })
        .await
    }

    /// The same contract as PostgreSQL's: a result finishes its event only
    /// while its claim is the newest (a claim handed back at open and taken
    /// again has a new token), and only finished events get a notification.
    pub async fn finish_processing(
        &self,
        results: Vec<ProcessingResult>,
        lifecycle: bool,
    ) -> Result<Vec<EventId>, StoreError> {
        self.write(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE events SET status = ?2, processed_at = ?3, processing_ms = ?4 \
                 WHERE event_id = ?1 AND status = 'processing' AND attempts = ?5 \
                 RETURNING tenant_id, category, event_type, seq",
            )?;
            let mut insert = c.prepare_cached(INSERT_LIFECYCLE_SQL)?;
            let mut finished = Vec::new();
            let mut seqs = Vec::new();
            for r in results {
                let id = r.event_id.as_bytes().as_slice();
                let row = stmt
                    .query_row(
                        params![
                            id,
                            r.status.as_str(),
                            r.finished_at.to_string(),
                            r.duration_ms,
                            r.claim.get()
                        ],
                        |row| {
                            Ok((
                                row.get::<_, String>(0)?,
                                row.get::<_, String>(1)?,
                                row.get::<_, String>(2)?,
                                row.get::<_, i64>(3)?,
                            ))
                        },
                    )
                    .optional()?;
                let Some((tenant, category, event_type, seq)) = row else {
                    continue;
                };
                seqs.push(seq);
                finished.push(r.event_id);
                if lifecycle {
                    let l = LifecycleRecord::processed(
                        &tenant,
                        r.event_id,
                        &category,
                        &event_type,
                        r.status,
                        r.duration_ms,
                        r.finished_at,
                    );
                    insert.execute(params![l.tenant_id, id, l.kind.as_str(), l.payload])?;
                }
            }
            drop((stmt, insert));
            if let Some(delta) = crate::store::stats::after_finish(false, &seqs) {
                super::run_stmt(c, delta)?;
            }
            Ok(finished)
        })
        .await
    }

    pub async fn complete_pending(
        &self,
        limit: usize,
        lifecycle: bool,
        now: time::OffsetDateTime,
        scope: PendingScope,
    ) -> Result<usize, StoreError> {
        let at = Timestamp::from(now);
        self.write(move |c| {
            let mut stmt = c.prepare_cached(&scoped(COMPLETE_SQL, scope))?;
            let rows = stmt
                .query_map(params![at.to_string(), limit as i64], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let seqs: Vec<i64> = rows.iter().map(|r| r.4).collect();
            if let Some(delta) = crate::store::stats::after_finish(false, &seqs) {
                super::run_stmt(c, delta)?;
            }
            if lifecycle {
                let mut insert = c.prepare_cached(INSERT_LIFECYCLE_SQL)?;
                for (tenant, id, category, event_type, _) in &rows {
                    let l = LifecycleRecord::processed(
                        tenant,
                        event_id_from(id)?,
                        category,
                        event_type,
                        EventStatus::Processed,
                        0.0,
                        at,
                    );
                    insert.execute(params![l.tenant_id, id, l.kind.as_str(), l.payload])?;
                }
            }
            Ok(rows.len())
        })
        .await
    }

    pub async fn pending_lifecycle(
        &self,
        limit: usize,
    ) -> Result<Vec<PendingLifecycle>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, tenant_id, event_id, kind, payload FROM lifecycle_outbox ORDER BY id LIMIT ?1",
            )?;
            map_rows(&mut stmt, [limit as i64], |r| pending_lifecycle_row(r))
        })
        .await
    }

    pub async fn delete_lifecycle(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |c| {
            let mut stmt = c.prepare_cached("DELETE FROM lifecycle_outbox WHERE id = ?1")?;
            for id in ids {
                stmt.execute([id])?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value as SqlValue;

    #[test]
    fn claiming_jobs_reads_the_due_index_in_order_without_sorting_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::floor::open(&dir.path().join("plan.db"), false).unwrap();
        let sql = crate::store::processors::claim_jobs_sql(false);
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![SqlValue::Null; stmt.parameter_count()];
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("INDEX processing_jobs_due"))
                && !plan.iter().any(|l| l.contains("TEMP B-TREE")),
            "{plan:#?}"
        );
    }

    #[test]
    fn finding_pending_work_uses_the_pending_index_not_a_table_scan() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::floor::open(&dir.path().join("plan.db"), false).unwrap();
        let scoped_sql = [
            scoped(CLAIM_SQL, PendingScope::WithProcessors),
            scoped(COMPLETE_SQL, PendingScope::WithoutProcessors),
        ];
        let all = [RESET_CLAIMS_SQL, CLAIM_SQL, COMPLETE_SQL];
        for sql in all
            .iter()
            .copied()
            .chain(scoped_sql.iter().map(String::as_str))
        {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = vec![SqlValue::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|l| l.contains("USING INDEX events_pending"))
                    && !plan.iter().any(|l| l == "SCAN events"),
                "{sql}\n{plan:#?}"
            );
        }
    }

    /// Statistics read the events after the rollups' watermark by `seq`,
    /// not by walking the tenant's time or type index.
    #[test]
    fn the_statistics_tail_is_found_by_seq() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::floor::open(&dir.path().join("plan.db"), false).unwrap();
        let filter = herald_core::filter::EventFilter {
            event_types: vec!["a".into()],
            ..Default::default()
        };
        for stmt in [
            crate::query::tally(
                crate::query::Dialect::Sqlite,
                "t",
                &filter,
                crate::query::SeqBound::After(5),
                0,
            ),
            crate::query::user_counts(
                crate::query::Dialect::Sqlite,
                "t",
                &Default::default(),
                crate::query::SeqBound::After(5),
            ),
        ] {
            let mut q = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {}", stmt.text))
                .unwrap();
            let nulls = vec![SqlValue::Null; q.parameter_count()];
            let plan: Vec<String> = q
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                plan.iter()
                    .any(|l| l.contains("INTEGER PRIMARY KEY (rowid>?)")),
                "{}\n{plan:#?}",
                stmt.text
            );
        }
    }
}
