//! Event definitions, every version kept.

use herald_core::TenantId;
use herald_registry::EventDefinition;

use crate::{Store, StoreError};

impl Store {
    /// Stores one version of an event definition.
    /// `Conflict(DefinitionVersionExists)` when that version exists already
    /// (a concurrent update); `Conflict(DefinitionExists)` when, for version
    /// 1, the tenant already has a definition for the same type or pattern.
    pub async fn insert_definition(
        &self,
        tenant: &TenantId,
        definition: EventDefinition,
    ) -> Result<(), StoreError> {
        each!(self, s => s.insert_definition(tenant, definition).await)
    }

    /// Every version of every definition of the tenant.
    pub async fn definitions(&self, tenant: &TenantId) -> Result<Vec<EventDefinition>, StoreError> {
        each!(self, s => s.definitions(tenant).await)
    }

    /// One version of one definition; the latest when `version` is `None`.
    pub async fn get_definition(
        &self,
        tenant: &TenantId,
        definition_id: &str,
        version: Option<u32>,
    ) -> Result<Option<EventDefinition>, StoreError> {
        each!(self, s => s.get_definition(tenant, definition_id, version).await)
    }
}
