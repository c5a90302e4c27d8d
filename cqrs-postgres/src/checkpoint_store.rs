//! What subscriptions keep on [`PgStore`]: checkpoints (also inside a caller's
//! transaction, for read models in the same database), leases (in `lease.rs`), dead
//! letters, operators' requests and the runners' records.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_core::{
    CheckpointStore, DeadLetter, Discarded, EventFilter, Lease, LeaseHolder, PendingRequest,
    Position, RecordedState, SavedCheckpoint, StoreError, StoredEvent, SubscriptionName,
    SubscriptionRecord, SubscriptionRequest,
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
        self.run(query).await?;
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
        self.run(query).await?;
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
        Ok(self.run(query).await? > 0)
    }

    async fn discarded(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError> {
        self.letters(name, true).await
    }

    async fn resolve(&self, name: &SubscriptionName, event_id: Uuid) -> Result<bool, StoreError> {
        let query = sqlx::query(&self.sql.resolve)
            .bind(name.as_str())
            .bind(event_id);
        Ok(self.run(query).await? > 0)
    }

    async fn request(
        &self,
        name: &SubscriptionName,
        request: SubscriptionRequest,
    ) -> Result<PendingRequest, StoreError> {
        let id = Uuid::now_v7();
        let (event_id, position) = match request {
            SubscriptionRequest::RetryDeadLetter(event_id) => (Some(event_id), None),
            SubscriptionRequest::ResetTo(position) => (None, Some(position)),
            _ => (None, None),
        };
        let query = sqlx::query(&self.sql.request)
            .bind(id)
            .bind(name.as_str())
            .bind(request.kind())
            .bind(event_id)
            .bind(position.map(|p| p.commit() as i64))
            .bind(position.map(|p| p.sequence() as i64));
        let row = self.connection().await?.fetch_one(query).await;
        let requested_at = row.and_then(|row| row.try_get(0)).map_err(map_sqlx)?;
        Ok(PendingRequest::new(id, request, requested_at))
    }

    async fn requests(&self, name: &SubscriptionName) -> Result<Vec<PendingRequest>, StoreError> {
        let query = sqlx::query(&self.sql.requests).bind(name.as_str());
        let rows = self.connection().await?.fetch_all(query).await;
        rows.map_err(map_sqlx)?
            .iter()
            .map(pending_request)
            .collect()
    }

    async fn complete_request(
        &self,
        name: &SubscriptionName,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(&self.sql.complete_request)
            .bind(name.as_str())
            .bind(id);
        Ok(self.run(query).await? > 0)
    }

    async fn record(&self, record: &SubscriptionRecord) -> Result<(), StoreError> {
        let error = match &record.state {
            // As for a parked error: text cannot hold NUL.
            RecordedState::Failed { error } => Some(error.replace('\0', "\u{fffd}")),
            _ => None,
        };
        let query = sqlx::query(&self.sql.record)
            .bind(record.checkpoint.as_str())
            .bind(record.filter.stream_types())
            .bind(record.filter.event_types())
            .bind(record.state.as_str())
            .bind(error)
            .bind(record.recorded_at);
        self.run(query).await?;
        Ok(())
    }

    async fn records(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let query = sqlx::query(&self.sql.records);
        let rows = self.connection().await?.fetch_all(query).await;
        rows.map_err(map_sqlx)?
            .iter()
            .map(subscription_record)
            .collect()
    }

    async fn lease_holder(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<LeaseHolder>, StoreError> {
        self.lease_holder_impl(name).await
    }
}

/// A row of `subscription_requests` (the table's checks make each kind's columns present).
fn pending_request(row: &PgRow) -> Result<PendingRequest, StoreError> {
    let id: Uuid = row.try_get(0).map_err(map_sqlx)?;
    let kind: String = row.try_get(1).map_err(map_sqlx)?;
    let event_id: Option<Uuid> = row.try_get(2).map_err(map_sqlx)?;
    let commit: Option<i64> = row.try_get(3).map_err(map_sqlx)?;
    let sequence: Option<i64> = row.try_get(4).map_err(map_sqlx)?;
    let request = match (kind.as_str(), event_id, commit.zip(sequence)) {
        ("retry", Some(event_id), _) => SubscriptionRequest::RetryDeadLetter(event_id),
        ("retry-all", _, _) => SubscriptionRequest::RetryDeadLetters,
        ("reset", _, Some((commit, sequence))) => {
            SubscriptionRequest::ResetTo(Position::from_parts(commit as u64, sequence as u64))
        }
        ("rebuild", _, _) => SubscriptionRequest::Rebuild,
        _ => {
            return Err(backend(format!(
                "stored request {id} of kind {kind:?} does not read"
            )))
        }
    };
    Ok(PendingRequest::new(
        id,
        request,
        row.try_get(5).map_err(map_sqlx)?,
    ))
}

/// A row of `subscription_records`.
fn subscription_record(row: &PgRow) -> Result<SubscriptionRecord, StoreError> {
    let checkpoint: String = row.try_get(0).map_err(map_sqlx)?;
    let invalid = |what: &str, e: &dyn std::fmt::Display| {
        backend(format!(
            "the record of {checkpoint:?} holds an invalid {what}: {e}"
        ))
    };
    let name = SubscriptionName::new(checkpoint.as_str()).map_err(|e| invalid("name", &e))?;
    let stream_types: Vec<String> = row.try_get(1).map_err(map_sqlx)?;
    let event_types: Vec<String> = row.try_get(2).map_err(map_sqlx)?;
    let filter = EventFilter::all()
        .with_stream_types(stream_types)
        .and_then(|f| f.with_event_types(event_types))
        .map_err(|e| invalid("filter", &e))?;
    let state: String = row.try_get(3).map_err(map_sqlx)?;
    let error: Option<String> = row.try_get(4).map_err(map_sqlx)?;
    let state = match (state.as_str(), error) {
        ("running", _) => RecordedState::Running,
        ("stopped", _) => RecordedState::Stopped,
        ("failed", Some(error)) => RecordedState::Failed { error },
        (other, _) => return Err(invalid("state", &other)),
    };
    Ok(SubscriptionRecord::new(name, filter, state).recorded_at(row.try_get(5).map_err(map_sqlx)?))
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
        let events = letters.iter().map(|l| Arc::clone(&l.event)).collect();
        for (letter, event) in letters.iter_mut().zip(self.open(events, false).await?) {
            letter.event = event;
        }
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
