//! Event definitions on PostgreSQL; each change bumps the tenant's
//! revision in the same transaction.

use herald_core::TenantId;
use herald_registry::EventDefinition;

use super::shared::bump_revision;
use super::{PgRow, PgStore, clean, is_unique_violation, map_rows, pg_err};
use crate::query;
use crate::records::*;
use crate::rows::{DEFINITION_COLUMNS, DefinitionValues, INSERT_DEFINITION, definition_row};

impl PgStore {
    pub async fn insert_definition(
        &self,
        tenant: &TenantId,
        d: EventDefinition,
    ) -> Result<(), StoreError> {
        let v = DefinitionValues::of(&d)?;
        let tenant = tenant.as_str();
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        tx.execute(
            &query::numbered(INSERT_DEFINITION),
            &[
                &tenant,
                &v.id,
                &(v.version as i32),
                &v.event_type,
                &v.is_pattern,
                &v.category,
                &v.event_category,
                &clean(&v.name),
                &v.description.as_deref().map(clean),
                &v.schema,
                &v.sources,
                &v.examples,
                &v.ui,
                &v.compatibility,
                &v.created,
                &v.updated,
                &v.projection,
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                v.conflict(tenant)
            } else {
                pg_err(e)
            }
        })?;
        bump_revision(&tx, tenant).await?;
        tx.commit().await.map_err(pg_err)
    }

    pub async fn definitions(&self, tenant: &TenantId) -> Result<Vec<EventDefinition>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {DEFINITION_COLUMNS} FROM event_definitions WHERE tenant_id = $1 \
                     ORDER BY definition_id, version"
                ),
                &[&tenant.as_str()],
            )
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| definition_row(r))
    }

    pub async fn get_definition(
        &self,
        tenant: &TenantId,
        definition_id: &str,
        version: Option<u32>,
    ) -> Result<Option<EventDefinition>, StoreError> {
        let c = self.conn().await?;
        let version = version.map(|v| v as i32);
        let row = c
            .query_opt(
                &format!(
                    "SELECT {DEFINITION_COLUMNS} FROM event_definitions WHERE tenant_id = $1 AND definition_id = $2 \
                     AND ($3::integer IS NULL OR version = $3) ORDER BY version DESC LIMIT 1"
                ),
                &[&tenant.as_str(), &clean(definition_id), &version],
            )
            .await
            .map_err(pg_err)?;
        row.map(|r| definition_row(&PgRow(&r))).transpose()
    }
}
