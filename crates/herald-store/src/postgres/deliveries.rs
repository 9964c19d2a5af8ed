//! Webhook deliveries on PostgreSQL: the fan-out's rows and cursor move
//! in one transaction.

use herald_core::{EventId, TenantId, Timestamp};

use super::cursors::apply_cursor_move;
use super::{PgStore, clean, map_rows, pg_err};
use crate::query::numbered;
use crate::records::*;
use crate::rows::subscription_row;
use crate::store::deliveries::sql::{self, NewValues, delivery_row};

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
        let insert = tx.prepare(&numbered(sql::INSERT)).await.map_err(pg_err)?;
        let mut added = 0;
        for d in &rows {
            let v = NewValues::of(d);
            added += tx
                .execute(
                    &insert,
                    &[
                        &v.id,
                        &v.tenant,
                        &clean(&v.subscription),
                        &v.event,
                        &v.seq,
                        &v.stream_id.as_deref().map(clean),
                        &v.stream_version,
                        &v.webhook_id,
                        &v.replay_id,
                        &v.next_attempt_at,
                        &v.created,
                        &v.updated,
                    ],
                )
                .await
                .map_err(pg_err)?;
        }
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

    pub async fn claim_due_deliveries(
        &self,
        now: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &numbered(&sql::claim("FOR UPDATE SKIP LOCKED")),
                &[&until, &now, &now, &now, &(limit as i64)],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| delivery_row(r))
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
