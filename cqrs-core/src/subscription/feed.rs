//! The one consumer for typed listeners: [`Feed`], seen as [`Project`] for projections
//! and [`React`] for process managers. It applies events one by one, then saves the
//! checkpoint (at-least-once). A handler that panics fails its event as an `Err` would
//! (see [`crate::unwind`]).

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;

use super::{Consumer, DeliveryError, Identity, ProcessManager};
use crate::ident::IdentifierError;
use crate::store::BoxError;
use crate::{
    codec, unwind, CheckpointStore, DomainEvent, Envelope, Listener, Position, Projection,
    StoredEvent, StreamId,
};

/// What differs between the listeners a [`Feed`] feeds: the version of their logic, how
/// one is handed an event, and what a rebuild empties. Implemented by
/// [`AsProjection`] and [`AsProcessManager`].
pub trait Kind<L: Listener>: Send + Sync + 'static {
    /// The version in the checkpoint's key.
    fn version() -> u32;

    /// Hands `listener` one event.
    fn handle<'a>(
        listener: &'a L,
        event: &'a Envelope<L::Event>,
    ) -> impl Future<Output = Result<(), L::Error>> + Send + 'a;

    /// Empties what `listener` keeps, before a rebuild.
    fn reset(listener: &L) -> impl Future<Output = Result<(), L::Error>> + Send + '_;

    /// Tells `listener` that `stream` was deleted (its tombstone was reached).
    fn deleted<'a>(
        listener: &'a L,
        stream: &'a StreamId,
    ) -> impl Future<Output = Result<(), L::Error>> + Send + 'a;
}

/// A [`Projection`]: its own version, its handler, its reset.
#[derive(Debug)]
pub enum AsProjection {}

impl<P: Projection> Kind<P> for AsProjection {
    fn version() -> u32 {
        P::VERSION
    }

    fn handle<'a>(
        listener: &'a P,
        event: &'a Envelope<P::Event>,
    ) -> impl Future<Output = Result<(), P::Error>> + Send + 'a {
        listener.handle(event)
    }

    fn reset(listener: &P) -> impl Future<Output = Result<(), P::Error>> + Send + '_ {
        listener.reset()
    }

    fn deleted<'a>(
        listener: &'a P,
        stream: &'a StreamId,
    ) -> impl Future<Output = Result<(), P::Error>> + Send + 'a {
        listener.stream_deleted(stream)
    }
}

/// A [`ProcessManager`]: version 1, and nothing to empty: a "rebuild" only moves its
/// checkpoint back, and the idempotent commands turn the replay into no-ops.
#[derive(Debug)]
pub enum AsProcessManager {}

impl<M: ProcessManager> Kind<M> for AsProcessManager {
    fn version() -> u32 {
        1
    }

    fn handle<'a>(
        listener: &'a M,
        event: &'a Envelope<M::Event>,
    ) -> impl Future<Output = Result<(), M::Error>> + Send + 'a {
        listener.handle(event)
    }

    fn reset(_: &M) -> impl Future<Output = Result<(), M::Error>> + Send + '_ {
        std::future::ready(Ok(()))
    }

    /// A process manager keeps no view of a stream: nothing to drop.
    fn deleted<'a>(
        _: &'a M,
        _: &'a StreamId,
    ) -> impl Future<Output = Result<(), M::Error>> + Send + 'a {
        std::future::ready(Ok(()))
    }
}

/// Feeds a [`Projection`] from a subscription: see [`Feed`].
///
/// ```
/// # use cqrs_core::{Projection, CheckpointStore};
/// # use cqrs_core::subscription::Project;
/// # fn demo<P: Projection>(view: P, store: impl CheckpointStore) -> Result<(), cqrs_core::ident::IdentifierError> {
/// let consumer = Project::new(view, store)?;
/// # Ok(()) }
/// ```
pub type Project<P> = Feed<P, AsProjection>;

/// Feeds a [`ProcessManager`] from a subscription: see [`Feed`]. The commands it sends
/// must be idempotent, since a crash between them and the checkpoint delivers their events
/// again ([`Engine::execute_caused_by`](crate::Engine::execute_caused_by) makes them so).
pub type React<M> = Feed<M, AsProcessManager>;

/// Feeds a typed [`Listener`] from a subscription, with its checkpoint in `checkpoints`.
///
/// Events are decoded and handed to the listener one by one; the checkpoint is saved
/// after the batch. A crash in between delivers the batch again, so the listener must be
/// idempotent. Keep the checkpoint where the view is: a view in memory with a checkpoint
/// in memory (a `MemoryStore`), a view in a database with its checkpoint in the same
/// database (on PostgreSQL, prefer the backend's transactional projections, which apply
/// each event exactly once).
///
/// Built as [`Project::new`] or [`React::new`]; `K` says which.
pub struct Feed<L, K> {
    listener: L,
    checkpoints: Arc<dyn CheckpointStore>,
    identity: Identity,
    kind: PhantomData<fn() -> K>,
}

