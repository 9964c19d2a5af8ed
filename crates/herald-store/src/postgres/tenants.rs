//! Tenants and their API keys on PostgreSQL.

use herald_core::{TenantId, Timestamp};

use super::{PgRow, PgStore, clean, is_unique_violation, pg_err};
use crate::records::*;
use crate::rows::{KEY_COLUMNS, TENANT_COLUMNS, api_key_row, join_scopes, tenant_row, to_json};

impl PgStore {
    pub async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "INSERT INTO tenants (tenant_id, name, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[
                    &tenant.tenant_id.as_str(),
                    &clean(&tenant.name),
                    &tenant.created_at.to_string(),
                ],
            )
            .await
            .map_err(pg_err)?;
        if n == 0 {
            return Err(StoreError::Conflict(ConflictReason::TenantExists {
                tenant_id: tenant.tenant_id.to_string(),
            }));
        }
        Ok(())
    }

    pub async fn get_tenant(&self, tenant: &TenantId) -> Result<Option<Tenant>, StoreError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE tenant_id = $1"),
                &[&tenant.as_str()],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| tenant_row(&PgRow(&r))).transpose()
    }

    pub async fn insert_key(&self, key: ApiKey) -> Result<(), StoreError> {
        let c = self.conn().await?;
        c.execute(
            "INSERT INTO api_keys (key_id, tenant_id, name, scopes, secret_hash, created_at, collect) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[&key.key_id, &key.tenant_id.as_str(), &clean(&key.name), &join_scopes(&key.scopes), &key.secret_hash.as_slice(), &key.created_at.to_string(), &clean(&to_json(&key.collect)?)],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(ConflictReason::KeyNotInserted { tenant_id: key.tenant_id.to_string() })
            } else {
                pg_err(e)
            }
        })?;
        Ok(())
    }

    pub async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL"
            ))
            .await
            .map_err(pg_err)?;
        let row = c
            .query_opt(&stmt, &[&hash.as_slice()])
            .await
            .map_err(pg_err)?;
        row.map(|r| api_key_row(&PgRow(&r), hash)).transpose()
    }

    pub async fn set_key_collect(
        &self,
        tenant: &TenantId,
        key_id: &str,
        collect: KeyCollect,
    ) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET collect = $3 WHERE tenant_id = $1 AND key_id = $2 AND revoked_at IS NULL",
                &[&tenant.as_str(), &clean(key_id), &clean(&to_json(&collect)?)],
            )
            .await
            .map_err(pg_err)?;
        Ok(n > 0)
    }

    pub async fn revoke_key(
        &self,
        tenant: &TenantId,
        key_id: &str,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let c = self.conn().await?;
        let n = c
            .execute(
                "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND key_id = $2 AND revoked_at IS NULL",
                &[&tenant.as_str(), &clean(key_id), &at.to_string()],
            )
            .await
            .map_err(pg_err)?;
        Ok(n > 0)
    }
}
