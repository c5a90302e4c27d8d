//! The write side on [`PgStore`]: the append (one statement, in a transaction of its
//! own or of the caller's, with the inline projections when there are any) and the
//! per-stream reads.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_core::personal::Subject;
use cqrs_core::store::check_append;
use cqrs_core::{
    ExpectedVersion, Metadata, NewEvent, Position, StoreError, StoredEvent, StreamId, StreamStore,
};
use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Connection as _, PgConnection, Postgres, Row, Transaction};
use uuid::Uuid;

use crate::error::{backend, is_unavailable, map_sqlx};
use crate::row::{archived, fetch_events, row_to_event};
use crate::sql::{append_index, clamp_i64, AppendMode};
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

impl PgStore {
    /// Appends like [`StreamStore::append`], on a connection of the caller: inside the
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
        // A stale append is tried again with the events as given: the keys that sealed
        // them go with the rolled-back transaction.
        let unsealed = events
            .iter()
            .any(|e| !e.personal().is_empty())
            .then(|| events.clone());
        let ran = match self.seal_in(&mut tx, events).await {
            Ok((events, sealed)) => match self.append_on(&mut tx, stream, expected, events).await {
                Ok(stored) => {
                    // What projections and the caller see: the personal fields in place.
                    let stored = sealed.plain(stored);
                    self.run_inline(&mut tx, stream, &stored)
                        .await
                        .map(|()| stored)
                        .map_err(Failure::Store)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(Failure::Store(e)),
        };
        let ran = match (ran, unsealed) {
            (Err(Failure::Stale(error, _)), Some(events)) => Err(Failure::Stale(error, events)),
            (ran, _) => ran,
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
            // unnest (cheaper on the server than the array form: see the performance page).
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
                // A closed or archived row does not move, whatever was expected.
                Ok(StreamRow {
                    version,
                    archived: true,
                    ..
                }) => Err(Failure::Store(StoreError::Archived {
                    stream: stream.clone(),
                    version,
                })),
                Ok(StreamRow {
                    version,
                    deleted: true,
                    ..
                }) => Err(Failure::Store(StoreError::StreamDeleted {
                    stream: stream.clone(),
                    version,
                })),
                Ok(StreamRow {
                    version: actual, ..
                }) => {
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
                let actual = match self.connection().await {
                    Ok(mut conn) => {
                        let actual = self.current_version(&mut conn, stream).await;
                        conn.keep_after(&actual);
                        actual.map(|row| row.version).map_err(map_sqlx)
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
    ) -> Result<StreamRow, sqlx::Error> {
        let row: Option<(i64, bool, bool)> = sqlx::query_as(&self.sql.stream_version)
            .bind(stream.stream_type())
            .bind(stream.id())
            .fetch_optional(conn)
            .await?;
        Ok(StreamRow::from(row))
    }

    /// [`StreamStore::append`] once, in a transaction of its own. The error is a
    /// [`Failure::Stale`] or a [`Failure::Store`].
    async fn append_alone(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, Failure> {
        // Personal data is sealed with keys written in the append's transaction, wrapped
        // by a key-encryption key checked first (on a connection of its own, once).
        let personal = events.iter().any(|e| !e.personal().is_empty());
        if personal {
            // Checked before sealing, which hides the values from the check in `append_on`.
            check_append(stream, &events).map_err(Failure::Store)?;
            self.check_key_encryption_key()
                .await
                .map_err(Failure::Store)?;
        }
        let mut conn = self.connection().await.map_err(Failure::Store)?;
        if !self.inline.is_empty() || personal {
            if events.is_empty() {
                conn.keep();
                return Err(Failure::Store(StoreError::EmptyAppend {
                    stream: stream.clone(),
                }));
            }
            // BEGIN, the append, each inline projection, COMMIT, on this one connection,
            // kept afterwards only when it is idle and out of the transaction.
            let (result, clean) = match sqlx::Connection::begin(&mut *conn).await {
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
}

#[async_trait]
impl StreamStore for PgStore {
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

    /// The tombstone is appended with the append statement, and the row closed, in one
    /// transaction of its own (tried again in a new one when it is refused as stale, as an
    /// append is).
    async fn delete_stream(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: Metadata,
    ) -> Result<Arc<StoredEvent>, StoreError> {
        let mut attempt = 1;
        loop {
            let mut tx = self.begin().await?;
            let tombstone = vec![NewEvent::tombstone(metadata.clone())];
            match self.append_on(&mut tx, stream, expected, tombstone).await {
                Ok(mut stored) => {
                    on_stream(&mut tx, &self.sql.close_stream, stream).await?;
                    tx.commit().await.map_err(map_sqlx)?;
                    return stored
                        .pop()
                        .ok_or_else(|| backend(format!("deleting {stream} stored no tombstone")));
                }
                Err(Failure::Stale(..)) if attempt < STALE_ATTEMPTS => attempt += 1,
                Err(Failure::Sql(e, ids)) => {
                    drop(tx);
                    return Err(self.append_error(e, stream, expected, &ids).await);
                }
                Err(other) => return Err(other.into_error()),
            }
        }
    }

    /// In one transaction that locks the stream's row: the dead letters of its events,
    /// the events but the tombstone, the snapshot.
    async fn purge_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let row = self.lock_stream(&mut tx, stream).await?;
        if !row.deleted {
            return Err(StoreError::NotDeleted {
                stream: stream.clone(),
            });
        }
        on_stream(&mut tx, &self.sql.purge_letters, stream).await?;
        let removed = on_stream(&mut tx, &self.sql.purge_events, stream).await?;
        on_stream(&mut tx, &self.sql.purge_snapshot, stream).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(removed)
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
        let query = sqlx::query(&self.sql.read_stream)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(clamp_i64(from_version))
            .bind(clamp_i64(max_count as u64));
        let events = self.fetch_stream(query, stream, max_count).await?;
        // Only a read whose first event is not the one asked for looks for a cut: a
        // truncated stream keeps its last event, so it never reads as empty.
        if events
            .first()
            .is_some_and(|e| e.stream_version > from_version.max(1))
        {
            let mut conn = self.connection().await?;
            let before: Result<Option<Option<i64>>, _> =
                sqlx::query_scalar(&self.sql.truncated_before)
                    .bind(stream.stream_type())
                    .bind(stream.id())
                    .fetch_optional(&mut *conn)
                    .await;
            conn.keep_after(&before);
            if let Some(Some(before)) = before.map_err(map_sqlx)? {
                if from_version < before as u64 {
                    return Err(StoreError::Truncated {
                        stream: stream.clone(),
                        before: before as u64,
                    });
                }
            }
        }
        Ok(events)
    }

    /// In one transaction: the snapshot's version checked, then the dead letters of the
    /// removed events, the events, and the cut recorded.
    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let row = self.lock_stream(&mut tx, stream).await?;
        let snapshot: Option<i64> = sqlx::query_scalar(&self.sql.snapshot_version)
            .bind(stream.stream_type())
            .bind(stream.id())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let snapshot = snapshot.map(|v| v as u64);
        if snapshot.is_none_or(|v| v.saturating_add(1) < before) {
            return Err(StoreError::NotCovered {
                stream: stream.clone(),
                before,
                snapshot,
            });
        }
        let version = row.version;
        if version == 0 {
            return Ok(0);
        }
        // The last event always stays.
        let cut = clamp_i64(before.min(version));
        let run = |statement| {
            sqlx::query(statement)
                .bind(stream.stream_type())
                .bind(stream.id())
                .bind(cut)
        };
        run(&self.sql.truncate_letters)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let removed = run(&self.sql.truncate_events)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?
            .rows_affected();
        if removed > 0 {
            run(&self.sql.truncated)
                .execute(&mut *tx)
                .await
                .map_err(map_sqlx)?;
        }
        tx.commit().await.map_err(map_sqlx)?;
        Ok(removed)
    }

    /// One indexed query (`events_command`, partial on `command_id IS NOT NULL`).
    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let query = sqlx::query(&self.sql.read_by_command)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(command_id);
        self.fetch_stream(query, stream, 1).await
    }

    /// One query, the unique index on (stream_type, stream_id, stream_version) read
    /// backwards.
    async fn read_stream_backwards(
        &self,
        stream: &StreamId,
        to_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if max_count == 0 || to_version == 0 {
            return Ok(Vec::new());
        }
        let query = sqlx::query(&self.sql.read_stream_backwards)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(clamp_i64(to_version))
            .bind(clamp_i64(max_count as u64));
        self.fetch_stream(query, stream, max_count).await
    }

    /// In one transaction that locks the stream's row: the events moved by one
    /// statement, and the row marked.
    async fn archive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.move_archive(stream, true).await
    }

    /// As [`archive_stream`](Self::archive_stream), the other way.
    async fn unarchive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.move_archive(stream, false).await
    }

    async fn read_archived_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let query = sqlx::query(&self.sql.read_archived_stream)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(clamp_i64(from_version))
            .bind(clamp_i64(max_count as u64));
        self.fetch_stream(query, stream, max_count).await
    }

    async fn forget_subject(&self, subject: &Subject) -> Result<Vec<StreamId>, StoreError> {
        self.forget(subject).await
    }
}

/// A stream's row, as an append's refusal and the lifecycle operations read it.
#[derive(Debug, Clone, Copy, Default)]
struct StreamRow {
    /// 0 when the stream has no row.
    version: u64,
    deleted: bool,
    archived: bool,
}

impl From<Option<(i64, bool, bool)>> for StreamRow {
    fn from(row: Option<(i64, bool, bool)>) -> Self {
        row.map_or_else(Self::default, |(version, deleted, archived)| Self {
            version: version as u64,
            deleted,
            archived,
        })
    }
}

impl PgStore {
    /// The events of `stream` that `query` (a read of one stream) returns, at most
    /// `max_count`, with their personal fields opened. The row of an archived stream's
    /// marker (`Sql::new`'s `archived_marker`, unioned to the reads that say so) is
    /// [`StoreError::Archived`].
    async fn fetch_stream(
        &self,
        query: Query<'_, Postgres, PgArguments>,
        stream: &StreamId,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let conn = self.connection().await?;
        let events = fetch_events(conn, query, max_count, false, |row| {
            archived(row, stream)?;
            row_to_event(row, stream.clone())
        })
        .await?;
        self.open(events, false).await
    }

    /// Locks the stream's row for the rest of `tx` (appends to it wait) and reads it; an
    /// archived stream is [`StoreError::Archived`], as the lifecycle operations but
    /// (un)archiving refuse it.
    async fn lock_stream(
        &self,
        tx: &mut PgConnection,
        stream: &StreamId,
    ) -> Result<StreamRow, StoreError> {
        let row = self.lock_stream_row(tx, stream).await?;
        if row.archived {
            return Err(StoreError::Archived {
                stream: stream.clone(),
                version: row.version,
            });
        }
        Ok(row)
    }

    async fn lock_stream_row(
        &self,
        tx: &mut PgConnection,
        stream: &StreamId,
    ) -> Result<StreamRow, StoreError> {
        let row: Option<(i64, bool, bool)> = sqlx::query_as(&self.sql.lock_stream)
            .bind(stream.stream_type())
            .bind(stream.id())
            .fetch_optional(tx)
            .await
            .map_err(map_sqlx)?;
        Ok(StreamRow::from(row))
    }

    /// Moves the stream's events into the archive (`archive`) or back, in one transaction
    /// that holds its row: an append either committed before (its events move with the
    /// others) or waits and then finds the row archived.
    async fn move_archive(&self, stream: &StreamId, archive: bool) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let row = self.lock_stream_row(&mut tx, stream).await?;
        if row.version == 0 || row.archived == archive {
            return Ok(0);
        }
        let statement = if archive {
            &self.sql.archive_events
        } else {
            &self.sql.unarchive_events
        };
        let moved = on_stream(&mut tx, statement, stream).await?;
        sqlx::query(&self.sql.set_archived)
            .bind(stream.stream_type())
            .bind(stream.id())
            .bind(archive)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(moved)
    }
}

/// Runs `statement` with `stream` as `$1`, `$2` on `conn`; the rows it changed.
async fn on_stream(
    conn: &mut PgConnection,
    statement: &str,
    stream: &StreamId,
) -> Result<u64, StoreError> {
    let done = sqlx::query(statement)
        .bind(stream.stream_type())
        .bind(stream.id())
        .execute(conn)
        .await
        .map_err(map_sqlx)?;
    Ok(done.rows_affected())
}
