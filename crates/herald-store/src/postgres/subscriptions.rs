//! Webhook subscriptions on PostgreSQL.

use herald_core::{TenantId, Timestamp};

use super::{PgRow, PgStore, clean, is_unique_violation, map_rows, pg_err};
use crate::query;
use crate::records::*;
use crate::rows::{
    INSERT_SUBSCRIPTION, SUBSCRIPTION_COLUMNS, SubscriptionValues, get_subscription_sql,
    rotate_subscription_sql, subscription_name_taken, subscription_row, to_json,
    update_subscription_sql,
};

impl PgStore {
    pub async fn insert_subscription(&self, s: Subscription) -> Result<(), StoreError> {
        let v = SubscriptionValues::of(&s)?;
        let c = self.conn().await?;
        c.execute(
            &query::numbered(INSERT_SUBSCRIPTION),
            &[
                &v.id,
                &v.tenant,
                &clean(&v.name),
                &v.enabled,
                &clean(&v.spec),
                &v.secret,
                &v.previous_secret,
                &v.previous_expires,
                &v.created,
                &v.updated,
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                subscription_name_taken(&v.tenant, &v.name)
            } else {
                pg_err(e)
            }
        })?;
        Ok(())
    }

    pub async fn get_subscription(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &query::numbered(&get_subscription_sql()),
                &[&tenant.as_str(), &clean(id)],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| subscription_row(&PgRow(&r))).transpose()
    }

    pub async fn list_subscriptions(
        &self,
        tenant: &TenantId,
        q: &SubscriptionQuery,
    ) -> Result<SubscriptionPage, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant_id = $1 \
                     AND ($2::boolean IS NULL OR enabled = $2) \
                     AND ($3::text IS NULL OR subscription_id > $3) \
                     ORDER BY subscription_id LIMIT $4"
                ),
                &[
                    &tenant.as_str(),
                    &q.enabled,
                    &q.after.as_deref().map(clean),
                    &((q.limit + 1) as i64),
                ],
            )
            .await
            .map_err(pg_err)?;
        Ok(SubscriptionPage::assemble(
            map_rows(&rows, |r| subscription_row(r))?,
            q.limit,
        ))
    }

    pub async fn update_subscription(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: SubscriptionSpec,
        now: Timestamp,
    ) -> Result<Option<Subscription>, StoreError> {
        let body = to_json(&spec)?;
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &query::numbered(&update_subscription_sql()),
                &[
                    &clean(&spec.subscriber_name),
                    &spec.enabled,
                    &clean(&body),
                    &now.to_string(),
                    &tenant.as_str(),
                    &clean(id),
                ],
            )
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    subscription_name_taken(tenant.as_str(), &spec.subscriber_name)
                } else {
                    pg_err(e)
                }
            })?;
        row.map(|r| subscription_row(&PgRow(&r))).transpose()
    }

    pub async fn rotate_subscription_secret(
        &self,
        tenant: &TenantId,
        id: &str,
        rotation: SecretRotation,
    ) -> Result<Option<Subscription>, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &query::numbered(&rotate_subscription_sql()),
                &[
                    &rotation.secret,
                    &rotation.previous_expires_at.to_string(),
                    &rotation.now.to_string(),
                    &tenant.as_str(),
                    &clean(id),
                ],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| subscription_row(&PgRow(&r))).transpose()
    }

    pub async fn delete_subscription(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "DELETE FROM subscriptions WHERE tenant_id = $1 AND subscription_id = $2",
                &[&tenant.as_str(), &clean(id)],
            )
            .await
            .map_err(pg_err)?;
        Ok(n > 0)
    }
}
