//! The command engine: load, handle, append, retry, snapshot, project.
//!
//! ```text
//! execute(id, command)
//!   ├─ load:   the memory image if enabled and cached (see `with_image_cache`), else
//!   │          the latest snapshot (if any) + the events after it, folded with `apply`
//!   ├─ handle: the aggregate decides: events, or a refusal (returned as is)
//!   ├─ append: with the loaded version as the expected version
//!   │          conflict? another writer won: reload and handle again (bounded)
//!   ├─ snapshot, when the policy says so (a failure is logged, not returned:
//!   │          a snapshot is a cache, the events are the truth)
//!   └─ inline projections, after commit
//! ```
//!
//! A panic in `handle`, `apply` or a projection is caught and returned as an error
//! ([`EngineError::Panicked`], [`EngineError::Projection`]); the state being worked on is
//! dropped, never cached, so the next command on the aggregate starts from the store.
//!
//! Correctness rests on the store's optimistic check alone: two engines (or two
//! processes) on one store never lose or interleave each other's writes, because an
//! append only succeeds at the version the decision was made on.

mod error;
mod execute;
mod forget;
mod image;
mod load;
mod policy;

use std::fmt;
use std::sync::Arc;

use crate::{Aggregate, Envelope, Projection, SnapshotStore, StreamStore};

pub use error::EngineError;
pub use policy::{RetryPolicy, SnapshotPolicy};

use crate::inline::{Inline, RunInline};

/// What a command committed: its events, and the stream version after them.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed<E> {
    /// The events appended, in order, with their envelopes. Empty when the aggregate
    /// decided that nothing needed to happen.
    pub events: Vec<Envelope<E>>,
    /// The stream's version after the command.
    pub version: u64,
}

/// An aggregate's state at a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The version of the last event folded into it (0: no events).
    pub version: u64,
}

/// Executes commands against aggregates of type `A`.
///
/// Cheap to clone: clones share the stores, services and projections.
///
/// ```
/// # use cqrs_core::{Engine, StreamStore, SnapshotPolicy, SnapshotStore, Aggregate};
/// # fn build<A: Aggregate<Services = ()>>(store: impl StreamStore + SnapshotStore + Clone) {
/// let engine = Engine::<A>::new(store.clone(), ())
///     .with_snapshots(store, SnapshotPolicy::EveryEvents(100));
/// # }
/// ```
pub struct Engine<A: Aggregate> {
    events: Arc<dyn StreamStore>,
    snapshots: Option<(Arc<dyn SnapshotStore>, SnapshotPolicy)>,
    services: Arc<A::Services>,
    retry: RetryPolicy,
    projections: Vec<Arc<dyn RunInline<(), Envelope<A::Event>>>>,
    images: Option<Arc<image::ImageCache<A>>>,
}

impl<A: Aggregate> Engine<A> {
    /// An engine on `events` (any [`EventStore`](crate::EventStore) will do: the engine
    /// uses only its write side), handing `services` to every command handler (`()` when
    /// the aggregate needs none). No snapshots, no projections, the default retry policy.
    pub fn new(events: impl StreamStore, services: A::Services) -> Self {
        Self {
            events: Arc::new(events),
            snapshots: None,
            services: Arc::new(services),
            retry: RetryPolicy::default(),
            projections: Vec::new(),
            images: None,
        }
    }

    /// Takes and uses snapshots from `store` according to `policy`.
    pub fn with_snapshots(mut self, store: impl SnapshotStore, policy: SnapshotPolicy) -> Self {
        self.snapshots = Some((Arc::new(store), policy));
        self
    }

    /// Replaces the retry policy for conflicting appends.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Runs `projection` after each commit, with the committed events it consumes.
    ///
    /// The projection is updated before `execute` returns, so a read right after a
    /// command sees it (read-your-writes within this process). Its failure (an error, or
    /// a panic, caught) does not undo the commit: `execute` returns
    /// [`EngineError::Projection`] naming the version that was committed.
    pub fn with_projection<P>(mut self, projection: P) -> Self
    where
        P: Projection<Event = A::Event>,
    {
        self.projections
            .push(Arc::new(Inline::projection(projection)));
        self
    }

    /// The store this engine appends to and loads from.
    pub fn stream_store(&self) -> &Arc<dyn StreamStore> {
        &self.events
    }
}

impl<A: Aggregate> Clone for Engine<A> {
    fn clone(&self) -> Self {
        Self {
            events: Arc::clone(&self.events),
            snapshots: self.snapshots.clone(),
            services: Arc::clone(&self.services),
            retry: self.retry,
            projections: self.projections.clone(),
            images: self.images.clone(),
        }
    }
}

impl<A: Aggregate> fmt::Debug for Engine<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("aggregate", &A::TYPE)
            .field(
                "snapshots",
                &self.snapshots.as_ref().map(|(_, policy)| policy),
            )
            .field("retry", &self.retry)
            .field(
                "projections",
                &self
                    .projections
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>(),
            )
            .field(
                "image_cache",
                &self.images.as_ref().map(|images| images.capacity()),
            )
            .finish()
    }
}
