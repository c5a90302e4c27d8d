//! # cqrs-core
//!
//! Traits, event envelope, codec, command engine and testing helpers for CQRS and event
//! sourcing.
//!
//! State is a fold over immutable events. An application describes its
//! [events](DomainEvent), [commands](Command) and [aggregates](Aggregate), and an
//! [`Engine`] runs commands: it loads an aggregate, lets it decide, and appends the
//! events it emits with an optimistic concurrency check. Read models are
//! [projections](Projection) of the events.
//!
//! Storage is behind small, untyped traits — an [`EventStore`] in two halves
//! ([`StreamStore`], the write side, and [`EventLog`], the global order), a
//! [`SnapshotStore`] and a [`CheckpointStore`] — so that a backend is picked with one
//! line: `cqrs-memory` for tests and demos, `cqrs-postgres` in production. Every backend passes the same
//! conformance suite (`testing::conformance`, feature `testing`).
//!
//! ```text
//! application ─▶ Engine ─▶ codec ─▶ StreamStore / SnapshotStore ─▶ backend
//!      ▲                                                           │
//!      └──── projections ◀── Subscription ◀── EventLog ◀───────────┘  (or inline)
//! ```
//!
//! Module map:
//! - [`domain`]: the traits application code implements, the [`Listener`] base of the
//!   read side among them;
//! - [`subscription`]: the read side: a runner that feeds listeners from the log;
//! - [`envelope`]: the stored form of an event, its metadata, CloudEvents export;
//! - [`codec`]: typed <-> stored, running the upcasters;
//! - [`store`]: the backend traits and their errors;
//! - [`engine`]: command execution, retries, snapshots, temporal queries;
//! - [`bus`]: events on a message bus: the relay, the wire form, what consumers share;
//! - [`ident`]: validated identifiers;
//! - [`inline`]: listeners run with the append (by the engine, or inside a store's);
//! - [`personal`]: personal data sealed per subject, so that forgetting one is destroying
//!   its key (crypto-shredding);
//! - [`unwind`]: panics in application code, caught where the framework calls it;
//! - `testing` (feature): given/when/then and the conformance suite.

#![warn(missing_docs)]

pub mod bus;
pub mod codec;
pub mod domain;
pub mod engine;
pub mod envelope;
pub mod ident;
pub mod inline;
pub mod observe;
pub mod personal;
pub mod store;
pub mod subscription;
#[cfg(feature = "testing")]
pub mod testing;
pub mod unwind;

mod shared;

pub use domain::{
    Aggregate, Command, DomainEvent, EventTypeInfo, Listener, PayloadError, Projection, Upcaster,
};
pub use engine::{Committed, Engine, EngineError, Loaded, RetryPolicy, SnapshotPolicy};
pub use envelope::{
    Envelope, Metadata, NewEvent, Position, PositionParseError, StoredEvent, TOMBSTONE_EVENT_TYPE,
};
pub use ident::{StreamId, SubscriptionName};
pub use store::{
    CheckpointStore, DeadLetter, Discarded, EventFilter, EventLog, EventStore, ExpectedVersion,
    HealthReport, Lease, LeaseHolder, ParkedCount, PendingRequest, RecordedState, SavedCheckpoint,
    Snapshot, SnapshotStore, StoreError, StoreHealth, StreamStore, StreamSummary,
    StreamTypeSummary, SubscriptionRecord, SubscriptionRequest,
};
pub use subscription::{ProcessManager, StartFrom, Subscription};

/// Derives for the domain traits (feature `derive`, on by default), re-exported from
/// `cqrs-derive` as serde does with `serde_derive`. Each derive shares the name of the
/// trait it implements: `#[derive(DomainEvent, Command, Aggregate, Projection)]`.
/// See the [`cqrs_derive`] crate documentation for every attribute.
#[cfg(feature = "derive")]
pub use cqrs_derive::{Aggregate, Command, DomainEvent, ProcessManager, Projection};

// Re-exported so that applications (ids in metadata and events) use the same uuid as
// this crate.
#[doc(hidden)]
pub use uuid;

/// What the code that the derives generate needs, and nothing else: not public API, no
/// stability promise (serde and thiserror do the same). Generated code reaches it by
/// absolute path, so the application needs no dependency on serde or serde_json.
#[doc(hidden)]
pub mod __private {
    pub use serde;
    pub use serde_json;

    /// Support for `#[event(flatten)]`.
    pub mod flatten {
        pub use crate::domain::flatten::*;
    }
}
