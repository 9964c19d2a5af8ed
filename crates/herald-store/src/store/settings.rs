//! Tenant settings.

use herald_core::TenantId;

use crate::{Store, StoreError, TenantSettings};

impl Store {
    /// The tenant's settings; the defaults when none were ever set.
    pub async fn get_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        each!(self, s => s.get_settings(tenant).await)
    }

    pub async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: TenantSettings,
    ) -> Result<(), StoreError> {
        each!(self, s => s.put_settings(tenant, settings).await)
    }
}
