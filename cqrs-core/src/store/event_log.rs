//! The log: every event of every stream in one global order. This is all that a
//! subscription reads.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{EventFilter, StoreError};
use crate::{Position, StoredEvent};

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
}
