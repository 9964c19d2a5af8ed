//! Processing on PostgreSQL: claims with a lease, results, the shortcut
//! for events no processor wants, and the lifecycle outbox those write.

use herald_core::{EventId, EventStatus, Timestamp};

use super::{PgRow, PgStore, map_rows, pg_err};
use crate::records::*;
use crate::rows::{RowAccess, decode_body, pending_lifecycle_row};

impl PgStore {
    /// Claims with `FOR UPDATE SKIP LOCKED`: instances claiming at once get
    /// disjoint events. A claim whose lease ended before `now` is taken
    /// back; the incremented `attempts` is the claim's token.
    pub async fn claim_pending(
        &self,
        limit: usize,
        now: time::OffsetDateTime,
        scope: PendingScope,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        let c = self.conn().await?;
        let now = Timestamp::from(now).unix_micros();
        let until = now + self.claim_lease.as_micros() as i64;
        let stmt = c
            .prepare_cached(&format!(
                "UPDATE events e SET status = 'processing', attempts = e.attempts + 1, claimed_until = $2 \
                 FROM (SELECT seq, ts FROM events \
                       WHERE status IN ('pending', 'processing') \
                         AND (status = 'pending' OR claimed_until < $3){} \
                       ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED) c \
                 WHERE e.seq = c.seq AND e.ts = c.ts RETURNING e.body::text, e.attempts, e.seq",
                scope.sql()
            ))
            .await
            .map_err(pg_err)?;
        let rows = c
            .query(&stmt, &[&(limit as i64), &until, &now])
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| {
            let mut event = decode_body(&r.text(0)?)?;
            event.status = EventStatus::Processing;
            Ok(ClaimedEvent {
                event,
                claim: ClaimToken::new(r.int(1)?),
                seq: r.int(2)?,
            })
        })
    }

    /// Finishes only rows still claimed with the result's token (the row
    /// lock makes a concurrent re-claim wait, then re-check it), and queues
    /// lifecycle rows for exactly the rows `RETURNING` names.
    pub async fn finish_processing(
        &self,
        results: Vec<ProcessingResult>,
        lifecycle: bool,
    ) -> Result<Vec<EventId>, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let ids: Vec<uuid::Uuid> = results.iter().map(|r| *r.event_id.as_uuid()).collect();
        let claims: Vec<i64> = results.iter().map(|r| r.claim.get()).collect();
        let statuses: Vec<&str> = results.iter().map(|r| r.status.as_str()).collect();
        let at: Vec<String> = results.iter().map(|r| r.finished_at.to_string()).collect();
        let ms: Vec<f64> = results.iter().map(|r| r.duration_ms).collect();
        let rows = tx
            .query(
                "UPDATE events e SET status = u.status, processed_at = u.at, processing_ms = u.ms, claimed_until = NULL \
                 FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::float8[]) \
                      WITH ORDINALITY AS u(id, claim, status, at, ms, n) \
                 WHERE e.event_id = u.id AND e.status = 'processing' AND e.attempts = u.claim \
                 RETURNING e.tenant_id, e.category, e.event_type, u.n, e.seq",
                &[&ids, &claims, &statuses, &at, &ms],
            )
            .await
            .map_err(pg_err)?;
        let mut finished = Vec::with_capacity(rows.len());
        let mut records = Vec::new();
        let mut seqs = Vec::with_capacity(rows.len());
        for r in &rows {
            let r = PgRow(r);
            let done = usize::try_from(r.int(3)? - 1)
                .ok()
                .and_then(|i| results.get(i))
                .ok_or_else(|| StoreError::corrupt("finish: a row no result asked for"))?;
            finished.push(done.event_id);
            seqs.push(r.int(4)?);
            if lifecycle {
                records.push(LifecycleRecord::processed(
                    &r.text(0)?,
                    done.event_id,
                    &r.text(1)?,
                    &r.text(2)?,
                    done.status,
                    done.duration_ms,
                    done.finished_at,
                ));
            }
        }
        insert_lifecycle(&tx, &records).await?;
        if let Some(delta) = crate::store::stats::after_finish(true, &seqs) {
            super::run_stmt(&tx, delta).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(finished)
    }

    pub async fn complete_pending(
        &self,
        limit: usize,
        lifecycle: bool,
        now: time::OffsetDateTime,
        scope: PendingScope,
    ) -> Result<usize, StoreError> {
        let mut c = self.conn().await?;
        let at = Timestamp::from(now);
        let tx = c.transaction().await.map_err(pg_err)?;
        let rows = tx
            .query(
                &format!(
                    "UPDATE events e SET status = 'processed', processed_at = $1, processing_ms = 0, \
                     attempts = e.attempts + 1 \
                     FROM (SELECT seq, ts FROM events WHERE status IN ('pending', 'processing') AND status = 'pending'{} \
                           ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED) c \
                     WHERE e.seq = c.seq AND e.ts = c.ts \
                     RETURNING e.tenant_id, e.event_id, e.category, e.event_type, e.seq",
                    scope.sql()
                ),
                &[&at.to_string(), &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        if lifecycle && !rows.is_empty() {
            let records = map_rows(&rows, |r| {
                Ok(LifecycleRecord::processed(
                    &r.text(0)?,
                    r.event_id(1)?,
                    &r.text(2)?,
                    &r.text(3)?,
                    EventStatus::Processed,
                    0.0,
                    at,
                ))
            })?;
            insert_lifecycle(&tx, &records).await?;
        }
        let seqs = map_rows(&rows, |r| r.int(4))?;
        if let Some(delta) = crate::store::stats::after_finish(true, &seqs) {
            super::run_stmt(&tx, delta).await?;
        }
        tx.commit().await.map_err(pg_err)?;
        Ok(rows.len())
    }

    pub async fn pending_lifecycle(
        &self,
        limit: usize,
    ) -> Result<Vec<PendingLifecycle>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT id, tenant_id, event_id, kind, payload FROM lifecycle_outbox ORDER BY id LIMIT $1",
                &[&(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| pending_lifecycle_row(r))
    }

    pub async fn delete_lifecycle(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        let c = self.conn().await?;
        c.execute("DELETE FROM lifecycle_outbox WHERE id = ANY($1)", &[&ids])
            .await
            .map_err(pg_err)?;
        Ok(())
    }
}

async fn insert_lifecycle(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &[LifecycleRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let tenants: Vec<&str> = records.iter().map(|l| l.tenant_id.as_str()).collect();
    let ids: Vec<Option<uuid::Uuid>> = records
        .iter()
        .map(|l| l.event_id.map(|e| *e.as_uuid()))
        .collect();
    let kinds: Vec<&str> = records.iter().map(|l| l.kind.as_str()).collect();
    let payloads: Vec<&str> = records.iter().map(|l| l.payload.as_str()).collect();
    tx.execute(
        "INSERT INTO lifecycle_outbox (tenant_id, event_id, kind, payload) \
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::text[], $4::text[])",
        &[&tenants, &ids, &kinds, &payloads],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}
