//! Named durable cursors over the commit order on PostgreSQL (kept in the
//! `publish_cursors` table, whose name predates other followers).

use tokio_postgres::GenericClient;

use super::{PgStore, pg_err};
use crate::query::numbered;
use crate::records::*;
use crate::store::cursors::sql;

impl PgStore {
    pub async fn cursor(&self, name: &str) -> Result<i64, StoreError> {
        let c = self.conn().await?;
        let client: &tokio_postgres::Client = &c;
        cursor_at(client, name).await
    }

    pub async fn advance_cursor(&self, to: CursorMove) -> Result<(), StoreError> {
        to.check()?;
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let pg_tx: &tokio_postgres::Transaction<'_> = &tx;
        apply_cursor_move(pg_tx, &to).await?;
        tx.commit().await.map_err(pg_err)
    }
}

async fn cursor_at(c: &impl GenericClient, name: &str) -> Result<i64, StoreError> {
    Ok(c.query_opt(&numbered(sql::AT), &[&name])
        .await
        .map_err(pg_err)?
        .map(|r| r.get(0))
        .unwrap_or(0))
}

/// Applies `m` inside the caller's transaction, so a follower's effects
/// and its cursor move commit together: `Conflict(CursorMoved)` when the
/// cursor is no longer at `m.from`. The row lock makes a concurrent move
/// wait, then find the cursor moved.
pub(crate) async fn apply_cursor_move(
    tx: &impl GenericClient,
    m: &CursorMove,
) -> Result<(), StoreError> {
    let mut moved = tx
        .execute(&numbered(sql::MOVE), &[&m.to, &m.name, &m.from])
        .await
        .map_err(pg_err)?;
    if moved == 0 && m.from == 0 {
        moved = tx
            .execute(&numbered(sql::START), &[&m.name, &m.to])
            .await
            .map_err(pg_err)?;
    }
    if moved == 0 {
        return Err(m.moved(cursor_at(tx, &m.name).await?));
    }
    Ok(())
}
