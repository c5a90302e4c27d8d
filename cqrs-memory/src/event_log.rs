//! The memory store's log: one vector in commit order, and a watch channel on its head
//! for the readers waiting at it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use std::collections::BTreeMap;

use cqrs_core::ident::validate;
use cqrs_core::{
    EventFilter, EventLog, Position, StoreError, StoredEvent, StreamId, StreamSummary,
    StreamTypeSummary,
};

use crate::store::{position_of, MemoryStore};

#[async_trait]
impl EventLog for MemoryStore {
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let events = {
            let log = self.read_log();
            let start = usize::try_from(after.sequence()).unwrap_or(usize::MAX);
            log.all
                .iter()
                .skip(start)
                .flatten()
                .filter(|e| log.visible(e, filter))
                .take(max_count)
                .cloned()
                .collect()
        };
        self.open(events, true)
    }

    async fn read_all_backwards(
        &self,
        to: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let log = self.read_log();
        // Event n (from 1) is at (n, n): at or before `to` when n <= its commit part, but
        // for n equal to it only if its sequence part is at least n too.
        let end = if to.sequence() >= to.commit() {
            to.commit()
        } else {
            to.commit() - 1
        };
        let events = log
            .all
            .iter()
            .take(usize::try_from(end).unwrap_or(usize::MAX))
            .rev()
            .flatten()
            .filter(|e| log.visible(e, filter))
            .take(max_count)
            .cloned()
            .collect();
        drop(log);
        self.open(events, true)
    }

    async fn read_horizon(&self) -> Result<Position, StoreError> {
        Ok(position_of(self.read_log().all.len()))
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let mut head = self.inner.head.subscribe();
        if *head.borrow_and_update() > after {
            return Ok(true);
        }
        let woken = tokio::time::timeout(timeout, head.wait_for(|p| *p > after)).await;
        // The sender lives in `self`, so the channel cannot close while we wait.
        Ok(matches!(woken, Ok(Ok(_))))
    }

    async fn list_streams(
        &self,
        stream_type: Option<&str>,
        after: Option<&StreamId>,
        max_count: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        if let Some(stream_type) = stream_type {
            validate("stream type", stream_type)?;
        }
        let log = self.read_log();
        let mut streams: Vec<_> = log
            .streams
            .iter()
            .filter(|(stream, _)| {
                stream_type.is_none_or(|t| t == stream.stream_type())
                    && after.is_none_or(|a| *stream > a)
            })
            .filter_map(|(stream, events)| Some((stream, events.last()?)))
            .collect();
        streams.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Ok(streams
            .into_iter()
            .take(max_count)
            .map(|(stream, last)| {
                StreamSummary::new(
                    stream.clone(),
                    last.stream_version,
                    last.position,
                    last.recorded_at,
                )
            })
            .collect())
    }

    async fn stream_types(&self) -> Result<Vec<StreamTypeSummary>, StoreError> {
        let log = self.read_log();
        let mut types: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for (stream, events) in &log.streams {
            let counts = types.entry(stream.stream_type()).or_default();
            counts.0 += 1;
            // The last version, as the other stores count: events a purge or a
            // truncation removed still count as written.
            counts.1 += events.last().map_or(0, |e| e.stream_version);
        }
        Ok(types
            .into_iter()
            .map(|(name, (streams, events))| StreamTypeSummary::new(name, streams, events))
            .collect())
    }
}
