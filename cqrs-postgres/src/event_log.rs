//! The log on [`PgStore`]: global reads in commit order, filtered in SQL, the read
//! horizon, lag counted in SQL, and waiting for new events by polling.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_core::ident::validate;
use cqrs_core::{
    EventFilter, EventLog, Position, StoreError, StoredEvent, StreamId, StreamSummary,
    StreamTypeSummary,
};
use sqlx::Row;
use uuid::Uuid;

use crate::error::{backend, map_sqlx};
use crate::row::{fetch_events, row_stream, row_to_event};
use crate::sql::{clamp_i64, filter_index};
use crate::PgStore;

#[async_trait]
impl EventLog for PgStore {
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.read_ordered(&self.sql.read_all, after, max_count, filter)
            .await
    }

    async fn read_all_backwards(
        &self,
        to: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.read_ordered(&self.sql.read_all_backwards, to, max_count, filter)
            .await
    }

    async fn read_horizon(&self) -> Result<Position, StoreError> {
        let xmin: String = self
            .connection()
            .await?
            .fetch_one(sqlx::query(&self.sql.read_horizon))
            .await
            .and_then(|row| row.try_get(0))
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
            let query = sqlx::query(&self.sql.has_events_after)
                .bind(after.commit().to_string())
                .bind(after.sequence() as i64);
            let found: bool = self
                .connection()
                .await?
                .fetch_one(query)
                .await
                .and_then(|row| row.try_get(0))
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
        let by_stream = !filter.stream_types().is_empty();
        let by_event = !filter.event_types().is_empty();
        let mut query = sqlx::query(&self.sql.count_after[filter_index(filter)])
            .bind(after.commit().to_string())
            .bind(after.sequence() as i64)
            .bind(clamp_i64(limit));
        if by_stream {
            query = query.bind(filter.stream_types());
        }
        if by_event {
            query = query.bind(filter.event_types());
        }
        let count = self
            .connection()
            .await?
            .fetch_one(query)
            .await
            .and_then(|row| row.try_get::<i64, _>(0))
            .map_err(map_sqlx)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// One query on the partial index `events_correlation` (migration 0005).
    async fn read_by_correlation(
        &self,
        correlation_id: Uuid,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if max_count == 0 {
            return Ok(Vec::new());
        }
        // As `Metadata` writes it: hyphenated, lower case.
        let query = sqlx::query(&self.sql.read_by_correlation)
            .bind(after.commit().to_string())
            .bind(after.sequence() as i64)
            .bind(correlation_id.to_string())
            .bind(clamp_i64(max_count as u64));
        let conn = self.connection().await?;
        let mut last = None;
        let events = fetch_events(conn, query, max_count, true, |row| {
            row_to_event(row, row_stream(row, &mut last)?)
        })
        .await?;
        self.open(events, true).await
    }

    /// One query on the `streams` table (its primary key, in order), each row joined to
    /// its last event.
    async fn list_streams(
        &self,
        stream_type: Option<&str>,
        after: Option<&StreamId>,
        max_count: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        if let Some(stream_type) = stream_type {
            validate("stream type", stream_type)?;
        }
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let limit = clamp_i64(max_count as u64);
        let query = match stream_type {
            None => {
                // Every valid type and id is longer than "": the first page.
                let (t, id) = after.map_or(("", ""), |a| (a.stream_type(), a.id()));
                sqlx::query(&self.sql.list_streams[0])
                    .bind(t.to_owned())
                    .bind(id.to_owned())
                    .bind(limit)
            }
            Some(stream_type) => {
                let after_id = match after {
                    None => "",
                    Some(a) if a.stream_type() < stream_type => "",
                    Some(a) if a.stream_type() == stream_type => a.id(),
                    Some(_) => return Ok(Vec::new()),
                };
                sqlx::query(&self.sql.list_streams[1])
                    .bind(stream_type.to_owned())
                    .bind(after_id.to_owned())
                    .bind(limit)
            }
        };
        let rows = self
            .connection()
            .await?
            .fetch_all(query)
            .await
            .map_err(map_sqlx)?;
        let mut last = None;
        rows.iter()
            .map(|row| {
                let position: i64 = row.try_get(0).map_err(map_sqlx)?;
                let commit: i64 = row.try_get(1).map_err(map_sqlx)?;
                let version: i64 = row.try_get(4).map_err(map_sqlx)?;
                let recorded_at: DateTime<Utc> = row.try_get(5).map_err(map_sqlx)?;
                Ok(StreamSummary::new(
                    row_stream(row, &mut last)?,
                    version as u64,
                    Position::from_parts(commit as u64, position as u64),
                    recorded_at,
                ))
            })
            .collect()
    }

    /// One `GROUP BY` over the `streams` table (a row per stream, not per event).
    async fn stream_types(&self) -> Result<Vec<StreamTypeSummary>, StoreError> {
        let rows = self
            .connection()
            .await?
            .fetch_all(sqlx::query(&self.sql.stream_types))
            .await
            .map_err(map_sqlx)?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get(0).map_err(map_sqlx)?;
                let streams: i64 = row.try_get(1).map_err(map_sqlx)?;
                let events: i64 = row.try_get(2).map_err(map_sqlx)?;
                Ok(StreamTypeSummary::new(name, streams as u64, events as u64))
            })
            .collect()
    }
}

impl PgStore {
    /// A read of the global order from `at` (one of `statements`, picked by the filter;
    /// forwards after it, or backwards from it), of at most `max_count` events.
    async fn read_ordered(
        &self,
        statements: &[String; 8],
        at: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let by_stream = !filter.stream_types().is_empty();
        let by_event = !filter.event_types().is_empty();
        let mut query = sqlx::query(&statements[filter_index(filter)])
            .bind(at.commit().to_string())
            .bind(clamp_i64(at.sequence()))
            .bind(clamp_i64(max_count as u64));
        if by_stream {
            query = query.bind(filter.stream_types());
        }
        if by_event {
            query = query.bind(filter.event_types());
        }
        let conn = self.connection().await?;
        let mut last = None;
        let events = fetch_events(conn, query, max_count, true, |row| {
            row_to_event(row, row_stream(row, &mut last)?)
        })
        .await?;
        self.open(events, true).await
    }
}