impl<L: Listener, K: Kind<L>> Feed<L, K> {
    fn build(listener: L, checkpoints: impl CheckpointStore) -> Result<Self, IdentifierError> {
        Ok(Self {
            identity: Identity::of::<L>(K::version())?,
            listener,
            checkpoints: Arc::new(checkpoints),
            kind: PhantomData,
        })
    }

    /// The listener it feeds.
    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// Decodes `stored` and hands it to the listener.
    ///
    /// The one place where typed listeners are called, from a subscription or from a bus:
    /// a decode failure, a handler's error and a handler's panic (caught; so is an
    /// upcaster's) are all the event's failure ([`DeliveryError::Event`]).
    ///
    /// Each call runs in its own `cqrs.process` span, continuing the event's trace
    /// ([`process_span`](crate::observe::trace::process_span)).
    pub(crate) async fn handle(&self, stored: &Arc<StoredEvent>) -> Result<(), DeliveryError> {
        crate::observe::trace::in_process_span(L::NAME, stored, self.handle_in_span(stored)).await
    }

    async fn handle_in_span(&self, stored: &Arc<StoredEvent>) -> Result<(), DeliveryError> {
        let handled = unwind::catch(async {
            // A stream's deletion notice is no event of the listener's type: it has a
            // call of its own.
            if stored.is_tombstone() {
                return K::deleted(&self.listener, &stored.stream)
                    .await
                    .map_err(|e| failed(stored, Box::new(e)));
            }
            let event = decode::<L::Event>(stored)?;
            K::handle(&self.listener, &event)
                .await
                .map_err(|e| failed(stored, Box::new(e)))
        })
        .await;
        handled.unwrap_or_else(|panic| Err(failed(stored, Box::new(panic))))
    }

    /// Empties the listener (a caught panic is a failure, like an error).
    pub(crate) async fn reset_listener(&self) -> Result<(), DeliveryError> {
        match unwind::catch(K::reset(&self.listener)).await {
            Ok(reset) => reset.map_err(|e| DeliveryError::Reset(Box::new(e))),
            Err(panic) => Err(DeliveryError::Reset(Box::new(panic))),
        }
    }
}

impl<P: Projection> Feed<P, AsProjection> {
    /// A consumer that feeds `projection` and keeps its checkpoint in `checkpoints`.
    ///
    /// Refuses a projection whose [`NAME`](Listener::NAME) (with its version),
    /// [`event_types`](Listener::event_types) or [`stream_types`](Listener::stream_types)
    /// are not valid identifiers, which the derive has already checked at compile time.
    pub fn new(projection: P, checkpoints: impl CheckpointStore) -> Result<Self, IdentifierError> {
        Self::build(projection, checkpoints)
    }
}

impl<M: ProcessManager> Feed<M, AsProcessManager> {
    /// A consumer that feeds `manager` and keeps its checkpoint in `checkpoints`.
    ///
    /// Refuses a process manager whose [`NAME`](Listener::NAME),
    /// [`event_types`](Listener::event_types) or [`stream_types`](Listener::stream_types)
    /// are not valid identifiers, which the derive has already checked at compile time.
    pub fn new(manager: M, checkpoints: impl CheckpointStore) -> Result<Self, IdentifierError> {
        Self::build(manager, checkpoints)
    }
}

#[async_trait]
impl<L: Listener, K: Kind<L>> Consumer for Feed<L, K> {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn checkpoints(&self) -> &dyn CheckpointStore {
        self.checkpoints.as_ref()
    }

    async fn deliver(
        &self,
        _from: Position,
        events: &[Arc<StoredEvent>],
        to: Position,
    ) -> Result<(), DeliveryError> {
        for stored in events {
            self.handle(stored).await?;
        }
        self.checkpoints
            .save_checkpoint(self.identity.checkpoint(), to)
            .await?;
        Ok(())
    }

    /// Saves the checkpoint at the start first, so that a crash before the reset ends
    /// leaves `START`, which makes the runner reset again when it starts.
    async fn reset(&self) -> Result<(), DeliveryError> {
        self.checkpoints
            .save_checkpoint(self.identity.checkpoint(), Position::START)
            .await?;
        self.reset_listener().await
    }
}

impl<L, K> std::fmt::Debug for Feed<L, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("listener", &std::any::type_name::<L>())
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Decodes a delivered event; a failure is the event's ([`DeliveryError::Event`]), so the
/// failure policy applies to it like to a handler error.
pub fn decode<E: DomainEvent>(stored: &Arc<StoredEvent>) -> Result<Envelope<E>, DeliveryError> {
    codec::decode::<E>(stored).map_err(|e| failed(stored, Box::new(e)))
}

fn failed(stored: &Arc<StoredEvent>, source: BoxError) -> DeliveryError {
    DeliveryError::Event {
        event: Arc::clone(stored),
        source,
    }
}
