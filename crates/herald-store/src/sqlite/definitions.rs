//! Event definitions on the embedded store.

use herald_core::TenantId;
use herald_registry::EventDefinition;
use rusqlite::params;

use super::{SqliteStore, is_constraint_violation, map_row, map_rows};
use crate::records::*;
use crate::rows::{DEFINITION_COLUMNS, DefinitionValues, INSERT_DEFINITION, definition_row};

impl SqliteStore {
    pub async fn insert_definition(
        &self,
        tenant: &TenantId,
        d: EventDefinition,
    ) -> Result<(), StoreError> {
        let tenant = tenant.to_string();
        let v = DefinitionValues::of(&d)?;
        self.write(move |c| {
            c.prepare_cached(INSERT_DEFINITION)?
                .execute(params![
                    tenant,
                    v.id,
                    v.version,
                    v.event_type,
                    v.is_pattern,
                    v.category,
                    v.event_category,
                    v.name,
                    v.description,
                    v.schema,
                    v.sources,
                    v.examples,
                    v.ui,
                    v.compatibility,
                    v.created,
                    v.updated,
                    v.projection,
                ])
                .map_err(|e| {
                    if is_constraint_violation(&e) {
                        v.conflict(&tenant)
                    } else {
                        e.into()
                    }
                })?;
            Ok(())
        })
        .await
    }

    pub async fn definitions(&self, tenant: &TenantId) -> Result<Vec<EventDefinition>, StoreError> {
        let tenant = tenant.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {DEFINITION_COLUMNS} FROM event_definitions WHERE tenant_id = ?1 ORDER BY definition_id, version"
            ))?;
            map_rows(&mut stmt, [tenant], |r| definition_row(r))
        })
        .await
    }

    pub async fn get_definition(
        &self,
        tenant: &TenantId,
        definition_id: &str,
        version: Option<u32>,
    ) -> Result<Option<EventDefinition>, StoreError> {
        let (tenant, id) = (tenant.to_string(), definition_id.to_string());
        self.read(move |c| {
            let sql = match version {
                Some(_) => format!(
                    "SELECT {DEFINITION_COLUMNS} FROM event_definitions WHERE tenant_id = ?1 AND definition_id = ?2 AND version = ?3"
                ),
                None => format!(
                    "SELECT {DEFINITION_COLUMNS} FROM event_definitions WHERE tenant_id = ?1 AND definition_id = ?2 \
                     AND ?3 IS NULL ORDER BY version DESC LIMIT 1"
                ),
            };
            map_row(&mut c.prepare_cached(&sql)?, params![tenant, id, version], |r| {
                definition_row(r)
            })
        })
        .await
    }
}
