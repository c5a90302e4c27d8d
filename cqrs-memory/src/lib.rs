//! # cqrs-memory
//!
//! Event, snapshot and checkpoint stores in memory, for tests, demos and single-process
//! tools. [`MemoryStore`] implements every store trait of `cqrs-core` (one file each) with the same
//! semantics as the PostgreSQL backend (it passes the same conformance suite), so an
//! application tested on it behaves the same in production.
//!
//! ```
//! use cqrs_core::{ExpectedVersion, Metadata, NewEvent, StreamId, StreamStore};
//! use cqrs_memory::MemoryStore;
//!
//! # tokio_test();
//! # fn tokio_test() { tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! let stream = StreamId::new("account", "alice").unwrap();
//! let event = NewEvent::new("Opened", 1, serde_json::json!({}), Metadata::default()).unwrap();
//! let stored = store.append(&stream, ExpectedVersion::NoStream, vec![event]).await.unwrap();
//! assert_eq!(stored[0].stream_version, 1);
//! # }) }
//! ```
//!
//! Nothing is persisted: the data lives as long as the last clone of the store.

#![warn(missing_docs)]

mod checkpoint_store;
mod event_log;
mod inline;
mod snapshot_store;
mod store;
mod store_health;
mod stream_store;

pub use store::MemoryStore;
