//! Tenant settings on the embedded store.

use herald_core::TenantId;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::records::*;
use crate::rows::{settings_from, to_json};

impl SqliteStore {
    pub async fn get_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let row: Option<String> = c
                .prepare_cached("SELECT settings FROM tenant_settings WHERE tenant_id = ?1")?
                .query_row([tenant], |r| r.get(0))
                .optional()?;
            settings_from(row)
        })
        .await
    }

    pub async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: TenantSettings,
    ) -> Result<(), StoreError> {
        let tenant = tenant.to_string();
        let body = to_json(&settings)?;
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO tenant_settings (tenant_id, settings) VALUES (?1, ?2) \
                 ON CONFLICT (tenant_id) DO UPDATE SET settings = excluded.settings",
            )?
            .execute(params![tenant, body])?;
            Ok(())
        })
        .await
    }
}
