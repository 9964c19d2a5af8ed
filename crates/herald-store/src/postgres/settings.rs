//! Tenant settings on PostgreSQL; each change bumps the tenant's revision
//! in the same transaction.

use herald_core::TenantId;

use super::shared::bump_revision;
use super::{PgStore, pg_err};
use crate::records::*;
use crate::rows::{settings_from, to_json};

impl PgStore {
    pub async fn get_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT settings FROM tenant_settings WHERE tenant_id = $1",
                &[&tenant.as_str()],
            )
            .await
            .map_err(pg_err)?;
        settings_from(row.map(|r| r.get(0)))
    }

    pub async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: TenantSettings,
    ) -> Result<(), StoreError> {
        let body = to_json(&settings)?;
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO tenant_settings (tenant_id, settings) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings",
            &[&tenant.as_str(), &body],
        )
        .await
        .map_err(pg_err)?;
        bump_revision(&tx, tenant.as_str()).await?;
        tx.commit().await.map_err(pg_err)
    }
}
