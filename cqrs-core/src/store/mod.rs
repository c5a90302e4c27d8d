//! The store traits that backends implement: untyped, object-safe and async.
//!
//! A backend implements these four traits and nothing else: [`StreamStore`] (the write
//! side, what the engine uses) and [`EventLog`] (the global order, what subscriptions
//! read), which together make an [`EventStore`], then [`SnapshotStore`] and
//! [`CheckpointStore`]. The engine, the codec and the subscriptions are shared. That keeps
//! every backend small, and the conformance suite (`testing::conformance`, feature
//! `testing`) checks that each one keeps the same guarantees.

mod archive;
mod checkpoint_store;
mod error;
mod event_log;
mod event_store;
mod filter;
mod health;
pub mod personal_data;
mod snapshot_store;
mod storable;
mod stream_store;
mod stream_summary;
mod subscription_record;
mod subscription_request;

pub use archive::archive_streams_before;
pub use checkpoint_store::{CheckpointStore, DeadLetter, Discarded, Lease, SavedCheckpoint};
pub use error::{BoxError, StoreError};
pub use event_log::EventLog;
pub use event_store::EventStore;
pub use filter::EventFilter;
pub use health::{HealthReport, ParkedCount, StoreHealth};
pub use snapshot_store::{Snapshot, SnapshotStore};
pub use storable::{
    check_append, check_event, check_json, check_snapshot, UnstorableJson, MAX_JSON_DEPTH,
};
pub use stream_store::{ExpectedVersion, StreamStore};
pub use stream_summary::{StreamSummary, StreamTypeSummary};
pub use subscription_record::{LeaseHolder, RecordedState, SubscriptionRecord};
pub use subscription_request::{PendingRequest, SubscriptionRequest};
