//! What only a shared store has: the publisher lease, tenant revisions
//! (so instances notice each other's definition and settings changes),
//! secrets every instance must share, and partition upkeep.

use herald_core::TenantId;

use super::{PgStore, connect, pg_err, schema};
use crate::records::*;

/// The publisher lease: a session holding `pg_try_advisory_lock`.
#[derive(Debug)]
pub struct Lease {
    client: tokio_postgres::Client,
    key: i64,
}

impl Lease {
    pub fn is_held(&self) -> bool {
        !self.client.is_closed()
    }

    /// Unlocks, so another instance can take the lease at once.
    pub async fn release(self) {
        if let Err(e) = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&self.key])
            .await
        {
            tracing::warn!(error = %e, "publisher lease not released; it ends with its session");
        }
    }
}

impl PgStore {
    /// A session-level advisory lock on a connection of its own: held until
    /// the lease is dropped or the session dies.
    pub async fn try_publisher_lease(&self) -> Result<Option<Lease>, StoreError> {
        let client = connect(&self.config).await?;
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&self.locks.publisher])
            .await
            .map_err(pg_err)?
            .get(0);
        Ok(got.then_some(Lease {
            client,
            key: self.locks.publisher,
        }))
    }

    pub async fn tenant_revision(&self, tenant: &TenantId) -> Result<i64, StoreError> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached("SELECT revision FROM tenant_revisions WHERE tenant_id = $1")
            .await
            .map_err(pg_err)?;
        Ok(c.query_opt(&stmt, &[&tenant.as_str()])
            .await
            .map_err(pg_err)?
            .map(|r| r.get(0))
            .unwrap_or(0))
    }

    pub async fn shared_secret(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<(String, bool), StoreError> {
        let c = self.conn().await?;
        let inserted = c
            .execute(
                "INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&name, &candidate],
            )
            .await
            .map_err(pg_err)?;
        let value: String = c
            .query_one("SELECT value FROM server_secrets WHERE name = $1", &[&name])
            .await
            .map_err(pg_err)?
            .get(0);
        Ok((value, inserted == 1))
    }

    /// Upkeep as of `now`: the partitions from `now`'s month to
    /// `MONTHS_AHEAD` later exist afterwards, holding the rows the default
    /// partition had for them.
    pub async fn maintain(&self, now: time::OffsetDateTime) -> Result<(), StoreError> {
        let mut client = connect(&self.config).await?;
        schema::ensure_partitions(&mut client, &self.schema, self.locks.migrate, now).await
    }
}

/// Marks a change of the tenant's definitions or settings for the other
/// instances, inside the transaction that makes it.
pub(super) async fn bump_revision(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: &str,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO tenant_revisions (tenant_id, revision) VALUES ($1, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET revision = tenant_revisions.revision + 1",
        &[&tenant],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}
