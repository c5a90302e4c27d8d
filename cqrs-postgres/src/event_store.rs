//! The three store traits on [`PgStore`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_core::{
    CheckpointStore, DeadLetter, EventFilter, EventStore, ExpectedVersion, Lease, Metadata,
    NewEvent, Position, Snapshot, SnapshotStore, StoreError, StoredEvent, StreamId,
};
use sqlx::postgres::{PgRow, Postgres};
use sqlx::{Connection, PgConnection, PgExecutor, Row, Transaction};
use uuid::Uuid;

use crate::error::{is_unavailable, map_sqlx};
use crate::sql::{filter_index, EVENT_COLUMN_COUNT};
use crate::PgStore;

/// SQLSTATE raised by `append_events` on a version mismatch (DETAIL: the actual version).
const CONFLICT: &str = "CQ001";
/// SQLSTATE raised by `append_events` on an empty batch.
const EMPTY: &str = "CQ002";

fn backend(message: String) -> StoreError {
    StoreError::Backend(message.into())
}

/// `usize` / `u64` counts and versions to SQL `bigint`, saturating.
fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl PgStore {
    /// Appends like [`EventStore::append`], on a connection of the caller: inside the
    /// caller's transaction when `conn` is one (`&mut *tx`), so that the events commit or
    /// roll back with the caller's other writes. The returned events are only durable once
    /// that transaction commits.
    ///
    /// The store's [inline projections](PgStore::with_inline_projection) run too, in a
    /// savepoint of the caller's transaction (or in a transaction of their own when `conn`
    /// is in none): when one fails, the append and the projections' writes are undone and
    /// the caller's transaction can go on.
    ///
    /// ```no_run
    /// # async fn demo(store: cqrs_postgres::PgStore, stream: cqrs_core::StreamId,
    /// #     events: Vec<cqrs_core::NewEvent>) -> Result<(), Box<dyn std::error::Error>> {
    /// use cqrs_core::ExpectedVersion;
    /// let mut tx = store.pool().begin().await?;
    /// store.append_in(&mut tx, &stream, ExpectedVersion::NoStream, events).await?;
    /// // ... other writes in the same transaction ...
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn append_in(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if self.inline.is_empty() {
            return self.append_on(conn, stream, expected, events).await;
        }
        if events.is_empty() {
            return Err(StoreError::EmptyAppend {
                stream: stream.clone(),
            });
        }
        // sqlx makes this a SAVEPOINT inside a transaction it began, a BEGIN otherwise.
        let tx = conn.begin().await.map_err(map_sqlx)?;
        self.append_with_inline(tx, stream, expected, events).await
    }

    /// Saves a checkpoint like [`CheckpointStore::save_checkpoint`], on a connection of the
    /// caller: inside the caller's transaction when `conn` is one, so that a read model
    /// kept in the same database and its checkpoint commit together (exactly-once effect).
    pub async fn save_checkpoint_in(
        &self,
        conn: &mut PgConnection,
        name: &str,
        position: Position,
    ) -> Result<(), StoreError> {
        self.save_checkpoint_on(conn, name, position).await
    }

    /// Appends in `tx`, runs the inline projections on the stored events, and commits
    /// `tx` (a transaction or a savepoint); on any failure, rolls it back first.
    async fn append_with_inline(
        &self,
        mut tx: Transaction<'_, Postgres>,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let ran = match self.append_on(&mut *tx, stream, expected, events).await {
            Ok(stored) => self
                .run_inline(&mut tx, stream, &stored)
                .await
                .map(|()| stored),
            Err(e) => Err(e),
        };
        match ran {
            Ok(stored) => {
                tx.commit().await.map_err(map_sqlx)?;
                Ok(stored)
            }
            Err(e) => {
                // Explicitly, so that a savepoint is undone before the caller's next
                // statement; and a connection that broke is reported as such.
                if let Err(rollback) = tx.rollback().await {
                    if is_unavailable(&rollback) {
                        return Err(map_sqlx(rollback));
                    }
                }
                Err(e)
            }
        }
    }

    async fn append_on<'e, E: PgExecutor<'e>>(
        &self,
        executor: E,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if events.is_empty() {
            return Err(StoreError::EmptyAppend {
                stream: stream.clone(),
            });
        }
        let expected_param: i64 = match expected {
            ExpectedVersion::Any => -1,
            ExpectedVersion::NoStream => 0,
            ExpectedVersion::Exact(v) => i64::try_from(v)
                .map_err(|_| backend(format!("expected version {v} is out of range")))?,
        };
        let n = events.len();
        let mut ids = Vec::with_capacity(n);
        let mut types = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut data = Vec::with_capacity(n);
        let mut metadata = Vec::with_capacity(n);
        for event in &events {
            ids.push(event.event_id());
            types.push(event.event_type());
            versions.push(i32::try_from(event.event_version()).map_err(|_| {
                backend(format!(
                    "event version {} of {} is out of range",
                    event.event_version(),
                    event.event_type()
                ))
            })?);
            data.push(event.data());
            // Serialised once, straight to jsonb: no intermediate `Value`.
            metadata.push(sqlx::types::Json(event.metadata()));
        }
        let result = sqlx::query(&self.sql.append)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(expected_param)
            .bind(&ids)
            .bind(&types)
            .bind(&versions)
            .bind(&data)
            .bind(&metadata)
            .fetch_all(executor)
            .await;
        let rows = match result {
            Ok(rows) => rows,
            Err(e) => return Err(self.append_error(e, stream, expected, &ids).await),
        };
        if rows.len() != n {
            return Err(backend(format!(
                "append to {stream} returned {} rows for {n} events",
                rows.len()
            )));
        }
        let mut placed: Vec<(i64, i64, i64, DateTime<Utc>)> = Vec::with_capacity(n);
        for row in &rows {
            placed.push((
                row.try_get(0).map_err(map_sqlx)?,
                row.try_get(1).map_err(map_sqlx)?,
                row.try_get(2).map_err(map_sqlx)?,
                row.try_get(3).map_err(map_sqlx)?,
            ));
        }
        placed.sort_unstable_by_key(|p| p.2);
        Ok(events
            .into_iter()
            .zip(placed)
            .map(|(event, (position, commit, version, recorded_at))| {
                Arc::new(event.into_stored(
                    stream.clone(),
                    version as u64,
                    Position::from_parts(commit as u64, position as u64),
                    recorded_at,
                ))
            })
            .collect())
    }

    /// Turns a failed append into the right [`StoreError`].
    async fn append_error(
        &self,
        e: sqlx::Error,
        stream: &StreamId,
        expected: ExpectedVersion,
        ids: &[Uuid],
    ) -> StoreError {
        let sqlx::Error::Database(db) = &e else {
            return map_sqlx(e);
        };
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
        match (code.as_str(), db.constraint()) {
            (CONFLICT, _) => {
                let actual = pg
                    .and_then(|pg| pg.detail())
                    .and_then(|d| d.trim().parse::<u64>().ok());
                match actual {
                    Some(actual) => StoreError::Conflict {
                        stream: stream.clone(),
                        expected,
                        actual,
                    },
                    None => map_sqlx(e),
                }
            }
            (EMPTY, _) => StoreError::EmptyAppend {
                stream: stream.clone(),
            },
            ("23505", Some("events_event_id_unique")) => {
                let detail = pg.and_then(|pg| pg.detail()).unwrap_or_default();
                let event_id = ids
                    .iter()
                    .copied()
                    .find(|id| detail.contains(&id.to_string()))
                    .or_else(|| ids.first().copied())
                    .unwrap_or_default();
                StoreError::DuplicateEventId {
                    stream: stream.clone(),
                    event_id,
                }
            }
            // Only reachable if rows were written around `append_events`: the stream row
            // and the events disagree. Report the version the events table holds.
            ("23505", Some("events_stream_version_unique")) => {
                match self.current_version(stream).await {
                    Ok(actual) => StoreError::Conflict {
                        stream: stream.clone(),
                        expected,
                        actual,
                    },
                    Err(other) => other,
                }
            }
            _ => map_sqlx(e),
        }
    }

    async fn current_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let version: Option<i64> = sqlx::query_scalar(&self.sql.stream_version)
            .bind(stream.stream_type())
            .bind(stream.id())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(version.unwrap_or(0) as u64)
    }

    async fn save_checkpoint_on<'e, E: PgExecutor<'e>>(
        &self,
        executor: E,
        name: &str,
        position: Position,
    ) -> Result<(), StoreError> {
        cqrs_core::ident::validate("subscription name", name)?;
        sqlx::query(&self.sql.save_checkpoint)
            .bind(name)
            // Bit for bit: u64 -> i64 -> u64 is lossless.
            .bind(position.commit() as i64)
            .bind(position.sequence() as i64)
            .execute(executor)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }
}

