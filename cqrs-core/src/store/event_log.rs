//! The log: every event of every stream in one global order. This is all that a
//! subscription reads.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{EventFilter, StoreError, StreamSummary, StreamTypeSummary};
use crate::ident::validate;
use crate::{Position, StoredEvent, StreamId};

/// Every event in one global order, read from a position on: the read side of an event
/// store, and all that a [`Subscription`](crate::Subscription) uses.
///
/// Implementations must keep the guarantees of the conformance suite
/// (`testing::conformance`, feature `testing`): a global read that never skips an event
/// that commits late, and each stream's events in version order.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Reads up to `max_count` events after `after` in global order that pass `filter`.
    ///
    /// Never skips: an event that is not returned now because its transaction is still
    /// open will have a position after the last one returned. A store may return fewer
    /// than `max_count` events while more exist: it stops before an event it cannot read,
    /// and the next read, starting at that event, fails with [`StoreError::Corrupt`]
    /// naming it. Every name in `filter` was validated when the filter was built.
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError>;

    /// Reads up to `max_count` events at or before `to` that pass `filter`, newest
    /// first: the end of the log as an operator's `tail` shows it (with `to` the
    /// [`read_horizon`](Self::read_horizon)). Like [`read_all`](Self::read_all), it
    /// returns only events readable now; an event of a transaction still open is not
    /// among them, and comes after `to` once readable.
    ///
    /// The provided implementation reads the log forward from its start, keeping the last
    /// `max_count`; a backend that can read its order backwards should override it.
    async fn read_all_backwards(
        &self,
        to: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        const BATCH: usize = 1_000;
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let mut last = std::collections::VecDeque::with_capacity(max_count.min(BATCH));
        let mut after = Position::START;
        loop {
            let batch = self.read_all(after, BATCH, filter).await?;
            let Some(end) = batch.last().map(|e| e.position) else {
                break;
            };
            for event in batch.into_iter().take_while(|e| e.position <= to) {
                if last.len() == max_count {
                    last.pop_front();
                }
                last.push_back(event);
            }
            if end >= to {
                break;
            }
            after = end;
        }
        Ok(last.into_iter().rev().collect())
    }

    /// Waits until events after `after` may be readable, or `timeout` passes. Returns
    /// `true` when woken by new events, `false` on timeout. A spurious `true` is allowed:
    /// callers read again either way.
    async fn wait_for_events(&self, after: Position, timeout: Duration)
        -> Result<bool, StoreError>;

    /// A position up to which the global order is complete: every event that will ever
    /// be stored at or before it is readable now (or was rolled back), so a reader that
    /// found nothing after its position may move on to this one.
    ///
    /// A filtered subscription needs it: without it, its position stays at the last event
    /// it consumed while the log grows with events it does not consume, and waiting for
    /// events "after its position" would return at once, forever. In memory it is the
    /// last event's position; on PostgreSQL, the position just below the oldest
    /// transaction still running.
    async fn read_horizon(&self) -> Result<Position, StoreError>;

    /// How many events after `after` pass `filter`, counting at most `limit` (a
    /// subscription's lag). Events of transactions still open may or may not be counted.
    ///
    /// The provided implementation reads the events; a backend that can count where the
    /// events are should override it.
    async fn count_after(
        &self,
        after: Position,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<u64, StoreError> {
        const BATCH: usize = 1_000;
        let mut count = 0;
        let mut after = after;
        while count < limit {
            let batch = self.read_all(after, BATCH, filter).await?;
            let Some(last) = batch.last() else { break };
            after = last.position;
            count += batch.len() as u64;
            if batch.len() < BATCH {
                break;
            }
        }
        Ok(count.min(limit))
    }

    /// Reads up to `max_count` events after `after`, in global order, whose metadata
    /// carries `correlation_id`: everything one request caused, across streams (the
    /// command's events, a process manager's commands and theirs).
    ///
    /// An operator's read: events of transactions still open are not seen, and a page
    /// that ends just before one that commits later does not return to it.
    ///
    /// The provided implementation reads the whole log after `after`; a backend with an
    /// index on the correlation id should override it.
    async fn read_by_correlation(
        &self,
        correlation_id: Uuid,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        const BATCH: usize = 1_000;
        let mut found = Vec::new();
        let mut after = after;
        while found.len() < max_count {
            let batch = self.read_all(after, BATCH, &EventFilter::all()).await?;
            let Some(last) = batch.last() else { break };
            after = last.position;
            let done = batch.len() < BATCH;
            found.extend(
                batch
                    .into_iter()
                    .filter(|e| e.metadata.correlation_id == Some(correlation_id)),
            );
            if done {
                break;
            }
        }
        found.truncate(max_count);
        Ok(found)
    }

    /// Up to `max_count` streams (of `stream_type`, or of every type), ordered by type
    /// then id, starting after `after`: a paged listing, the next page starting after the
    /// last stream returned. An invalid `stream_type` is
    /// [`StoreError::InvalidIdentifier`].
    ///
    /// The provided implementation reads the whole log; a backend that keeps a row per
    /// stream should override it.
    async fn list_streams(
        &self,
        stream_type: Option<&str>,
        after: Option<&StreamId>,
        max_count: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        if let Some(stream_type) = stream_type {
            validate("stream type", stream_type)?;
        }
        let mut streams = BTreeMap::new();
        for_each_event(self, |event| {
            let wanted = stream_type.is_none_or(|t| t == event.stream.stream_type())
                && after.is_none_or(|a| &event.stream > a);
            if wanted {
                streams.insert(
                    event.stream.clone(),
                    StreamSummary::new(
                        event.stream.clone(),
                        event.stream_version,
                        event.position,
                        event.recorded_at,
                    ),
                );
            }
        })
        .await?;
        Ok(streams.into_values().take(max_count).collect())
    }

    /// Every stream type with at least one event, in name order, with its count of
    /// streams and of events.
    ///
    /// The provided implementation reads the whole log; a backend that keeps a row per
    /// stream should override it.
    async fn stream_types(&self) -> Result<Vec<StreamTypeSummary>, StoreError> {
        let mut types: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for_each_event(self, |event| {
            types
                .entry(event.stream.stream_type().to_owned())
                .or_default()
                .insert(event.stream.id().to_owned(), event.stream_version);
        })
        .await?;
        Ok(types
            .into_iter()
            .map(|(name, streams)| {
                StreamTypeSummary::new(name, streams.len() as u64, streams.values().sum())
            })
            .collect())
    }
}

/// Hands every event of `log` to `visit`, in global order (the provided listings).
async fn for_each_event<L: EventLog + ?Sized>(
    log: &L,
    mut visit: impl FnMut(&StoredEvent) + Send,
) -> Result<(), StoreError> {
    const BATCH: usize = 1_000;
    let mut after = Position::START;
    loop {
        let batch = log.read_all(after, BATCH, &EventFilter::all()).await?;
        let Some(last) = batch.last() else {
            return Ok(());
        };
        after = last.position;
        batch.iter().for_each(|event| visit(event));
        if batch.len() < BATCH {
            return Ok(());
        }
    }
}
