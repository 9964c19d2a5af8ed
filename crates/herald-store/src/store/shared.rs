//! What matters only when several instances share the store: who
//! publishes, noticing each other's changes, shared secrets, and upkeep.
//! The embedded store answers each as the only instance would.

use herald_core::TenantId;

use crate::{Store, StoreError, postgres};

impl Store {
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

    /// Periodic upkeep as of `now` (PostgreSQL: creates the partitions of
    /// `now`'s month and the coming ones).
    pub async fn maintain(&self, now: time::OffsetDateTime) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(_) => Ok(()),
            Store::Postgres(s) => s.maintain(now).await,
        }
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

    /// Gives the lease up and returns once another instance can take it
    /// (dropping it frees it too, once the database notices the session
    /// ended).
    pub async fn release(self) {
        match self.0 {
            LeaseInner::Local => {}
            LeaseInner::Postgres(l) => l.release().await,
        }
    }
}
