//! Herald's store contract (DESIGN.md §9): one [`Store`] type that every
//! other crate talks to, over interchangeable backends: the embedded SQLite
//! backend and PostgreSQL for scale-out. Both pass the same conformance
//! suite (`tests/conformance.rs`). No backend type leaks through this
//! interface.

pub mod postgres;
mod query;
mod records;
mod rows;
pub mod sqlite;

use std::sync::Arc;

use herald_core::{EventId, TenantId};
use herald_registry::EventDefinition;

pub use records::*;

/// The one handle on Herald's storage.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(Arc<sqlite::SqliteStore>),
    Postgres(Arc<postgres::PgStore>),
}

/// Calls the same method on whichever backend this is.
macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
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

    /// Connects to PostgreSQL, creating the schema and applying migrations
    /// (under an advisory lock, so instances starting together do not race).
    pub async fn open_postgres(options: postgres::PgOptions) -> Result<Store, StoreError> {
        Ok(Store::Postgres(Arc::new(
            postgres::PgStore::open(options).await?,
        )))
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Whether several Herald instances may share this store (and so must
    /// share generated secrets and see each other's changes).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Appends events durably: returns only after the transaction holding
    /// them is committed. Outcomes come back in input order.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        each!(self, s => s.append(events).await)
    }

    /// Queues an audit record; it is committed with the next group commit.
    pub fn record_audit(&self, record: AuditRecord) {
        each!(self, s => s.record_audit(record))
    }

    pub async fn get_event(
        &self,
        tenant: &TenantId,
        id: EventId,
    ) -> Result<Option<StoredEvent>, StoreError> {
        each!(self, s => s.get_event(tenant, id).await)
    }

    pub async fn query_events(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<EventPage, StoreError> {
        each!(self, s => s.query_events(tenant, query).await)
    }

    /// Like `query_events`, with rows left as stored JSON (see [`EventJson`]).
    pub async fn query_events_json(
        &self,
        tenant: &TenantId,
        query: &EventQuery,
    ) -> Result<Page<EventJson>, StoreError> {
        each!(self, s => s.query_events_json(tenant, query).await)
    }

    pub async fn create_tenant(&self, tenant: Tenant) -> Result<(), StoreError> {
        each!(self, s => s.create_tenant(tenant).await)
    }

    pub async fn get_tenant(&self, tenant: &TenantId) -> Result<Option<Tenant>, StoreError> {
        each!(self, s => s.get_tenant(tenant).await)
    }

    pub async fn insert_key(&self, key: ApiKey) -> Result<(), StoreError> {
        each!(self, s => s.insert_key(key).await)
    }

    /// The live (not revoked) key whose secret hashes to `hash`.
    pub async fn find_key(&self, hash: [u8; 32]) -> Result<Option<ApiKey>, StoreError> {
        each!(self, s => s.find_key(hash).await)
    }

    /// Revokes a key; `false` when the tenant has no such live key.
    pub async fn revoke_key(&self, tenant: &TenantId, key_id: &str) -> Result<bool, StoreError> {
        each!(self, s => s.revoke_key(tenant, key_id).await)
    }

    pub async fn query_audit(&self, query: &AuditQuery) -> Result<AuditPage, StoreError> {
        each!(self, s => s.query_audit(query).await)
    }

    /// Moves up to `limit` pending events to `processing` and returns them,
    /// each with the token of this claim. On PostgreSQL a claim lapses after
    /// the lease and may then be taken again; on SQLite claims are handed
    /// back when the store is opened.
    pub async fn claim_pending(&self, limit: usize) -> Result<Vec<ClaimedEvent>, StoreError> {
        each!(self, s => s.claim_pending(limit).await)
    }

    /// Records how processing ended for claimed events, each only while its
    /// claim is still the event's newest: a result whose claim was taken
    /// over (or that was already finished) changes nothing. With
    /// `lifecycle`, queues in the same transaction the
    /// `event.processed.success` / `.failed` notification of each event it
    /// did finish, and of no other. Returns the ids of those events.
    pub async fn finish_processing(
        &self,
        results: Vec<ProcessingResult>,
        lifecycle: bool,
    ) -> Result<Vec<EventId>, StoreError> {
        each!(self, s => s.finish_processing(results, lifecycle).await)
    }

    /// Moves up to `limit` pending events straight to `processed` (the
    /// oldest first), for when no processor has anything to run: one write
    /// per event instead of a claim and a finish. With `lifecycle`, queues
    /// each one's `event.processed.success` in the same transaction.
    /// Returns how many it moved.
    pub async fn complete_pending(
        &self,
        limit: usize,
        lifecycle: bool,
    ) -> Result<usize, StoreError> {
        each!(self, s => s.complete_pending(limit, lifecycle).await)
    }

    /// Up to `limit` stored events with `seq > after`, in commit order.
    pub async fn events_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<SequencedEvent>, StoreError> {
        each!(self, s => s.events_after(after, limit).await)
    }

    /// The last `seq` the publisher named `name` has delivered (0 at first).
    pub async fn publish_cursor(&self, name: &str) -> Result<i64, StoreError> {
        each!(self, s => s.publish_cursor(name).await)
    }

    /// Moves the cursor forward (never back) to `seq`.
    pub async fn advance_publish_cursor(&self, name: &str, seq: i64) -> Result<(), StoreError> {
        each!(self, s => s.advance_publish_cursor(name, seq).await)
    }

    /// The oldest lifecycle notifications still to publish.
    pub async fn pending_lifecycle(
        &self,
        limit: usize,
    ) -> Result<Vec<PendingLifecycle>, StoreError> {
        each!(self, s => s.pending_lifecycle(limit).await)
    }

    /// Forgets published lifecycle notifications.
    pub async fn delete_lifecycle(&self, ids: Vec<i64>) -> Result<(), StoreError> {
        each!(self, s => s.delete_lifecycle(ids).await)
    }

    /// Tries to become the one publisher among the instances sharing this
    /// store. `None` while another instance holds the lease; the lease is
    /// released when dropped (or when its holder dies).
    pub async fn try_publisher_lease(&self) -> Result<Option<PublisherLease>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(Some(PublisherLease(LeaseInner::Local))),
            Store::Postgres(s) => Ok(s
                .try_publisher_lease()
                .await?
                .map(|l| PublisherLease(LeaseInner::Postgres(l)))),
        }
    }

    /// A number that changes whenever the tenant's definitions or settings
    /// change, for instances that share the store; `None` when only this
    /// instance can change them (the embedded store).
    pub async fn tenant_revision(&self, tenant: &TenantId) -> Result<Option<i64>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(s) => s.tenant_revision(tenant).await.map(Some),
        }
    }

    /// For shared stores: the secret stored under `name`, or `candidate`
    /// after storing it when there was none (first instance wins). `None`
    /// for the embedded store, whose secrets live in the data directory.
    pub async fn shared_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<Option<(String, bool)>, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(None),
            Store::Postgres(s) => s.shared_secret(name, candidate).await.map(Some),
        }
    }

    /// Periodic upkeep (PostgreSQL: creates the coming months' partitions).
    pub async fn maintain(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.maintain().await,
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

    /// Commits what is queued and stops the writer.
    pub async fn close(&self) {
        each!(self, s => s.close().await)
    }
}

/// The right to publish, held by one instance at a time.
#[derive(Debug)]
pub struct PublisherLease(LeaseInner);

#[derive(Debug)]
enum LeaseInner {
    Local,
    Postgres(postgres::Lease),
}

impl PublisherLease {
    /// Whether the lease still holds (a lost database session loses it).
    pub fn is_held(&self) -> bool {
        match &self.0 {
            LeaseInner::Local => true,
            LeaseInner::Postgres(l) => l.is_held(),
        }
    }
}
