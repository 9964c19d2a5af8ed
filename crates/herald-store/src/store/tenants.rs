//! Tenants and their API keys.

use herald_core::{TenantId, Timestamp};

use crate::{ApiKey, KeyCollect, Store, StoreError, Tenant};

impl Store {
    /// `Conflict(TenantExists)` when the id is taken.
    pub async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        each!(self, s => s.create_tenant(tenant).await)
    }

    pub async fn get_tenant(&self, tenant: &TenantId) -> Result<Option<Tenant>, StoreError> {
        each!(self, s => s.get_tenant(tenant).await)
    }

    /// `Conflict(KeyNotInserted)` when its id or secret is taken or its
    /// tenant does not exist.
    pub async fn insert_key(&self, key: ApiKey) -> Result<(), StoreError> {
        each!(self, s => s.insert_key(key).await)
    }

    /// The live (not revoked) key whose secret hashes to `hash`.
    pub async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        each!(self, s => s.find_key(hash).await)
    }

    /// Replaces a live key's collection settings (allowed origins, webhook
    /// secret); `false` when the tenant has no such live key.
    pub async fn set_key_collect(
        &self,
        tenant: &TenantId,
        key_id: &str,
        collect: KeyCollect,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.set_key_collect(tenant, key_id, collect).await)
    }

    /// Revokes a key as of `at`; `false` when the tenant has no such live key.
    pub async fn revoke_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.revoke_key(tenant, key_id, at).await)
    }
}
