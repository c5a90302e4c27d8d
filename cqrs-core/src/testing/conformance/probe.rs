//! A store wrapper for tests that look at how the engine or a subscription uses the
//! store: it counts stream and global reads, and it can hold the next call of one kind at
//! a gate, so that a test can act while the caller is at a known point (the window a race
//! would need): the lease check of a subscription runner (between its rebuild check and
//! its read), or just after the engine's look-up of a command id.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::{
    CheckpointStore, DeadLetter, EventFilter, EventLog, ExpectedVersion, Lease, NewEvent, Position,
    StoreError, StoredEvent, StreamId, StreamStore, StreamSummary, StreamTypeSummary,
    SubscriptionName,
};

/// Holds the first call after [`arm`](Self::arm) until [`release`](Self::release).
#[derive(Default)]
pub(crate) struct Gate {
    armed: AtomicBool,
    entered: Notify,
    release: Notify,
}

impl Gate {
    /// Holds the next call, from now on.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Returns once a caller is waiting at the gate (at once if one already is: the
    /// notification is kept until asked for).
    pub async fn entered(&self) {
        self.entered.notified().await;
    }

    /// Lets the held call go on.
    pub fn release(&self) {
        self.release.notify_one();
    }

    async fn pass(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        }
    }
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Gate")
    }
}

/// Forwards every call to `inner` (never to the traits' provided methods, which would go
/// through the counted reads), counting stream reads and global reads, with a gate before
/// `Lease::is_held` of its leases and one after `read_by_command`.
#[derive(Clone)]
pub(crate) struct Probe<S> {
    pub inner: S,
    stream_reads: Arc<AtomicUsize>,
    global_reads: Arc<AtomicUsize>,
    pub lease_check: Arc<Gate>,
    pub command_lookup: Arc<Gate>,
}

impl<S> Probe<S> {
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            stream_reads: Arc::default(),
            global_reads: Arc::default(),
            lease_check: Arc::default(),
            command_lookup: Arc::default(),
        }
    }

    pub fn stream_reads(&self) -> usize {
        self.stream_reads.load(Ordering::SeqCst)
    }

    pub fn global_reads(&self) -> usize {
        self.global_reads.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct GatedLease {
    inner: Box<dyn Lease>,
    gate: Arc<Gate>,
}

#[async_trait]
impl Lease for GatedLease {
    async fn is_held(&self) -> bool {
        self.gate.pass().await;
        self.inner.is_held().await
    }
}

#[async_trait]
impl<S: StreamStore> StreamStore for Probe<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.append(stream, expected, events).await
    }

    async fn delete_stream(
        &self,
        stream: &StreamId,
        expected: crate::ExpectedVersion,
        metadata: crate::Metadata,
    ) -> Result<Arc<StoredEvent>, StoreError> {
        self.inner.delete_stream(stream, expected, metadata).await
    }

    async fn purge_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.purge_stream(stream).await
    }

    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        self.inner.truncate_stream(stream, before).await
    }

    async fn archive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.archive_stream(stream).await
    }

    async fn unarchive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.unarchive_stream(stream).await
    }

    async fn read_archived_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner
            .read_archived_stream(stream, from_version, max_count)
            .await
    }

    async fn forget_subject(
        &self,
        subject: &crate::personal::Subject,
    ) -> Result<Vec<StreamId>, StoreError> {
        self.inner.forget_subject(subject).await
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

    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: uuid::Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        // Held after the look-up: its answer is already taken when the gate opens.
        let found = self.inner.read_by_command(stream, command_id).await;
        self.command_lookup.pass().await;
        found
    }

    async fn read_stream_backwards(
        &self,
        stream: &StreamId,
        to_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner
            .read_stream_backwards(stream, to_version, max_count)
            .await
    }
}

#[async_trait]
impl<S: EventLog> EventLog for Probe<S> {
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

    async fn count_after(
        &self,
        after: Position,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.inner.count_after(after, filter, limit).await
    }

    async fn read_all_backwards(
        &self,
        to: Position,
        max_count: usize,
        filter: &crate::EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.read_all_backwards(to, max_count, filter).await
    }

    async fn read_by_correlation(
        &self,
        correlation_id: uuid::Uuid,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner
            .read_by_correlation(correlation_id, after, max_count)
            .await
    }

    async fn list_streams(
        &self,
        stream_type: Option<&str>,
        after: Option<&StreamId>,
        max_count: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        self.inner.list_streams(stream_type, after, max_count).await
    }

    async fn stream_types(&self) -> Result<Vec<StreamTypeSummary>, StoreError> {
        self.inner.stream_types().await
    }
}

#[async_trait]
impl<S: CheckpointStore> CheckpointStore for Probe<S> {
    async fn load_checkpoint(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Position>, StoreError> {
        self.inner.load_checkpoint(name).await
    }

    async fn save_checkpoint(
        &self,
        name: &SubscriptionName,
        position: Position,
    ) -> Result<(), StoreError> {
        self.inner.save_checkpoint(name, position).await
    }

    async fn checkpoints(&self) -> Result<Vec<crate::SavedCheckpoint>, StoreError> {
        self.inner.checkpoints().await
    }

    async fn acquire_lease(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Box<dyn Lease>>, StoreError> {
        let lease = self.inner.acquire_lease(name).await?;
        Ok(lease.map(|inner| {
            Box::new(GatedLease {
                inner,
                gate: Arc::clone(&self.lease_check),
            }) as Box<dyn Lease>
        }))
    }

    async fn park(
        &self,
        name: &SubscriptionName,
        event: &StoredEvent,
        error: &str,
    ) -> Result<(), StoreError> {
        self.inner.park(name, event, error).await
    }

    async fn parked(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.parked(name).await
    }

    async fn discard(
        &self,
        name: &SubscriptionName,
        event_id: uuid::Uuid,
        reason: &str,
    ) -> Result<bool, StoreError> {
        self.inner.discard(name, event_id, reason).await
    }

    async fn discarded(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.discarded(name).await
    }

    async fn resolve(
        &self,
        name: &SubscriptionName,
        event_id: uuid::Uuid,
    ) -> Result<bool, StoreError> {
        self.inner.resolve(name, event_id).await
    }

    async fn request(
        &self,
        name: &SubscriptionName,
        request: crate::SubscriptionRequest,
    ) -> Result<crate::PendingRequest, StoreError> {
        self.inner.request(name, request).await
    }

    async fn requests(
        &self,
        name: &SubscriptionName,
    ) -> Result<Vec<crate::PendingRequest>, StoreError> {
        self.inner.requests(name).await
    }

    async fn complete_request(
        &self,
        name: &SubscriptionName,
        id: uuid::Uuid,
    ) -> Result<bool, StoreError> {
        self.inner.complete_request(name, id).await
    }

    async fn record(&self, record: &crate::SubscriptionRecord) -> Result<(), StoreError> {
        self.inner.record(record).await
    }

    async fn records(&self) -> Result<Vec<crate::SubscriptionRecord>, StoreError> {
        self.inner.records().await
    }

    async fn lease_holder(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<crate::LeaseHolder>, StoreError> {
        self.inner.lease_holder(name).await
    }
}
