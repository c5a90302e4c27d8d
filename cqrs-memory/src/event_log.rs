//! The memory store's log: one vector in commit order, and a watch channel on its head
//! for the readers waiting at it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cqrs_core::{EventFilter, EventLog, Position, StoreError, StoredEvent};

use crate::store::{position_of, MemoryStore};

#[async_trait]
impl EventLog for MemoryStore {
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let log = self.read_log();
        let start = usize::try_from(after.sequence()).unwrap_or(usize::MAX);
        Ok(log
            .all
            .iter()
            .skip(start)
            .filter(|e| filter.accepts(e.stream.stream_type(), &e.event_type))
            .take(max_count)
            .cloned()
            .collect())
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
}
