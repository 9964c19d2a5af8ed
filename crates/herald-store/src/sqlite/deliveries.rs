//! Webhook deliveries on the embedded store: the fan-out goes through the
//! writer like every write, its rows and cursor move in one savepoint.

use herald_core::{EventId, TenantId, Timestamp};
use rusqlite::{OptionalExtension, params};

use super::cursors::apply_cursor_move;
use super::lifecycle::write_notices;
use super::{SqlRow, SqliteStore, map_rows};
use crate::records::*;
use crate::rows::subscription_row;
use crate::store::deliveries::sql::{
    self, Claimable, Finish, NewValues, attempt_row, delivery_row, finished_row,
};

/// A subscription `s` whose definition asks for stream order.
const ORDERED: &str = "json_extract(s.spec, '$.ordering') = 'stream'";

impl SqliteStore {
    pub async fn fan_out(
        &self,
        cursor: CursorMove,
        rows: Vec<NewDelivery>,
    ) -> Result<usize, StoreError> {
        let values: Vec<NewValues> = rows.iter().map(NewValues::of).collect();
        self.write(move |c| {
            apply_cursor_move(c, &cursor)?;
            insert_deliveries(c, &values)
        })
        .await
    }

    pub async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::due())?,
                params![now.unix_micros(), limit as i64],
                |r| delivery_row(r),
            )
        })
        .await
    }

    pub(crate) async fn claim_deliveries(
        &self,
        which: Claimable,
        now: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.write(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::claim("", ORDERED, which))?,
                params![until, now, now, limit as i64],
                |r| delivery_row(r),
            )
        })
        .await
    }

    pub(crate) async fn finish_delivery(&self, f: Finish) -> Result<bool, StoreError> {
        self.write(move |c| {
            let finished = c
                .prepare_cached(sql::FINISH)?
                .query_row(
                    params![
                        f.state,
                        f.next_attempt_at,
                        f.status,
                        f.error_class,
                        f.at,
                        f.delivery_id,
                        f.token
                    ],
                    |r| Ok(finished_row(&SqlRow(r))),
                )
                .optional()?
                .transpose()?;
            let Some(finished) = finished else {
                return Ok(false);
            };
            c.prepare_cached(sql::RECORD_ATTEMPT)?.execute(params![
                f.delivery_id,
                f.token,
                f.at,
                f.status,
                f.duration_ms,
                f.error_class,
                f.snippet,
                f.next_attempt_at
            ])?;
            let mut notices: Vec<_> = f.exhausted_notice(&finished)?.into_iter().collect();
            let failing_since: Option<i64> = if f.failed() {
                c.prepare_cached(sql::FAILING)?
                    .query_row(params![f.at, finished.subscription_id], |r| r.get(0))
                    .optional()?
                    .flatten()
            } else {
                c.prepare_cached(sql::FAILING_ENDED)?
                    .execute(params![finished.subscription_id])?;
                None
            };
            if let Some((reason, since)) = f.disable_reason(failing_since)
                && c.prepare_cached(&sql::disable_subscription(
                    "json_set(spec, '$.enabled', json('false'))",
                ))?
                .execute(params![finished.subscription_id])?
                    == 1
            {
                notices.push(f.disabled_notice(&finished, reason, since)?);
            }
            write_notices(c, &notices, f.options.publish_lifecycle, f.at()?)?;
            Ok(true)
        })
        .await
    }

    pub async fn release_delivery(
        &self,
        id: String,
        token: i64,
        at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            let n = c
                .prepare_cached(sql::RELEASE)?
                .execute(params![at, now, id, token])?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn delivery_attempts(
        &self,
        delivery_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let id = delivery_id.to_string();
        self.read(move |c| {
            map_rows(&mut c.prepare_cached(sql::ATTEMPTS)?, params![id], |r| {
                attempt_row(r)
            })
        })
        .await
    }

    pub async fn deliveries_of_event(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> Result<Vec<Delivery>, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::of_event())?,
                params![tenant, event_id.to_string()],
                |r| delivery_row(r),
            )
        })
        .await
    }

    pub async fn deliveries_of_subscription(
        &self,
        tenant: &TenantId,
        subscription_id: &str,
        limit: usize,
        after: Option<String>,
    ) -> Result<DeliveryPage, StoreError> {
        let (tenant, id) = (tenant.to_string(), subscription_id.to_string());
        self.read(move |c| {
            let rows = map_rows(
                &mut c.prepare_cached(&sql::of_subscription())?,
                params![tenant, id, after.unwrap_or_default(), (limit + 1) as i64],
                |r| delivery_row(r),
            )?;
            Ok(DeliveryPage::assemble(rows, limit))
        })
        .await
    }

    pub async fn enabled_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&sql::enabled_subscriptions())?,
                [],
                |r| subscription_row(r),
            )
        })
        .await
    }
}

/// Inserts new deliveries, skipping those a subscription already has (the
/// fan-out's and a replay's rows alike); how many were new.
pub(crate) fn insert_deliveries(
    c: &rusqlite::Connection,
    values: &[NewValues],
) -> Result<usize, StoreError> {
    let mut insert = c.prepare_cached(sql::INSERT)?;
    let mut added = 0;
    for v in values {
        added += insert.execute(params![
            v.id,
            v.tenant,
            v.subscription,
            v.event,
            v.seq,
            v.stream_id,
            v.stream_version,
            v.webhook_id,
            v.replay_id,
            v.next_attempt_at,
            v.created,
            v.updated,
        ])?;
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use rusqlite::types::Value as SqlValue;

    use super::*;

    #[test]
    fn a_claim_finds_due_rows_and_earlier_stream_versions_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::floor::open(&dir.path().join("plan.db"), false).unwrap();
        for (which, index) in [
            (Claimable::Due, "deliveries_due"),
            (Claimable::LeaseExpired, "deliveries_leased"),
        ] {
            let sql = format!("EXPLAIN QUERY PLAN {}", sql::claim("", ORDERED, which));
            let mut stmt = conn.prepare(&sql).unwrap();
            let nulls = vec![SqlValue::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let uses = |needle: &str| plan.iter().any(|l| l.contains(needle));
            // Walked in index order and left at the limit: no sort of
            // every claimable row, no scan.
            assert!(
                uses(&format!("SEARCH d USING INDEX {index}"))
                    && uses("SEARCH e USING INDEX deliveries_stream_order")
                    && !plan.iter().any(|l| l.contains("TEMP B-TREE"))
                    && !plan.iter().any(|l| l.starts_with("SCAN")),
                "{which:?}: {plan:#?}"
            );
        }
    }

    #[test]
    fn a_claim_is_compiled_once_however_its_limit_changes() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::super::floor::open(&dir.path().join("claim.db"), false).unwrap();
        for which in [Claimable::Due, Claimable::LeaseExpired] {
            let mut stmt = conn.prepare(&sql::claim("", ORDERED, which)).unwrap();
            for limit in [1i64, 7, 64, 3] {
                stmt.execute(params![10, 5, 5, limit]).unwrap();
            }
            // A bare `LIMIT ?` is recompiled at every new binding.
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{which:?}"
            );
        }
    }
}