/// The stream of a row of `EVENT_COLUMNS`, reusing `last` when the row is of the same
/// stream (consecutive events of one stream are common in a global read; this saves two
/// allocations per row).
fn row_stream(row: &PgRow, last: &mut Option<StreamId>) -> Result<StreamId, StoreError> {
    let stream_type: &str = row.try_get(2).map_err(map_sqlx)?;
    let stream_id: &str = row.try_get(3).map_err(map_sqlx)?;
    if let Some(stream) = last {
        if stream.stream_type() == stream_type && stream.id() == stream_id {
            return Ok(stream.clone());
        }
    }
    let stream = StreamId::new(stream_type, stream_id).map_err(|e| {
        backend(format!(
            "stored stream id {stream_type:?}/{stream_id:?} is invalid: {e}"
        ))
    })?;
    *last = Some(stream.clone());
    Ok(stream)
}

/// Builds a stored event from a row of `EVENT_COLUMNS`, of `stream`.
fn row_to_event(row: &PgRow, stream: StreamId) -> Result<StoredEvent, StoreError> {
    let position: i64 = row.try_get(0).map_err(map_sqlx)?;
    let commit: i64 = row.try_get(1).map_err(map_sqlx)?;
    let stream_version: i64 = row.try_get(4).map_err(map_sqlx)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: stream.clone(),
        stream_version: stream_version as u64,
        reason,
    };
    let event_version: i32 = row.try_get(7).map_err(map_sqlx)?;
    let event_version = u32::try_from(event_version)
        .map_err(|_| corrupt(format!("negative event version {event_version}")))?;
    let metadata: serde_json::Value = row.try_get(9).map_err(map_sqlx)?;
    let metadata: Metadata = serde_json::from_value(metadata)
        .map_err(|e| corrupt(format!("metadata does not deserialise: {e}")))?;
    Ok(StoredEvent {
        event_id: row.try_get(5).map_err(map_sqlx)?,
        stream,
        stream_version: stream_version as u64,
        position: Position::from_parts(commit as u64, position as u64),
        event_type: row.try_get(6).map_err(map_sqlx)?,
        event_version,
        recorded_at: row.try_get(10).map_err(map_sqlx)?,
        metadata,
        data: row.try_get(8).map_err(map_sqlx)?,
    })
}

