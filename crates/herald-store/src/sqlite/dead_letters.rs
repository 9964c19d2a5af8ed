//! Dead letters on the embedded store: the shared statements, run by the
//! reader pool or, for changes, by the writer.

use rusqlite::params;

use super::{SqliteStore, map_rows, sql_values};
use crate::query::Arg;
use crate::records::*;
use crate::rows::RowAccess;
use crate::store::dead_letters::sql::{self, dead_letter_row, owned_attempt_row};

impl SqliteStore {
    pub(crate) async fn dead_letter_rows(
        &self,
        text: String,
        args: Vec<Arg>,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&text)?,
                rusqlite::params_from_iter(sql_values(args)),
                |r| dead_letter_row(r),
            )
        })
        .await
    }

    pub(crate) async fn redrive_dead_letters(
        &self,
        text: String,
        args: Vec<Arg>,
    ) -> Result<usize, StoreError> {
        self.write(move |c| {
            let ids = map_rows(
                &mut c.prepare_cached(&text)?,
                rusqlite::params_from_iter(sql_values(args)),
                |r| r.text(0),
            )?;
            Ok(ids.len())
        })
        .await
    }

    pub(crate) async fn discard_dead_letter(
        &self,
        tenant: String,
        id: String,
    ) -> Result<bool, StoreError> {
        self.write(move |c| {
            if c.prepare_cached(sql::DISCARD)?
                .execute(params![tenant, id])?
                == 0
            {
                return Ok(false);
            }
            c.prepare_cached(sql::DISCARD_ATTEMPTS)?
                .execute(params![id])?;
            Ok(true)
        })
        .await
    }

    pub(crate) async fn attempts_of(
        &self,
        text: String,
        args: Vec<Arg>,
    ) -> Result<Vec<(String, DeliveryAttempt)>, StoreError> {
        self.read(move |c| {
            map_rows(
                &mut c.prepare_cached(&text)?,
                rusqlite::params_from_iter(sql_values(args)),
                |r| owned_attempt_row(r),
            )
        })
        .await
    }
}
