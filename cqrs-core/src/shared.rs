//! Store traits for shared handles: an `Arc<S>` is a store wherever `S` is one, so an
//! application can hand the same store to several engines and subscriptions.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::{
    CheckpointStore, DeadLetter, EventFilter, EventLog, ExpectedVersion, Lease, NewEvent, Position,
    Snapshot, SnapshotStore, StoreError, StoredEvent, StreamId, StreamStore, StreamSummary,
    StreamTypeSummary, SubscriptionName,
};

#[async_trait]
impl<S: StreamStore + ?Sized> StreamStore for Arc<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        (**self).append(stream, expected, events).await
    }

    async fn delete_stream(
        &self,
        stream: &StreamId,
        expected: crate::ExpectedVersion,
        metadata: crate::Metadata,
    ) -> Result<Arc<StoredEvent>, StoreError> {
        (**self).delete_stream(stream, expected, metadata).await
    }

    async fn purge_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        (**self).purge_stream(stream).await
    }

    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        (**self).truncate_stream(stream, before).await
    }

    async fn archive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        (**self).archive_stream(stream).await
    }

    async fn unarchive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        (**self).unarchive_stream(stream).await
    }

    async fn read_archived_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        (**self)
            .read_archived_stream(stream, from_version, max_count)
            .await
    }

    async fn forget_subject(
        &self,
        subject: &crate::personal::Subject,
    ) -> Result<Vec<StreamId>, StoreError> {
        (**self).forget_subject(subject).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        (**self).read_stream(stream, from_version, max_count).await
    }

    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: uuid::Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        (**self).read_by_command(stream, command_id).await
    }

    async fn read_stream_backwards(
        &self,
        stream: &StreamId,
        to_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        (**self)
            .read_stream_backwards(stream, to_version, max_count)
            .await
    }
}

#[async_trait]
impl<S: EventLog + ?Sized> EventLog for Arc<S> {
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        (**self).read_all(after, max_count, filter).await
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        (**self).wait_for_events(after, timeout).await
    }

    async fn read_horizon(&self) -> Result<Position, StoreError> {
        (**self).read_horizon().await
    }

    async fn count_after(
        &self,
        after: Position,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<u64, StoreError> {
        (**self).count_after(after, filter, limit).await
    }

    async fn read_all_backwards(
        &self,
        to: Position,
        max_count: usize,
        filter: &crate::EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        (**self).read_all_backwards(to, max_count, filter).await
    }

    async fn read_by_correlation(
        &self,
        correlation_id: uuid::Uuid,
        after: Position,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        (**self)
            .read_by_correlation(correlation_id, after, max_count)
            .await
    }

    async fn list_streams(
        &self,
        stream_type: Option<&str>,
        after: Option<&StreamId>,
        max_count: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        (**self).list_streams(stream_type, after, max_count).await
    }

    async fn stream_types(&self) -> Result<Vec<StreamTypeSummary>, StoreError> {
        (**self).stream_types().await
    }
}

#[async_trait]
impl<S: SnapshotStore + ?Sized> SnapshotStore for Arc<S> {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        (**self).load_snapshot(stream).await
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError> {
        (**self).save_snapshot(stream, snapshot).await
    }
}

#[async_trait]
impl<S: CheckpointStore + ?Sized> CheckpointStore for Arc<S> {
    async fn load_checkpoint(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Position>, StoreError> {
        (**self).load_checkpoint(name).await
    }

    async fn save_checkpoint(
        &self,
        name: &SubscriptionName,
        position: Position,
    ) -> Result<(), StoreError> {
        (**self).save_checkpoint(name, position).await
    }

    async fn checkpoints(&self) -> Result<Vec<crate::SavedCheckpoint>, StoreError> {
        (**self).checkpoints().await
    }

    async fn acquire_lease(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Box<dyn Lease>>, StoreError> {
        (**self).acquire_lease(name).await
    }

    async fn park(
        &self,
        name: &SubscriptionName,
        event: &StoredEvent,
        error: &str,
    ) -> Result<(), StoreError> {
        (**self).park(name, event, error).await
    }

    async fn parked(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError> {
        (**self).parked(name).await
    }

    async fn discard(
        &self,
        name: &SubscriptionName,
        event_id: uuid::Uuid,
        reason: &str,
    ) -> Result<bool, StoreError> {
        (**self).discard(name, event_id, reason).await
    }

    async fn discarded(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError> {
        (**self).discarded(name).await
    }

    async fn resolve(
        &self,
        name: &SubscriptionName,
        event_id: uuid::Uuid,
    ) -> Result<bool, StoreError> {
        (**self).resolve(name, event_id).await
    }

    async fn request(
        &self,
        name: &SubscriptionName,
        request: crate::SubscriptionRequest,
    ) -> Result<crate::PendingRequest, StoreError> {
        (**self).request(name, request).await
    }

    async fn requests(
        &self,
        name: &SubscriptionName,
    ) -> Result<Vec<crate::PendingRequest>, StoreError> {
        (**self).requests(name).await
    }

    async fn complete_request(
        &self,
        name: &SubscriptionName,
        id: uuid::Uuid,
    ) -> Result<bool, StoreError> {
        (**self).complete_request(name, id).await
    }

    async fn record(&self, record: &crate::SubscriptionRecord) -> Result<(), StoreError> {
        (**self).record(record).await
    }

    async fn records(&self) -> Result<Vec<crate::SubscriptionRecord>, StoreError> {
        (**self).records().await
    }

    async fn lease_holder(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<crate::LeaseHolder>, StoreError> {
        (**self).lease_holder(name).await
    }
}

#[async_trait]
impl<S: crate::StoreHealth + ?Sized> crate::StoreHealth for Arc<S> {
    async fn health(&self, wait: Duration) -> crate::store::HealthReport {
        (**self).health(wait).await
    }
}