#[async_trait]
impl EventStore for PgStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if self.inline.is_empty() {
            // One statement in an implicit transaction: one round trip.
            return self.append_on(&self.pool, stream, expected, events).await;
        }
        if events.is_empty() {
            return Err(StoreError::EmptyAppend {
                stream: stream.clone(),
            });
        }
        let tx = self.pool.begin().await.map_err(map_sqlx)?;
        self.append_with_inline(tx, stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&self.sql.read_stream)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(clamp_i64(from_version))
            .bind(clamp_i64(max_count as u64))
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.iter()
            .map(|row| row_to_event(row, stream.clone()).map(Arc::new))
            .collect()
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let by_stream = !filter.stream_types.is_empty();
        let by_event = !filter.event_types.is_empty();
        let mut query = sqlx::query(&self.sql.read_all[filter_index(by_stream, by_event)])
            .bind(after.commit().to_string())
            .bind(after.sequence() as i64)
            .bind(clamp_i64(max_count as u64));
        if by_stream {
            query = query.bind(&filter.stream_types);
        }
        if by_event {
            query = query.bind(&filter.event_types);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(map_sqlx)?;
        let mut last = None;
        rows.iter()
            .map(|row| row_to_event(row, row_stream(row, &mut last)?).map(Arc::new))
            .collect()
    }

    /// One indexed query (`events_command`, partial on `command_id IS NOT NULL`).
    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let rows = sqlx::query(&self.sql.read_by_command)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(command_id)
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        rows.iter()
            .map(|row| row_to_event(row, stream.clone()).map(Arc::new))
            .collect()
    }

    /// One `count(*)` with the filter of `read_all` in SQL, stopped after `limit` rows by a
    /// `LIMIT` in a subquery. It counts every committed event after `after`, including
    /// those a global read does not return yet because an older transaction is still open
    /// (they are lag too); events of transactions still open are not counted.
    async fn count_after(
        &self,
        after: Position,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        let by_stream = !filter.stream_types.is_empty();
        let by_event = !filter.event_types.is_empty();
        let mut query =
            sqlx::query_scalar::<_, i64>(&self.sql.count_after[filter_index(by_stream, by_event)])
                .bind(after.commit().to_string())
                .bind(after.sequence() as i64)
                .bind(clamp_i64(limit));
        if by_stream {
            query = query.bind(&filter.stream_types);
        }
        if by_event {
            query = query.bind(&filter.event_types);
        }
        let count = query.fetch_one(&self.pool).await.map_err(map_sqlx)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Polls with exponential backoff (see [`PollInterval`](crate::PollInterval)).
    ///
    /// Polling rather than `LISTEN`/`NOTIFY`: a `NOTIFY` in the append transaction would
    /// take a cluster-wide lock at every commit and serialise all writers, and one sent
    /// after commit costs every append a second round trip; `LISTEN` also pins a
    /// connection per waiting process and does not pass through transaction-pooling
    /// proxies. An idle poll is one index probe.
    async fn read_horizon(&self) -> Result<Position, StoreError> {
        let xmin: String = sqlx::query_scalar(&self.sql.read_horizon)
            .fetch_one(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let xmin: u64 = xmin
            .parse()
            .map_err(|e| backend(format!("transaction id {xmin:?}: {e}")))?;
        // Every transaction below `xmin` has ended: the last position any of them can
        // hold is the greatest `(xmin - 1, position)`. Positions are bigint, so the
        // sequence part tops out at i64::MAX.
        Ok(Position::from_parts(
            xmin.saturating_sub(1),
            i64::MAX as u64,
        ))
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = self.poll.min;
        loop {
            let found: bool = sqlx::query_scalar(&self.sql.has_events_after)
                .bind(after.commit().to_string())
                .bind(after.sequence() as i64)
                .fetch_one(&self.pool)
                .await
                .map_err(map_sqlx)?;
            if found {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(self.poll.max);
        }
    }
}

#[async_trait]
impl SnapshotStore for PgStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row = sqlx::query(&self.sql.load_snapshot)
            .bind(stream.stream_type())
            .bind(stream.id())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stream_version: i64 = row.try_get(0).map_err(map_sqlx)?;
        let schema_version: i32 = row.try_get(1).map_err(map_sqlx)?;
        Ok(Some(Snapshot {
            stream_version: stream_version as u64,
            schema_version: schema_version as u32,
            state: row.try_get(2).map_err(map_sqlx)?,
        }))
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError> {
        let version = i64::try_from(snapshot.stream_version).map_err(|_| {
            backend(format!(
                "snapshot version {} is out of range",
                snapshot.stream_version
            ))
        })?;
        sqlx::query(&self.sql.save_snapshot)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(version)
            // Bit for bit, like checkpoints: u32 -> i32 -> u32 is lossless.
            .bind(snapshot.schema_version as i32)
            .bind(&snapshot.state)
            .execute(&self.pool)
            .await
            .map_err(map_sqlx)?;
        Ok(())
    }
}

#[async_trait]
impl CheckpointStore for PgStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        cqrs_core::ident::validate("subscription name", name)?;
        let row = sqlx::query(&self.sql.load_checkpoint)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let commit: i64 = row.try_get(0).map_err(map_sqlx)?;
        let sequence: i64 = row.try_get(1).map_err(map_sqlx)?;
        Ok(Some(Position::from_parts(commit as u64, sequence as u64)))
    }

    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError> {
        self.save_checkpoint_on(&self.pool, name, position).await
    }

    /// A session-level advisory lock on a connection of the lease's own (see the
    /// PostgreSQL chapter of the guide, "Subscriptions").
    async fn acquire_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, StoreError> {
        self.acquire_lease_impl(name).await
    }

    /// An upsert into `dead_letters` keyed by (subscription, event id). The event must be
    /// stored in this store's `events` table (a foreign key): it is referenced, not copied.
    async fn park(&self, name: &str, event: &StoredEvent, error: &str) -> Result<(), StoreError> {
        cqrs_core::ident::validate("subscription name", name)?;
        // PostgreSQL text cannot hold NUL; an error message is prose, so replace it.
        let error = error.replace('\0', "\u{fffd}");
        sqlx::query(&self.sql.park)
            .bind(name)
            .bind(event.event_id)
            .bind(&error)
            .execute(&self.pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => {
                    backend(format!(
                        "cannot park event {} for {name}: it is not stored in this store",
                        event.event_id
                    ))
                }
                _ => map_sqlx(e),
            })?;
        Ok(())
    }

    async fn parked(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        cqrs_core::ident::validate("subscription name", name)?;
        let rows = sqlx::query(&self.sql.parked)
            .bind(name)
            .fetch_all(&self.pool)
            .await
            .map_err(map_sqlx)?;
        let mut last = None;
        rows.iter()
            .map(|row| {
                let event = row_to_event(row, row_stream(row, &mut last)?)?;
                Ok(DeadLetter {
                    event: Arc::new(event),
                    error: row.try_get(EVENT_COLUMN_COUNT).map_err(map_sqlx)?,
                    parked_at: row.try_get(EVENT_COLUMN_COUNT + 1).map_err(map_sqlx)?,
                })
            })
            .collect()
    }
}
