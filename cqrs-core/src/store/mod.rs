//! The store traits that backends implement: untyped, object-safe and async.
//!
//! A backend implements these three traits and nothing else; the engine, the codec and
//! the subscriptions are shared. That keeps every backend small, and the
//! conformance suite (`testing::conformance`, feature `testing`) checks that each one keeps the same
//! guarantees.

mod checkpoint_store;
mod error;
mod event_store;
mod snapshot_store;
mod storable;

pub use checkpoint_store::{CheckpointStore, DeadLetter, Lease};
pub use error::{BoxError, StoreError};
pub use event_store::{EventFilter, EventStore, ExpectedVersion};
pub use snapshot_store::{Snapshot, SnapshotStore};
pub use storable::{
    check_append, check_event, check_json, check_snapshot, UnstorableJson, MAX_JSON_DEPTH,
};
