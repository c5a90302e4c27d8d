//! The raw database doing the same writes and reads as the framework: plain sqlx
//! statements on a table shaped like the store's `events` (`LIKE ... INCLUDING ALL`: the
//! same columns, defaults, identity, constraints and indexes), in its own schema of the
//! same database. Rows carry the same values: stream type and id, version, a fresh UUID
//! v7 event id, the event type, a jsonb payload identical to the codec's, and metadata
//! with a fresh correlation id, as the engine writes them.

use cqrs_postgres::sqlx::postgres::{PgPool, PgRow};
use cqrs_postgres::sqlx::types::chrono::{DateTime, Utc};
use cqrs_postgres::sqlx::{self, PgConnection, Postgres, QueryBuilder, Row};
use cqrs_postgres::PgStore;
use futures::TryStreamExt;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::BenchError;

/// The columns an insert writes; the rest (position, transaction id, recorded at) come
/// from the defaults, as in `append_events`.
const COLUMNS: &str =
    "stream_type, stream_id, stream_version, event_id, event_type, event_version, data, metadata";

/// A raw copy of a store's events table.
pub struct RawTable {
    /// `"schema".events`.
    table: String,
    insert_one: String,
}

/// One row as the framework would write it.
struct RawEvent {
    version: i64,
    event_type: &'static str,
    data: Value,
    metadata: Value,
}

impl RawEvent {
    /// The `version`-th event of an account: opened, then deposits of `amount`.
    fn new(version: i64, amount: u64) -> Self {
        let (event_type, data) = if version == 1 {
            ("account.opened", json!({ "owner": "Ada" }))
        } else {
            ("account.deposited", json!({ "amount": amount }))
        };
        Self {
            version,
            event_type,
            data,
            metadata: json!({ "correlation_id": Uuid::now_v7() }),
        }
    }
}

impl RawTable {
    /// Creates schema `<store schema>_raw` with `events` shaped like the store's.
    pub async fn create(store: &PgStore) -> Result<Self, BenchError> {
        let schema = format!("\"{}_raw\"", store.schema());
        let table = format!("{schema}.events");
        for sql in [
            format!("CREATE SCHEMA {schema}"),
            format!(
                "CREATE TABLE {table} (LIKE \"{}\".events INCLUDING ALL)",
                store.schema()
            ),
        ] {
            sqlx::query(&sql).execute(store.pool()).await?;
        }
        Ok(Self {
            insert_one: format!(
                "INSERT INTO {table} ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            ),
            table,
        })
    }

    /// The schema to drop when done.
    pub fn schema(store: &PgStore) -> String {
        format!("{}_raw", store.schema())
    }

    /// One single-row INSERT per command, each its own (implicit) transaction, on one
    /// connection held throughout: `(account id, command index)` as in
    /// `memory::round_robin` (index 0 opens the account, the others deposit).
    pub async fn insert_commands(
        &self,
        conn: &mut PgConnection,
        work: &[(String, usize)],
    ) -> Result<(), BenchError> {
        for (id, i) in work {
            let event = RawEvent::new(*i as i64 + 1, 100 + *i as u64);
            sqlx::query(&self.insert_one)
                .bind("account")
                .bind(id)
                .bind(event.version)
                .bind(Uuid::now_v7())
                .bind(event.event_type)
                .bind(1_i32)
                .bind(&event.data)
                .bind(&event.metadata)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// One multi-row INSERT (`VALUES (...), (...)`) of `count` deposits to stream `id`
    /// from version `from_version`, in an implicit transaction.
    pub async fn insert_batch(
        &self,
        conn: &mut PgConnection,
        id: &str,
        from_version: i64,
        count: usize,
    ) -> Result<(), BenchError> {
        let events: Vec<RawEvent> = (0..count as i64)
            .map(|i| RawEvent::new(from_version + i, (i + 1) as u64))
            .collect();
        let mut query =
            QueryBuilder::<Postgres>::new(format!("INSERT INTO {} ({COLUMNS}) ", self.table));
        query.push_values(&events, |mut row, event| {
            row.push_bind("account")
                .push_bind(id)
                .push_bind(event.version)
                .push_bind(Uuid::now_v7())
                .push_bind(event.event_type)
                .push_bind(1_i32)
                .push_bind(&event.data)
                .push_bind(&event.metadata);
        });
        query.build().execute(&mut *conn).await?;
        Ok(())
    }
}

/// The columns and order of the store's global read, without its horizon condition,
/// limit or keyset: a plain `SELECT` of every row in index order (the columns qualified
/// in `ORDER BY`, or it would sort on the output column `(transaction_id::text)::bigint`),
/// streamed, each column decoded into an owned value (jsonb into `serde_json::Value`, as
/// the store does). Returns the number of rows.
pub async fn select_all(pool: &PgPool, store: &PgStore) -> Result<usize, BenchError> {
    let sql = format!(
        "SELECT position, (transaction_id::text)::bigint, stream_type, stream_id, \
         stream_version, event_id, event_type, event_version, data, metadata, recorded_at \
         FROM \"{}\".events ORDER BY events.transaction_id, events.position",
        store.schema()
    );
    let mut conn = pool.acquire().await?;
    let mut rows = sqlx::query(&sql).fetch(&mut *conn);
    let mut count = 0;
    while let Some(row) = rows.try_next().await? {
        let decoded = decode(&row)?;
        std::hint::black_box(decoded);
        count += 1;
    }
    Ok(count)
}

type Decoded = (
    i64,
    i64,
    String,
    String,
    i64,
    Uuid,
    String,
    i32,
    Value,
    Value,
    DateTime<Utc>,
);

fn decode(row: &PgRow) -> Result<Decoded, sqlx::Error> {
    Ok((
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
        row.try_get(4)?,
        row.try_get(5)?,
        row.try_get(6)?,
        row.try_get(7)?,
        row.try_get(8)?,
        row.try_get(9)?,
        row.try_get(10)?,
    ))
}
