//! The memory store's snapshots: the newest per stream.

use std::sync::PoisonError;

use async_trait::async_trait;
use cqrs_core::store::check_snapshot;
use cqrs_core::{Snapshot, SnapshotStore, StoreError, StreamId};

use crate::store::MemoryStore;

#[async_trait]
impl SnapshotStore for MemoryStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let snapshots = self
            .inner
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(snapshots.get(stream).cloned())
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError> {
        check_snapshot(stream, &snapshot)?;
        let mut snapshots = self
            .inner
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match snapshots.get(stream) {
            Some(stored) if stored.stream_version > snapshot.stream_version => {}
            _ => {
                snapshots.insert(stream.clone(), snapshot);
            }
        }
        Ok(())
    }
}

impl MemoryStore {
    /// The version of the snapshot of `stream`, if it has one.
    pub(crate) fn snapshot_version(&self, stream: &StreamId) -> Option<u64> {
        self.inner
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(stream)
            .map(|s| s.stream_version)
    }

    /// Drops the snapshot of `stream` (a purged stream's state is not kept either).
    pub(crate) fn forget_snapshot(&self, stream: &StreamId) {
        self.inner
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(stream);
    }
}
