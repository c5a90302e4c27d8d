//! What subscriptions keep on [`PgStore`]: checkpoints (also inside a caller's
//! transaction, for read models in the same database), leases (in `lease.rs`) and dead
//! letters.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_core::{
    CheckpointStore, DeadLetter, Discarded, Lease, Position, SavedCheckpoint, StoreError,
    StoredEvent, SubscriptionName,
};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row};
use uuid::Uuid;

use crate::error::{backend, map_sqlx};
use crate::row::{read_row, row_stream};
use crate::sql::EVENT_COLUMN_COUNT;
use crate::PgStore;

impl PgStore {
    /// Saves a checkpoint like [`CheckpointStore::save_checkpoint`], on a connection of the
    /// caller: inside the caller's transaction when `conn` is one, so that a read model
    /// kept in the same database and its checkpoint commit together (exactly-once effect).
    pub async fn save_checkpoint_in(
        &self,
        conn: &mut PgConnection,
        name: &SubscriptionName,
        position: Position,
    ) -> Result<(), StoreError> {
        self.save_checkpoint_query(name, position)
            .execute(conn)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    /// The statement that saves a checkpoint (an upsert).
    fn save_checkpoint_query<'q>(
        &'q self,
        name: &'q SubscriptionName,
        position: Position,
    ) -> Query<'q, Postgres, PgArguments> {
        sqlx::query(&self.sql.save_checkpoint)
            .bind(name.as_str())
            // Bit for bit: u64 -> i64 -> u64 is lossless.
            .bind(position.commit() as i64)
            .bind(position.sequence() as i64)
    }
}

#[async_trait]
impl CheckpointStore for PgStore {
    async fn load_checkpoint(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Position>, StoreError> {
        let query = sqlx::query(&self.sql.load_checkpoint).bind(name.as_str());
        let row = self.connection().await?.fetch_optional(query).await;
        let Some(row) = row.map_err(map_sqlx)? else {
            return Ok(None);
        };
        let commit: i64 = row.try_get(0).map_err(map_sqlx)?;
        let sequence: i64 = row.try_get(1).map_err(map_sqlx)?;
        Ok(Some(Position::from_parts(commit as u64, sequence as u64)))
    }

    async fn save_checkpoint(
        &self,
        name: &SubscriptionName,
        position: Position,
    ) -> Result<(), StoreError> {
        let query = self.save_checkpoint_query(name, position);
        self.connection()
            .await?
            .execute(query)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<SavedCheckpoint>, StoreError> {
        let query = sqlx::query(&self.sql.checkpoints);
        let rows = self.connection().await?.fetch_all(query).await;
        rows.map_err(map_sqlx)?
            .iter()
            .map(|row| {
                let name: String = row.try_get(0).map_err(map_sqlx)?;
                let name = SubscriptionName::new(name.as_str()).map_err(|e| {
                    backend(format!("stored checkpoint name {name:?} is invalid: {e}"))
                })?;
                let commit: i64 = row.try_get(1).map_err(map_sqlx)?;
                let sequence: i64 = row.try_get(2).map_err(map_sqlx)?;
                Ok(SavedCheckpoint::new(
                    name,
                    Position::from_parts(commit as u64, sequence as u64),
                    row.try_get(3).map_err(map_sqlx)?,
                ))
            })
            .collect()
    }

    /// A session-level advisory lock on a connection of the lease's own (see the
    /// PostgreSQL chapter of the guide, "Subscriptions").
    async fn acquire_lease(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Box<dyn Lease>>, StoreError> {
        self.acquire_lease_impl(name).await
    }

    /// An upsert into `dead_letters` keyed by (subscription, event id). The event must be
    /// stored in this store's `events` table (a foreign key): it is referenced, not copied.
    async fn park(
        &self,
        name: &SubscriptionName,
        event: &StoredEvent,
        error: &str,
    ) -> Result<(), StoreError> {
        // PostgreSQL text cannot hold NUL; an error message is prose, so replace it.
        let error = error.replace('\0', "\u{fffd}");
        // Kept whole when this store does not hold the event (a bus consumer's).
        let document = event.to_cloudevent();
        let query = sqlx::query(&self.sql.park)
            .bind(name.as_str())
            .bind(event.event_id)
            .bind(&error)
            .bind(document);
        self.connection()
            .await?
            .execute(query)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }

    async fn parked(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError> {
        self.letters(name, false).await
    }

    async fn discard(
        &self,
        name: &SubscriptionName,
        event_id: Uuid,
        reason: &str,
    ) -> Result<bool, StoreError> {
        // As for a parked error: text cannot hold NUL.
        let reason = reason.replace('\0', "\u{fffd}");
        let query = sqlx::query(&self.sql.discard)
            .bind(name.as_str())
            .bind(event_id)
            .bind(&reason);
        let done = self
            .connection()
            .await?
            .execute(query)
            .await
            .map_err(map_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn discarded(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError> {
        self.letters(name, true).await
    }
}

impl PgStore {
    /// The dead letters of `name`: the discarded ones, or the others.
    async fn letters(
        &self,
        name: &SubscriptionName,
        discarded: bool,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let query = sqlx::query(&self.sql.parked)
            .bind(name.as_str())
            .bind(discarded);
        let rows = self.connection().await?.fetch_all(query).await;
        let rows = rows.map_err(map_sqlx)?;
        let mut last = None;
        let mut letters = rows
            .iter()
            .map(|row| {
                // Leniently: a row parked because it does not read is listed all the
                // same (its dead letter says what is wrong with it).
                let (event, _) = read_row(row, row_stream(row, &mut last)?)?;
                letter(Arc::new(event), row, EVENT_COLUMN_COUNT)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let query = sqlx::query(&self.sql.parked_elsewhere)
            .bind(name.as_str())
            .bind(discarded);
        let rows = self.connection().await?.fetch_all(query).await;
        for row in rows.map_err(map_sqlx)? {
            let document: serde_json::Value = row.try_get(0).map_err(map_sqlx)?;
            let event = StoredEvent::from_cloudevent(&document)
                .map_err(|e| backend(format!("a dead letter of {name} does not read back: {e}")))?;
            letters.push(letter(Arc::new(event), &row, 1)?);
        }
        // In global order, as the trait says; stable, so events parked from elsewhere at
        // the same position stay in the order they were parked.
        letters.sort_by_key(|letter| letter.event.position);
        Ok(letters)
    }
}

/// A dead letter of `event` from the columns of `row` from `at` on: error, parked_at,
/// discard_reason, discarded_at.
fn letter(event: Arc<StoredEvent>, row: &PgRow, at: usize) -> Result<DeadLetter, StoreError> {
    let reason: Option<String> = row.try_get(at + 2).map_err(map_sqlx)?;
    let discarded_at: Option<DateTime<Utc>> = row.try_get(at + 3).map_err(map_sqlx)?;
    Ok(DeadLetter {
        event,
        error: row.try_get(at).map_err(map_sqlx)?,
        parked_at: row.try_get(at + 1).map_err(map_sqlx)?,
        discarded: reason
            .zip(discarded_at)
            .map(|(reason, at)| Discarded { reason, at }),
    })
}
