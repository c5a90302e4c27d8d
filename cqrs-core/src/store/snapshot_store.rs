//! The snapshot store trait.

use async_trait::async_trait;

use super::StoreError;
use crate::StreamId;

/// The state of an aggregate at one version of its stream, so that loading it reads only
/// the events after that version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The last event folded into `state`.
    pub stream_version: u64,
    /// The aggregate's [`SNAPSHOT_VERSION`](crate::Aggregate::SNAPSHOT_VERSION) when it was
    /// taken; another version is ignored on load.
    pub schema_version: u32,
    /// The serialised state.
    pub state: serde_json::Value,
}

/// Keeps the latest snapshot of each stream.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// The latest snapshot of `stream`, if any.
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// Saves `snapshot` unless one at a later stream version is already stored (two
    /// engines racing must not replace a newer snapshot with an older one). A snapshot at
    /// the same version replaces the stored one. A state that
    /// [`check_snapshot`](super::check_snapshot) refuses is [`StoreError::Unstorable`].
    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError>;
}
