//! The three store traits on [`PgStore`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_core::store::{check_append, check_snapshot};
use cqrs_core::{
    CheckpointStore, DeadLetter, EventFilter, EventStore, ExpectedVersion, Lease, Metadata,
    NewEvent, Position, Snapshot, SnapshotStore, StoreError, StoredEvent, StreamId,
};
use futures::TryStreamExt;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Connection, PgConnection, PgExecutor, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::error::{is_unavailable, map_pool_error, map_sqlx};
use crate::held;
use crate::sql::{append_index, filter_index, AppendMode, EVENT_COLUMN_COUNT};
use crate::PgStore;

/// Why [`PgStore::append_on`] failed.
enum Failure {
    /// A statement failed: map it with `append_error`, which needs the batch's event ids.
    Sql(sqlx::Error, Vec<Uuid>),
    /// [`StoreError::StaleTransaction`], with the events handed back: an append in a
    /// transaction of its own retries them in a new one.
    Stale(StoreError, Vec<NewEvent>),
    /// Anything else.
    Store(StoreError),
}

/// How often an append in a transaction of its own is tried in all when refused with
/// [`StoreError::StaleTransaction`]. Such a transaction takes its id within the append
/// statement, so it is refused only when a younger transaction took the stream's row
/// between the two (racing `Any` appends: an exact one finds the version moved and is a
/// conflict); each new attempt is younger than every writer so far.
const STALE_ATTEMPTS: u32 = 16;

