//! Tenants and their API keys on the embedded store.

use herald_core::{TenantId, Timestamp};
use rusqlite::params;

use super::{SqliteStore, is_constraint_violation, map_row};
use crate::records::*;
use crate::rows::{KEY_COLUMNS, TENANT_COLUMNS, api_key_row, join_scopes, tenant_row, to_json};

impl SqliteStore {
    pub async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        self.write(move |c| {
            let n = c.execute(
                "INSERT INTO tenants (tenant_id, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![tenant.tenant_id.as_str(), tenant.name, tenant.created_at.to_string()],
            )?;
            if n == 0 {
                return Err(StoreError::Conflict(ConflictReason::TenantExists {
                    tenant_id: tenant.tenant_id.to_string(),
                }));
            }
            Ok(())
        })
        .await
    }

    pub async fn get_tenant(&self, tenant: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TENANT_COLUMNS} FROM tenants WHERE tenant_id = ?1"
            ))?;
            map_row(&mut stmt, [tenant], |r| tenant_row(r))
        })
        .await
    }

    pub async fn insert_key(&self, key: ApiKey) -> Result<(), StoreError> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO api_keys (key_id, tenant_id, name, scopes, secret_hash, created_at, collect) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![key.key_id, key.tenant_id.as_str(), key.name, join_scopes(&key.scopes), key.secret_hash.as_slice(), key.created_at.to_string(), to_json(&key.collect)?],
            )
            .map_err(|e| {
                if is_constraint_violation(&e) {
                    StoreError::Conflict(ConflictReason::KeyNotInserted { tenant_id: key.tenant_id.to_string() })
                } else {
                    e.into()
                }
            })?;
            Ok(())
        })
        .await
    }

    pub async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = ?1 AND revoked_at IS NULL"
            ))?;
            map_row(&mut stmt, [hash.as_slice()], |r| api_key_row(r, hash))
        })
        .await
    }

    pub async fn set_key_collect(
        &self,
        tenant: &TenantId,
        key_id: &str,
        collect: KeyCollect,
    ) -> Result<bool, StoreError> {
        let (tenant, key_id, json) = (tenant.to_string(), key_id.to_string(), to_json(&collect)?);
        self.write(move |c| {
            let n = c.execute(
                "UPDATE api_keys SET collect = ?3 WHERE tenant_id = ?1 AND key_id = ?2 AND revoked_at IS NULL",
                params![tenant, key_id, json],
            )?;
            Ok(n > 0)
        })
        .await
    }

    pub async fn revoke_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let (tenant, key_id) = (tenant.to_string(), key_id.to_string());
        self.write(move |c| {
            let n = c.execute(
                "UPDATE api_keys SET revoked_at = ?3 WHERE tenant_id = ?1 AND key_id = ?2 AND revoked_at IS NULL",
                params![tenant, key_id, at.to_string()],
            )?;
            Ok(n > 0)
        })
        .await
    }
}
