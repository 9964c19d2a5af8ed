//! Webhook deliveries on PostgreSQL: the fan-out's rows and cursor move
//! in one transaction.

use herald_core::{EventId, TenantId, Timestamp};

use super::cursors::apply_cursor_move;
use super::lifecycle::write_notices;
use super::{PgRow, PgStore, clean, map_rows, pg_err};
use crate::query::numbered;
use crate::records::*;
use crate::rows::subscription_row;
use crate::store::deliveries::sql::{
    self, Claimable, Finish, NewValues, attempt_row, delivery_row, finished_row,
};

/// A subscription `s` whose definition asks for stream order.
const ORDERED: &str = "(s.spec::jsonb ->> 'ordering') = 'stream'";

impl PgStore {
    pub async fn fan_out(
        &self,
        cursor: CursorMove,
        rows: Vec<NewDelivery>,
    ) -> Result<usize, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let pg_tx: &tokio_postgres::Transaction<'_> = &tx;
        apply_cursor_move(pg_tx, &cursor).await?;
        let added = if rows.is_empty() {
            0
        } else {
            insert_all(pg_tx, &rows).await?
        };
        tx.commit().await.map_err(pg_err)?;
        Ok(added as usize)
    }

    pub async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::due()),
                &[&now.unix_micros(), &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| delivery_row(r))
    }

    pub(crate) async fn claim_deliveries(
        &self,
        which: Claimable,
        now: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::claim("FOR UPDATE OF d SKIP LOCKED", ORDERED, which)),
                &[&until, &now, &now, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| delivery_row(r))
    }

    /// The row lock the update takes makes a concurrent re-claim wait,
    /// then see the new state.
    pub(crate) async fn finish_delivery(&self, f: Finish) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let row = tx
            .query_opt(
                &numbered(sql::FINISH),
                &[
                    &f.state,
                    &f.next_attempt_at,
                    &f.status,
                    &f.error_class.as_deref().map(clean),
                    &f.at,
                    &clean(&f.delivery_id),
                    &f.token,
                ],
            )
            .await
            .map_err(pg_err)?;
        let Some(row) = row else {
            return Ok(false);
        };
        let finished = finished_row(&PgRow(&row))?;
        tx.execute(
            &numbered(sql::RECORD_ATTEMPT),
            &[
                &clean(&f.delivery_id),
                &f.token,
                &f.at,
                &f.status,
                &f.duration_ms,
                &f.error_class.as_deref().map(clean),
                &f.snippet.as_deref().map(clean),
                &f.next_attempt_at,
            ],
        )
        .await
        .map_err(pg_err)?;
        let mut notices: Vec<_> = f.exhausted_notice(&finished)?.into_iter().collect();
        let failing_since: Option<i64> = if f.failed() {
            tx.query_opt(&numbered(sql::FAILING), &[&f.at, &finished.subscription_id])
                .await
                .map_err(pg_err)?
                .and_then(|r| r.get::<_, Option<i64>>(0))
        } else {
            tx.execute(&numbered(sql::FAILING_ENDED), &[&finished.subscription_id])
                .await
                .map_err(pg_err)?;
            None
        };
        if let Some((reason, since)) = f.disable_reason(failing_since) {
            let turned_off = tx
                .execute(
                    &numbered(&sql::disable_subscription(
                        "jsonb_set(spec::jsonb, '{enabled}', 'false')::text",
                    )),
                    &[&finished.subscription_id],
                )
                .await
                .map_err(pg_err)?;
            if turned_off == 1 {
                notices.push(f.disabled_notice(&finished, reason, since)?);
            }
        }
        write_notices(&tx, &notices, f.options.publish_lifecycle, f.at()?).await?;
        tx.commit().await.map_err(pg_err)?;
        Ok(true)
    }

    pub async fn release_delivery(
        &self,
        id: String,
        token: i64,
        at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(&numbered(sql::RELEASE), &[&at, &now, &clean(&id), &token])
            .await
            .map_err(pg_err)?;
        Ok(n == 1)
    }

    pub async fn delivery_attempts(
        &self,
        delivery_id: &str,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(&numbered(sql::ATTEMPTS), &[&clean(delivery_id)])
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| attempt_row(r))
    }

    pub async fn deliveries_of_event(
        &self,
        tenant: &TenantId,
        event_id: EventId,
    ) -> Result<Vec<Delivery>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::of_event()),
                &[&tenant.as_str(), &event_id.to_string()],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| delivery_row(r))
    }

    pub async fn deliveries_of_subscription(
        &self,
        tenant: &TenantId,
        subscription_id: &str,
        limit: usize,
        after: Option<String>,
    ) -> Result<DeliveryPage, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::of_subscription()),
                &[
                    &tenant.as_str(),
                    &clean(subscription_id),
                    &clean(&after.unwrap_or_default()),
                    &((limit + 1) as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(DeliveryPage::assemble(
            map_rows(&rows, |r| delivery_row(r))?,
            limit,
        ))
    }

    pub async fn enabled_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(&sql::enabled_subscriptions(), &[])
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| subscription_row(r))
    }
}

/// Inserts `rows` in one statement (one array per column, as the event
/// writer does), skipping pairs a subscription already has; how many were new.
pub(crate) async fn insert_all(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[NewDelivery],
) -> Result<u64, StoreError> {
    let v: Vec<NewValues> = rows.iter().map(NewValues::of).collect();
    let text = |f: fn(&NewValues) -> &str| v.iter().map(|r| clean(f(r))).collect::<Vec<_>>();
    let opt_text =
        |f: fn(&NewValues) -> Option<&str>| v.iter().map(|r| f(r).map(clean)).collect::<Vec<_>>();
    let int = |f: fn(&NewValues) -> i64| v.iter().map(f).collect::<Vec<_>>();
    tx.execute(
        "INSERT INTO deliveries (delivery_id, tenant_id, subscription_id, event_id, seq, \
         stream_id, stream_version, webhook_id, replay_id, state, attempts, next_attempt_at, \
         created_at, updated_at) \
         SELECT d, t, s, e, q, si, sv, w, r, 'pending', 0, n, c, u \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], \
                     $7::bigint[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[]) \
              AS x(d, t, s, e, q, si, sv, w, r, n, c, u) \
         ON CONFLICT DO NOTHING",
        &[
            &text(|r| &r.id),
            &text(|r| &r.tenant),
            &text(|r| &r.subscription),
            &text(|r| &r.event),
            &int(|r| r.seq),
            &opt_text(|r| r.stream_id.as_deref()),
            &v.iter().map(|r| r.stream_version).collect::<Vec<_>>(),
            &text(|r| &r.webhook_id),
            &opt_text(|r| r.replay_id.as_deref()),
            &int(|r| r.next_attempt_at),
            &int(|r| r.created),
            &int(|r| r.updated),
        ],
    )
    .await
    .map_err(pg_err)
}