impl Failure {
    /// The error of a failure already mapped (not [`Failure::Sql`]).
    fn into_error(self) -> StoreError {
        match self {
            Failure::Store(e) | Failure::Stale(e, _) => e,
            Failure::Sql(e, _) => map_sqlx(e),
        }
    }
}

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
        // The caller's transaction cannot be retried here: a stale one is refused.
        if self.inline.is_empty() {
            return match self.append_on(conn, stream, expected, events).await {
                Ok(stored) => Ok(stored),
                Err(Failure::Store(e) | Failure::Stale(e, _)) => Err(e),
                Err(Failure::Sql(e, ids)) => {
                    Err(self.append_error(e, stream, expected, &ids).await)
                }
            };
        }
        if events.is_empty() {
            return Err(StoreError::EmptyAppend {
                stream: stream.clone(),
            });
        }
        // sqlx makes this a SAVEPOINT inside a transaction it began, a BEGIN otherwise.
        let tx = conn.begin().await.map_err(map_sqlx)?;
        let (result, _) = self.append_with_inline(tx, stream, expected, events).await;
        result.map_err(Failure::into_error)
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
        cqrs_core::ident::validate("subscription name", name)?;
        self.save_checkpoint_on(conn, name, position)
            .await
            .map_err(map_sqlx)
    }

    /// Appends in `tx` with the same one-statement append as every other path, runs the
    /// inline projections on the stored events, and commits `tx` (a transaction or a
    /// savepoint); on any failure, rolls it back first. Also says whether the connection
    /// was left idle and outside the transaction (committed or rolled back), so that the
    /// caller may keep it. The error is a [`Failure::Stale`] or a [`Failure::Store`].
    async fn append_with_inline(
        &self,
        mut tx: Transaction<'_, Postgres>,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> (Result<Vec<Arc<StoredEvent>>, Failure>, bool) {
        let ran = match self.append_on(&mut tx, stream, expected, events).await {
            Ok(stored) => self
                .run_inline(&mut tx, stream, &stored)
                .await
                .map(|()| stored)
                .map_err(Failure::Store),
            Err(e) => Err(e),
        };
        match ran {
            Ok(stored) => match tx.commit().await {
                Ok(()) => (Ok(stored), true),
                Err(e) => (Err(Failure::Store(map_sqlx(e))), false),
            },
            Err(failure) => {
                // Explicitly, so that a savepoint is undone before the caller's next
                // statement; and a connection that broke is reported as such.
                let rolled_back = tx.rollback().await;
                let failure = match failure {
                    Failure::Sql(e, ids) => {
                        Failure::Store(self.append_error(e, stream, expected, &ids).await)
                    }
                    other => other,
                };
                match rolled_back {
                    Ok(()) => (Err(failure), true),
                    Err(rollback) if is_unavailable(&rollback) => {
                        (Err(Failure::Store(map_sqlx(rollback))), false)
                    }
                    Err(_) => (Err(failure), false),
                }
            }
        }
    }

    /// The append on one connection: the statement of `Sql::append` (no call to the
    /// `append_events` function). A failed statement comes back unmapped (with the
    /// batch's event ids), so that the caller can first decide what becomes of the
    /// connection, then map the error with [`append_error`](Self::append_error).
    async fn append_on(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, Failure> {
        if events.is_empty() {
            return Err(Failure::Store(StoreError::EmptyAppend {
                stream: stream.clone(),
            }));
        }
        let (mode, expected_param) = match expected {
            ExpectedVersion::Any => (AppendMode::Any, None),
            ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => (AppendMode::NoStream, None),
            ExpectedVersion::Exact(v) => (
                AppendMode::Exact,
                Some(i64::try_from(v).map_err(|_| {
                    Failure::Store(backend(format!("expected version {v} is out of range")))
                })?),
            ),
        };
        let event_version = |event: &NewEvent| {
            i32::try_from(event.event_version()).map_err(|_| {
                Failure::Store(backend(format!(
                    "event version {} of {} is out of range",
                    event.event_version(),
                    event.event_type()
                )))
            })
        };
        check_append(stream, &events).map_err(Failure::Store)?;
        let n = events.len();
        let ids: Vec<Uuid> = events.iter().map(NewEvent::event_id).collect();
        let sql = &self.sql.append[append_index(mode, n == 1)];
        let query = match events.as_slice() {
            // One event, the common case: scalars, so that the statement has no arrays to
            // unnest (measured: a third cheaper on the server than the array form).
            [event] => sqlx::query(sql)
                .bind(stream.stream_type())
                .bind(stream.id())
                .bind(event.event_id())
                .bind(event.event_type())
                .bind(event_version(event)?)
                .bind(event.data())
                // Serialised once, straight to jsonb: no intermediate `Value`.
                .bind(sqlx::types::Json(event.metadata())),
            _ => {
                let mut types = Vec::with_capacity(n);
                let mut versions = Vec::with_capacity(n);
                let mut data = Vec::with_capacity(n);
                let mut metadata = Vec::with_capacity(n);
                for event in &events {
                    types.push(event.event_type());
                    versions.push(event_version(event)?);
                    data.push(event.data());
                    metadata.push(sqlx::types::Json(event.metadata()));
                }
                sqlx::query(sql)
                    .bind(stream.stream_type())
                    .bind(stream.id())
                    .bind(&ids)
                    .bind(types)
                    .bind(versions)
                    .bind(data)
                    .bind(metadata)
            }
        };
        let query = match expected_param {
            Some(version) => query.bind(version),
            None => query,
        };
        let rows = match query.fetch_all(&mut *conn).await {
            Ok(rows) => rows,
            Err(e) => return Err(Failure::Sql(e, ids)),
        };
        if rows.is_empty() {
            // The stream row did not move: its version was not the expected one, or it
            // was written by a younger transaction. Read on the same connection (inside
            // the caller's transaction, if any, which is still usable: nothing failed).
            // Versions only grow, so a version still as expected (or `Any`) means the
            // version check passed and the writer check refused: this transaction is
            // stale. (Inferred, not asked: an implicit transaction has ended by the time
            // of this read, which runs in a new one.)
            return match self.current_version(&mut *conn, stream).await {
                Ok(actual) => {
                    let at_expected = match expected {
                        ExpectedVersion::Any => true,
                        // Only an existing row stops its insert.
                        ExpectedVersion::NoStream => false,
                        ExpectedVersion::Exact(v) => v == actual,
                    };
                    if at_expected {
                        let error = StoreError::StaleTransaction {
                            stream: stream.clone(),
                            version: actual,
                        };
                        Err(Failure::Stale(error, events))
                    } else {
                        Err(Failure::Store(StoreError::Conflict {
                            stream: stream.clone(),
                            expected,
                            actual,
                        }))
                    }
                }
                Err(e) => Err(Failure::Sql(e, ids)),
            };
        }
        if rows.len() != n {
            return Err(Failure::Store(backend(format!(
                "append to {stream} returned {} rows for {n} events",
                rows.len()
            ))));
        }
        let mut placed: Vec<(i64, i64, i64, DateTime<Utc>)> = Vec::with_capacity(n);
        for row in &rows {
            let get = |e| Failure::Store(map_sqlx(e));
            placed.push((
                row.try_get(0).map_err(get)?,
                row.try_get(1).map_err(get)?,
                row.try_get(2).map_err(get)?,
                row.try_get(3).map_err(get)?,
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
            // Only reachable if rows were written around the store: the stream row
            // and the events disagree. Report the version the events table holds.
            // Inside a caller's transaction, which the error aborted: read on another
            // connection.
            ("23505", Some("events_stream_version_unique")) => {
                let actual = match self.lease().await {
                    Ok(mut conn) => {
                        let actual = self.current_version(&mut conn, stream).await;
                        conn.keep_after(&actual);
                        actual.map_err(map_sqlx)
                    }
                    Err(e) => Err(e),
                };
                match actual {
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

    /// The stream's version (0 when it has none).
    async fn current_version(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
    ) -> Result<u64, sqlx::Error> {
        let version: Option<i64> = sqlx::query_scalar(&self.sql.stream_version)
            .bind(stream.stream_type())
            .bind(stream.id())
            .fetch_optional(conn)
            .await?;
        Ok(version.unwrap_or(0) as u64)
    }

    /// [`EventStore::append`] once, in a transaction of its own. The error is a
    /// [`Failure::Stale`] or a [`Failure::Store`].
    async fn append_alone(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, Failure> {
        let mut conn = self.lease().await.map_err(Failure::Store)?;
        if !self.inline.is_empty() {
            if events.is_empty() {
                conn.keep();
                return Err(Failure::Store(StoreError::EmptyAppend {
                    stream: stream.clone(),
                }));
            }
            // BEGIN, the append, each inline projection, COMMIT, on this one connection,
            // kept afterwards only when it is idle and out of the transaction.
            let (result, clean) = match Connection::begin(&mut *conn).await {
                Ok(tx) => self.append_with_inline(tx, stream, expected, events).await,
                // Not kept: whatever went wrong, the pool checks it.
                Err(e) => (Err(Failure::Store(map_sqlx(e))), false),
            };
            if clean {
                conn.keep();
            }
            return result;
        }
        // One statement in an implicit transaction: one round trip.
        match self.append_on(&mut conn, stream, expected, events).await {
            Ok(stored) => {
                conn.keep();
                Ok(stored)
            }
            Err(Failure::Sql(e, ids)) => {
                conn.keep_unless_broken(&e);
                Err(Failure::Store(
                    self.append_error(e, stream, expected, &ids).await,
                ))
            }
            Err(other) => {
                conn.keep();
                Err(other)
            }
        }
    }

    /// A connection for one operation of the store (see [`crate::held`]).
    async fn lease(&self) -> Result<held::Lease, StoreError> {
        match self.held.lease().await {
            Ok(lease) => Ok(lease),
            Err(e) => Err(map_pool_error(&self.pool, e).await),
        }
    }

    async fn save_checkpoint_on<'e, E: PgExecutor<'e>>(
        &self,
        executor: E,
        name: &str,
        position: Position,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(&self.sql.save_checkpoint)
            .bind(name)
            // Bit for bit: u64 -> i64 -> u64 is lossless.
            .bind(position.commit() as i64)
            .bind(position.sequence() as i64)
            .execute(executor)
            .await?;
        Ok(())
    }
}

/// Runs a query of `EVENT_COLUMNS` on `conn`, converting each row as it arrives, so that
/// the client decodes while the server is still sending (with `fetch_all`, the server
/// idled while the client decoded a whole batch). The connection is kept only if the
/// result was read to its end.
///
/// With `prefix`, a row that does not convert ends the result after the rows before it,
/// if any: a global read then delivers what precedes a corrupt event, and the next read,
/// starting at it, fails naming it. A stream read fails whole instead, because a short
/// stream would pass for a complete one.
async fn fetch_events(
    mut conn: held::Lease,
    query: Query<'_, Postgres, PgArguments>,
    max_count: usize,
    prefix: bool,
    mut convert: impl FnMut(&PgRow) -> Result<StoredEvent, StoreError>,
) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
    enum Stop {
        Convert(StoreError),
        Sql(sqlx::Error),
    }
    let mut events = Vec::with_capacity(max_count.min(1_024));
    let mut rows = query.fetch(&mut *conn);
    let stop = loop {
        match rows.try_next().await {
            Ok(Some(row)) => match convert(&row) {
                Ok(event) => events.push(Arc::new(event)),
                Err(e) => break Some(Stop::Convert(e)),
            },
            Ok(None) => break None,
            Err(e) => break Some(Stop::Sql(e)),
        }
    };
    drop(rows);
    match stop {
        None => {
            conn.keep();
            Ok(events)
        }
        // Stopped mid-result: the connection goes back to the pool, not kept.
        Some(Stop::Convert(_)) if prefix && !events.is_empty() => Ok(events),
        Some(Stop::Convert(e)) => Err(e),
        Some(Stop::Sql(e)) => {
            conn.keep_unless_broken(&e);
            Err(map_sqlx(e))
        }
    }
}

// Rows of `EVENT_COLUMNS` are read with `try_get_unchecked`: the store's own statements
// fix the type of every column, so sqlx's per-column, per-row type-compatibility check
// only costs time (a fifth of a global read's client CPU, measured with callgrind);
// decoding still checks the bytes it reads.

/// The stream of a row of `EVENT_COLUMNS`, reusing `last` when the row is of the same
/// stream (consecutive events of one stream are common in a global read; this saves two
/// allocations per row).
fn row_stream(row: &PgRow, last: &mut Option<StreamId>) -> Result<StreamId, StoreError> {
    let stream_type: &str = row.try_get_unchecked(2).map_err(map_sqlx)?;
    let stream_id: &str = row.try_get_unchecked(3).map_err(map_sqlx)?;
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

/// Builds a stored event from a row of `EVENT_COLUMNS`, of `stream`. A row whose event
/// version, data or metadata cannot be read (edited by hand, or written around the store)
/// is [`StoreError::Corrupt`] naming it, with the event as far as it could be read, so
/// that a subscription can park it.
fn row_to_event(row: &PgRow, stream: StreamId) -> Result<StoredEvent, StoreError> {
    let (event, unreadable) = read_row(row, stream)?;
    match unreadable {
        None => Ok(event),
        Some(reason) => Err(StoreError::Corrupt {
            stream: event.stream.clone(),
            stream_version: event.stream_version,
            reason: format!("event type {:?}: {reason}", event.event_type),
            event: Some(Arc::new(event)),
        }),
    }
}

/// Reads a row of `EVENT_COLUMNS`, putting event version 0, `null` data or empty metadata
/// in place of what does not read, and saying what that was.
fn read_row(row: &PgRow, stream: StreamId) -> Result<(StoredEvent, Option<String>), StoreError> {
    let mut unreadable = Vec::new();
    let position: i64 = row.try_get_unchecked(0).map_err(map_sqlx)?;
    let commit: i64 = row.try_get_unchecked(1).map_err(map_sqlx)?;
    let stream_version: i64 = row.try_get_unchecked(4).map_err(map_sqlx)?;
    let event_version: i32 = row.try_get_unchecked(7).map_err(map_sqlx)?;
    let event_version = u32::try_from(event_version).unwrap_or_else(|_| {
        unreadable.push(format!("negative event version {event_version}"));
        0
    });
    let data = row.try_get_unchecked(8).unwrap_or_else(|e| {
        unreadable.push(format!("data does not deserialise: {e}"));
        serde_json::Value::Null
    });
    // Straight from the jsonb bytes into `Metadata`, without a `serde_json::Value` in
    // between (that detour cost as much as decoding the event data).
    let metadata = row
        .try_get_unchecked::<sqlx::types::Json<Metadata>, _>(9)
        .map(|metadata| metadata.0)
        .unwrap_or_else(|e| {
            unreadable.push(format!("metadata does not deserialise: {e}"));
            Metadata::default()
        });
    let event = StoredEvent {
        event_id: row.try_get_unchecked(5).map_err(map_sqlx)?,
        stream,
        stream_version: stream_version as u64,
        position: Position::from_parts(commit as u64, position as u64),
        event_type: row.try_get_unchecked(6).map_err(map_sqlx)?,
        event_version,
        recorded_at: row.try_get_unchecked(10).map_err(map_sqlx)?,
        metadata,
        data,
    };
    Ok((
        event,
        (!unreadable.is_empty()).then(|| unreadable.join("; ")),
    ))
}

#[async_trait]
impl EventStore for PgStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let mut events = events;
        let mut attempt = 1;
        loop {
            match self.append_alone(stream, expected, events).await {
                Err(Failure::Stale(error, back)) if attempt < STALE_ATTEMPTS => {
                    tracing::debug!(%error, attempt, "append retried in a new transaction");
                    attempt += 1;
                    events = back;
                }
                result => return result.map_err(Failure::into_error),
            }
        }
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
        let conn = self.lease().await?;
        let query = sqlx::query(&self.sql.read_stream)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(clamp_i64(from_version))
            .bind(clamp_i64(max_count as u64));
        fetch_events(conn, query, max_count, false, |row| {
            row_to_event(row, stream.clone())
        })
        .await
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        filter.validate()?;
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
        let conn = self.lease().await?;
        let mut last = None;
        fetch_events(conn, query, max_count, true, |row| {
            row_to_event(row, row_stream(row, &mut last)?)
        })
        .await
    }

    /// One indexed query (`events_command`, partial on `command_id IS NOT NULL`).
    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let conn = self.lease().await?;
        let query = sqlx::query(&self.sql.read_by_command)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(command_id);
        fetch_events(conn, query, 1, false, |row| {
            row_to_event(row, stream.clone())
        })
        .await
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
        filter.validate()?;
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
        let mut conn = self.lease().await?;
        let count = query.fetch_one(&mut *conn).await;
        conn.keep_after(&count);
        Ok(u64::try_from(count.map_err(map_sqlx)?).unwrap_or(0))
    }

    async fn read_horizon(&self) -> Result<Position, StoreError> {
        let mut conn = self.lease().await?;
        let xmin = sqlx::query_scalar::<_, String>(&self.sql.read_horizon)
            .fetch_one(&mut *conn)
            .await;
        conn.keep_after(&xmin);
        let xmin = xmin.map_err(map_sqlx)?;
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

    /// Polls with exponential backoff (see [`PollInterval`](crate::PollInterval)).
    ///
    /// Polling rather than `LISTEN`/`NOTIFY`: a `NOTIFY` in the append transaction would
    /// take a cluster-wide lock at every commit and serialise all writers, and one sent
    /// after commit costs every append a second round trip; `LISTEN` also pins a
    /// connection per waiting process and does not pass through transaction-pooling
    /// proxies. An idle poll is one index probe.
    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pause = self.poll.min;
        loop {
            let mut conn = self.lease().await?;
            let found = sqlx::query_scalar(&self.sql.has_events_after)
                .bind(after.commit().to_string())
                .bind(after.sequence() as i64)
                .fetch_one(&mut *conn)
                .await;
            conn.keep_after(&found);
            let found: bool = found.map_err(map_sqlx)?;
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
        let mut conn = self.lease().await?;
        let row = sqlx::query(&self.sql.load_snapshot)
            .bind(stream.stream_type())
            .bind(stream.id())
            .fetch_optional(&mut *conn)
            .await;
        conn.keep_after(&row);
        let row = row.map_err(map_sqlx)?;
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
        check_snapshot(stream, &snapshot)?;
        let version = i64::try_from(snapshot.stream_version).map_err(|_| {
            backend(format!(
                "snapshot version {} is out of range",
                snapshot.stream_version
            ))
        })?;
        let mut conn = self.lease().await?;
        let saved = sqlx::query(&self.sql.save_snapshot)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(version)
            // Bit for bit, like checkpoints: u32 -> i32 -> u32 is lossless.
            .bind(snapshot.schema_version as i32)
            .bind(&snapshot.state)
            .execute(&mut *conn)
            .await;
        conn.keep_after(&saved);
        saved.map_err(map_sqlx)?;
        Ok(())
    }
}

#[async_trait]
impl CheckpointStore for PgStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        cqrs_core::ident::validate("subscription name", name)?;
        let mut conn = self.lease().await?;
        let row = sqlx::query(&self.sql.load_checkpoint)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await;
        conn.keep_after(&row);
        let row = row.map_err(map_sqlx)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let commit: i64 = row.try_get(0).map_err(map_sqlx)?;
        let sequence: i64 = row.try_get(1).map_err(map_sqlx)?;
        Ok(Some(Position::from_parts(commit as u64, sequence as u64)))
    }

    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError> {
        cqrs_core::ident::validate("subscription name", name)?;
        let mut conn = self.lease().await?;
        let saved = self.save_checkpoint_on(&mut *conn, name, position).await;
        conn.keep_after(&saved);
        saved.map_err(map_sqlx)
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
        let mut conn = self.lease().await?;
        let parked = sqlx::query(&self.sql.park)
            .bind(name)
            .bind(event.event_id)
            .bind(&error)
            .execute(&mut *conn)
            .await;
        conn.keep_after(&parked);
        parked.map_err(|e| match &e {
            sqlx::Error::Database(db) if db.code().as_deref() == Some("23503") => backend(format!(
                "cannot park event {} for {name}: it is not stored in this store",
                event.event_id
            )),
            _ => map_sqlx(e),
        })?;
        Ok(())
    }

    async fn parked(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        cqrs_core::ident::validate("subscription name", name)?;
        let mut conn = self.lease().await?;
        let rows = sqlx::query(&self.sql.parked)
            .bind(name)
            .fetch_all(&mut *conn)
            .await;
        conn.keep_after(&rows);
        let rows = rows.map_err(map_sqlx)?;
        let mut last = None;
        rows.iter()
            .map(|row| {
                // Leniently: a row parked because it does not read is listed all the
                // same (its dead letter says what is wrong with it).
                let (event, _) = read_row(row, row_stream(row, &mut last)?)?;
                Ok(DeadLetter {
                    event: Arc::new(event),
                    error: row.try_get(EVENT_COLUMN_COUNT).map_err(map_sqlx)?,
                    parked_at: row.try_get(EVENT_COLUMN_COUNT + 1).map_err(map_sqlx)?,
                })
            })
            .collect()
    }
}
