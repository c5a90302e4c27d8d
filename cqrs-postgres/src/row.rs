//! Rows of the store's event queries (`EVENT_COLUMNS`) into stored events, converted as
//! they arrive.

use std::sync::Arc;

use cqrs_core::{Metadata, Position, StoreError, StoredEvent, StreamId};
use futures::TryStreamExt;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use crate::connection::Connection;
use crate::error::{backend, map_sqlx};

/// Runs a query of `EVENT_COLUMNS` on `conn`, converting each row as it arrives, so that
/// the client decodes while the server is still sending (with `fetch_all`, the server
/// idled while the client decoded a whole batch). The connection is kept only if the
/// result was read to its end.
///
/// With `prefix`, a row that does not convert ends the result after the rows before it,
/// if any: a global read then delivers what precedes a corrupt event, and the next read,
/// starting at it, fails naming it. A stream read fails whole instead, because a short
/// stream would pass for a complete one.
pub(crate) async fn fetch_events(
    mut conn: Connection,
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
// only costs time (see the performance page); decoding still checks the bytes it reads.

/// The stream of a row of `EVENT_COLUMNS`, reusing `last` when the row is of the same
/// stream (consecutive events of one stream are common in a global read; this saves two
/// allocations per row).
pub(crate) fn row_stream(row: &PgRow, last: &mut Option<StreamId>) -> Result<StreamId, StoreError> {
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

/// [`StoreError::Archived`] if the row is the marker a read of one stream returns for an
/// archived stream (`Sql::new`'s `archived_marker`: no position, the stream's version).
pub(crate) fn archived(row: &PgRow, stream: &StreamId) -> Result<(), StoreError> {
    let position: Option<i64> = row.try_get_unchecked(0).map_err(map_sqlx)?;
    if position.is_some() {
        return Ok(());
    }
    let version: i64 = row.try_get_unchecked(4).map_err(map_sqlx)?;
    Err(StoreError::Archived {
        stream: stream.clone(),
        version: version as u64,
    })
}

/// Builds a stored event from a row of `EVENT_COLUMNS`, of `stream`. A row whose event
/// version, data or metadata cannot be read (edited by hand, or written around the store)
/// is [`StoreError::Corrupt`] naming it, with the event as far as it could be read, so
/// that a subscription can park it.
pub(crate) fn row_to_event(row: &PgRow, stream: StreamId) -> Result<StoredEvent, StoreError> {
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
pub(crate) fn read_row(
    row: &PgRow,
    stream: StreamId,
) -> Result<(StoredEvent, Option<String>), StoreError> {
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
