//! Webhook subscriptions on the embedded store.

use herald_core::{TenantId, Timestamp};
use rusqlite::params;

use super::{SqliteStore, is_constraint_violation, map_row, map_rows};
use crate::records::*;
use crate::rows::{
    INSERT_SUBSCRIPTION, SUBSCRIPTION_COLUMNS, SubscriptionValues, get_subscription_sql,
    rotate_subscription_sql, subscription_name_taken, subscription_row, to_json,
    update_subscription_sql,
};

impl SqliteStore {
    pub async fn insert_subscription(&self, s: Subscription) -> Result<(), StoreError> {
        let v = SubscriptionValues::of(&s)?;
        self.write(move |c| {
            c.prepare_cached(INSERT_SUBSCRIPTION)?
                .execute(params![
                    v.id,
                    v.tenant,
                    v.name,
                    v.enabled,
                    v.spec,
                    v.secret,
                    v.previous_secret,
                    v.previous_expires,
                    v.created,
                    v.updated,
                ])
                .map_err(|e| {
                    if is_constraint_violation(&e) {
                        subscription_name_taken(&v.tenant, &v.name)
                    } else {
                        e.into()
                    }
                })?;
            Ok(())
        })
        .await
    }

    pub async fn get_subscription(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.read(move |c| {
            map_row(
                &mut c.prepare_cached(&get_subscription_sql())?,
                params![tenant, id],
                |r| subscription_row(r),
            )
        })
        .await
    }

    pub async fn list_subscriptions(
        &self,
        tenant: &TenantId,
        q: &SubscriptionQuery,
    ) -> Result<SubscriptionPage, StoreError> {
        let tenant = tenant.to_string();
        let q = q.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE tenant_id = ?1 \
                 AND (?2 IS NULL OR enabled = ?2) AND (?3 IS NULL OR subscription_id > ?3) \
                 ORDER BY subscription_id LIMIT ?4"
            ))?;
            let rows = map_rows(
                &mut stmt,
                params![tenant, q.enabled, q.after, (q.limit + 1) as i64],
                |r| subscription_row(r),
            )?;
            Ok(SubscriptionPage::assemble(rows, q.limit))
        })
        .await
    }

    pub async fn update_subscription(
        &self,
        tenant: &TenantId,
        id: &str,
        spec: SubscriptionSpec,
        now: Timestamp,
    ) -> Result<Option<Subscription>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        let body = to_json(&spec)?;
        self.write(move |c| {
            map_row(
                &mut c.prepare_cached(&update_subscription_sql())?,
                params![
                    spec.subscriber_name,
                    spec.enabled,
                    body,
                    now.to_string(),
                    tenant,
                    id
                ],
                |r| subscription_row(r),
            )
            .map_err(|e| match e {
                StoreError::Unavailable {
                    source: Some(ref cause),
                    ..
                } if cause
                    .downcast_ref::<rusqlite::Error>()
                    .is_some_and(is_constraint_violation) =>
                {
                    subscription_name_taken(&tenant, &spec.subscriber_name)
                }
                e => e,
            })
        })
        .await
    }

    pub async fn rotate_subscription_secret(
        &self,
        tenant: &TenantId,
        id: &str,
        rotation: SecretRotation,
    ) -> Result<Option<Subscription>, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.write(move |c| {
            map_row(
                &mut c.prepare_cached(&rotate_subscription_sql())?,
                params![
                    rotation.secret,
                    rotation.previous_expires_at.to_string(),
                    rotation.now.to_string(),
                    tenant,
                    id
                ],
                |r| subscription_row(r),
            )
        })
        .await
    }

    pub async fn delete_subscription(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<bool, StoreError> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "DELETE FROM subscriptions WHERE tenant_id = ?1 AND subscription_id = ?2",
                )?
                .execute(params![tenant, id])?;
            Ok(n > 0)
        })
        .await
    }
}
