//! A store wrapper that counts reads, for tests that check how often the engine or a
//! subscription goes to the store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    EventFilter, EventStore, ExpectedVersion, NewEvent, Position, StoreError, StoredEvent, StreamId,
};

/// Forwards every call to `inner` (never to the traits' provided methods, which would go
/// through the counted reads), counting stream reads and global reads.
#[derive(Clone)]
pub(crate) struct Counting<S> {
    pub inner: S,
    stream_reads: Arc<AtomicUsize>,
    global_reads: Arc<AtomicUsize>,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            stream_reads: Arc::default(),
            global_reads: Arc::default(),
        }
    }

    pub fn stream_reads(&self) -> usize {
        self.stream_reads.load(Ordering::SeqCst)
    }

    pub fn global_reads(&self) -> usize {
        self.global_reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl<S: EventStore> EventStore for Counting<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.stream_reads.fetch_add(1, Ordering::SeqCst);
        self.inner
            .read_stream(stream, from_version, max_count)
            .await
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.global_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_all(after, max_count, filter).await
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.wait_for_events(after, timeout).await
    }

    async fn read_horizon(&self) -> Result<Position, StoreError> {
        self.inner.read_horizon().await
    }

    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: uuid::Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.read_by_command(stream, command_id).await
    }

    async fn count_after(
        &self,
        after: Position,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.inner.count_after(after, filter, limit).await
    }
}
