//! Dead letters on PostgreSQL: the shared statements with typed arguments
//! (one round trip, no prepared statement for a shape that may not repeat).

use super::{PgStore, clean, map_rows, pg_err, typed};
use crate::query::{Arg, numbered};
use crate::records::*;
use crate::store::dead_letters::sql::{self, dead_letter_row, owned_attempt_row};

impl PgStore {
    pub(crate) async fn dead_letter_rows(
        &self,
        text: String,
        mut args: Vec<Arg>,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query_typed(&numbered(&text), &typed(&mut args))
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| dead_letter_row(r))
    }

    pub(crate) async fn redrive_dead_letters(
        &self,
        text: String,
        mut args: Vec<Arg>,
    ) -> Result<usize, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query_typed(&numbered(&text), &typed(&mut args))
            .await
            .map_err(pg_err)?;
        Ok(rows.len())
    }

    pub(crate) async fn discard_dead_letter(
        &self,
        tenant: String,
        id: String,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await.map_err(pg_err)?;
        let id = clean(&id);
        let gone = tx
            .execute(&numbered(sql::DISCARD), &[&clean(&tenant), &id])
            .await
            .map_err(pg_err)?;
        if gone == 0 {
            return Ok(false);
        }
        tx.execute(&numbered(sql::DISCARD_ATTEMPTS), &[&id])
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)?;
        Ok(true)
    }

    pub(crate) async fn attempts_of(
        &self,
        text: String,
        mut args: Vec<Arg>,
    ) -> Result<Vec<(String, DeliveryAttempt)>, StoreError> {
        let c = self.conn().await?;
        let rows = c
            .query_typed(&numbered(&text), &typed(&mut args))
            .await
            .map_err(pg_err)?;
        map_rows(&rows, |r| owned_attempt_row(r))
    }
}
