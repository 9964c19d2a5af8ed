//! The PostgreSQL storage floor for `herald-bench` (feature `bench`):
//! Herald's schema and indexes, rows written by binary `COPY` into a
//! staging table and moved with one `INSERT ... SELECT` per batch (the
//! full-text vector is computed there), one transaction per batch; no HTTP,
//! decoding, queue, idempotency or stream bookkeeping.

use herald_core::CanonicalEvent;
use tokio_postgres::types::Type;

use super::columns::{Columns, insert_events_from};
use super::{LockKeys, config_for, connect, pg_err, schema};
use crate::records::StoreError;

/// Creates Herald's schema `schema` (dropping an older one), with the
/// partitions from `now`'s month on, and returns a connection using it.
pub async fn open(
    url: &str,
    schema: &str,
    now: time::OffsetDateTime,
) -> Result<tokio_postgres::Client, StoreError> {
    let config = config_for(url, schema)?;
    let mut client = connect(&config).await?;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .map_err(pg_err)?;
    schema::migrate(
        &mut client,
        schema,
        LockKeys::for_schema(schema).migrate,
        now,
    )
    .await?;
    Ok(client)
}

/// Drops the floor's schema.
pub async fn drop_schema(client: &tokio_postgres::Client, schema: &str) {
    let _ = client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await;
}

/// Inserts one batch in one transaction: binary `COPY` into a staging
/// table, then one `INSERT ... SELECT` that computes the full-text vector.
pub async fn insert_batch(
    client: &mut tokio_postgres::Client,
    events: &[CanonicalEvent],
) -> Result<(), StoreError> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;

    let refs: Vec<&CanonicalEvent> = events.iter().collect();
    let columns = Columns::of(&refs);
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TEMP TABLE IF NOT EXISTS events_stage (event_id uuid, tenant_id text, ts int8, processing_ts int8, \
         category text, event_category text, event_type text, event_source text, status text, outcome_status text, \
         trace_id text, span_id text, correlation_id text, request_id text, order_id text, session_id text, \
         ticket_id text, user_id text, email_hash text, environment text, service text, stream_id text, \
         stream_version int8, idempotency_key text, body text, search text) ON COMMIT DELETE ROWS",
    )
    .await
    .map_err(pg_err)?;
    let mut types = vec![Type::UUID, Type::TEXT, Type::INT8, Type::INT8];
    types.extend([Type::TEXT; 18]);
    types.push(Type::INT8);
    types.extend([Type::TEXT; 3]);
    let sink = tx
        .copy_in("COPY events_stage FROM STDIN BINARY")
        .await
        .map_err(pg_err)?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    for i in 0..events.len() {
        writer
            .as_mut()
            .write(&columns.row(i))
            .await
            .map_err(pg_err)?;
    }
    writer.finish().await.map_err(pg_err)?;
    tx.execute(&insert_events_from("events_stage"), &[])
        .await
        .map_err(pg_err)?;
    tx.commit().await.map_err(pg_err)
}
