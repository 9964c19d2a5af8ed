//! Herald's store contract (DESIGN.md §9): one [`Store`] type that every
//! other crate talks to, over interchangeable backends. Today the embedded
//! SQLite backend; the PostgreSQL backend joins as a second variant and must
//! pass the same conformance suite (`tests/conformance.rs`). No backend type
//! leaks through this interface.

mod records;
pub mod sqlite;

use std::sync::Arc;

use herald_core::{CanonicalEvent, EventId, TenantId};
use herald_registry::EventDefinition;

pub use records::*;

/// The one handle on Herald's storage.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(Arc<sqlite::SqliteStore>),
}

impl Store {
    /// Opens (creating if needed) the embedded store in `dir`.
    pub fn open_sqlite(
        dir: &std::path::Path,
        options: sqlite::SqliteOptions,
    ) -> Result<Store, StoreError> {
        Ok(Store::Sqlite(Arc::new(sqlite::SqliteStore::open(
            dir, options,
        )?)))
    }

    /// Appends events durably: returns only after the transaction holding
    /// them is committed. Outcomes come back in input order.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        match self {
            Store::Sqlite(s) => s.append(events).await,
        }
    }

    /// Queues an audit record; it is committed with the next group commit.
    pub fn record_audit(&self, record: AuditRecord) {
        match self {
            Store::Sqlite(s) => s.record_audit(record),
        }
    }

    pub async fn get_event(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get_event(tenant, id).await,
        }
    }

    pub async fn query_events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError> {
        match self {
            Store::Sqlite(s) => s.query_events(tenant, query).await,
        }
    }

    /// Like `query_events`, with rows left as stored JSON (see [`EventJson`]).
    pub async fn query_events_json(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<Page<EventJson>, StoreError> {
        match self {
            Store::Sqlite(s) => s.query_events_json(tenant, query).await,
        }
    }

    pub async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.create_tenant(tenant).await,
        }
    }

    pub async fn get_tenant(&self, tenant: &TenantId) -> Result<Option<Tenant>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get_tenant(tenant).await,
        }
    }

    pub async fn insert_key(&self, key: ApiKey) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_key(key).await,
        }
    }

    /// The live (not revoked) key whose secret hashes to `hash`.
    pub async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        match self {
            Store::Sqlite(s) => s.find_key(hash).await,
        }
    }

    /// Revokes a key; `false` when the tenant has no such live key.
    pub async fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.revoke_key(tenant, key_id).await,
        }
    }

    pub async fn query_audit(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.query_audit(query).await,
        }
    }

    /// Moves up to `limit` pending events to `processing` and returns them.
    pub async fn claim_pending(&self, limit: usize) -> Result<Vec<CanonicalEvent>, StoreError> {
        match self {
            Store::Sqlite(s) => s.claim_pending(limit).await,
        }
    }

    /// Records how processing ended for claimed events.
    pub async fn finish_processing(
        &self,
        results: Vec<ProcessingResult>,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.finish_processing(results).await,
        }
    }

    /// Stores one version of an event definition. `Conflict` when that
    /// version exists already (a concurrent update) or, for version 1, when
    /// the tenant already has a definition for the same type or pattern.
    pub async fn insert_definition(
        &self,
        tenant: &TenantId,
        definition: EventDefinition,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_definition(tenant, definition).await,
        }
    }

    /// Every version of every definition of the tenant.
    pub async fn definitions(&self, tenant: &TenantId) -> Result<Vec<EventDefinition>, StoreError> {
        match self {
            Store::Sqlite(s) => s.definitions(tenant).await,
        }
    }

    /// One version of one definition; the latest when `version` is `None`.
    pub async fn get_definition(
        &self,
        tenant: &TenantId,
        definition_id: &str,
        version: Option<u32>,
    ) -> Result<Option<EventDefinition>, StoreError> {
        match self {
            Store::Sqlite(s) => s.get_definition(tenant, definition_id, version).await,
        }
    }

    /// The tenant's settings; the defaults when none were ever set.
    pub async fn get_settings(&self, tenant: &TenantId) -> Result<TenantSettings, StoreError> {
        match self {
            Store::Sqlite(s) => s.get_settings(tenant).await,
        }
    }

    pub async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: TenantSettings,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.put_settings(tenant, settings).await,
        }
    }

    /// Commits what is queued and stops the writer.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(s) => s.close().await,
        }
    }
}
