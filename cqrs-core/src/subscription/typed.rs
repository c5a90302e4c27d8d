//! Consumers for typed handlers: [`Project`] for projections, [`React`] for process
//! managers. Both apply events one by one, then save the checkpoint (at-least-once). A
//! handler that panics fails its event as an `Err` would (see [`crate::unwind`]).

use std::sync::Arc;

use async_trait::async_trait;

use super::{Consumer, DeliveryError, ProcessManager};
use crate::ident::IdentifierError;
use crate::store::BoxError;
use crate::{
    codec, unwind, CheckpointStore, DomainEvent, Envelope, EventFilter, Position, Projection,
    StoredEvent, SubscriptionName,
};

/// What a typed consumer shows the runner, built once from its handler's constants.
struct Identity {
    name: SubscriptionName,
    checkpoint: SubscriptionName,
    filter: EventFilter,
}

impl Identity {
    fn new(
        name: &str,
        version: u32,
        event_types: Vec<&'static str>,
    ) -> Result<Self, IdentifierError> {
        let name = SubscriptionName::new(name)?;
        Ok(Self {
            checkpoint: name.versioned(version)?,
            name,
            filter: EventFilter::all().with_event_types(event_types)?,
        })
    }
}

/// Feeds a [`Projection`] from a subscription, with its checkpoint in `checkpoints`.
///
/// Events are decoded and handed to the projection one by one; the checkpoint is saved
/// after the batch. A crash in between delivers the batch again, so the projection must
/// be idempotent. Keep the checkpoint where the view is: a view in memory with a
/// checkpoint in memory (a `MemoryStore`), a view in a database with its checkpoint in the
/// same database (on PostgreSQL, prefer the backend's transactional projections, which
/// apply each event exactly once).
pub struct Project<P> {
    projection: P,
    checkpoints: Arc<dyn CheckpointStore>,
    identity: Identity,
}

impl<P: Projection> Project<P> {
    /// A consumer that feeds `projection` and keeps its checkpoint in `checkpoints`.
    ///
    /// Refuses a projection whose [`NAME`](Projection::NAME) (with its version) or
    /// [`event_types`](Projection::event_types) are not valid identifiers, which the
    /// derive has already checked at compile time.
    pub fn new(projection: P, checkpoints: impl CheckpointStore) -> Result<Self, IdentifierError> {
        Ok(Self {
            identity: Identity::new(P::NAME, P::VERSION, P::event_types())?,
            projection,
            checkpoints: Arc::new(checkpoints),
        })
    }
}

#[async_trait]
impl<P: Projection> Consumer for Project<P> {
    fn name(&self) -> &SubscriptionName {
        &self.identity.name
    }

    fn version(&self) -> u32 {
        P::VERSION
    }

    fn filter(&self) -> &EventFilter {
        &self.identity.filter
    }

    fn checkpoint_name(&self) -> &SubscriptionName {
        &self.identity.checkpoint
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
        let projection = &self.projection;
        each(
            events,
            |event| async move { projection.handle(&event).await },
        )
        .await?;
        self.checkpoints
            .save_checkpoint(self.checkpoint_name(), to)
            .await?;
        Ok(())
    }

    async fn reset(&self) -> Result<(), DeliveryError> {
        self.checkpoints
            .save_checkpoint(self.checkpoint_name(), Position::START)
            .await?;
        match unwind::catch(self.projection.reset()).await {
            Ok(reset) => reset.map_err(|e| DeliveryError::Reset(Box::new(e))),
            Err(panic) => Err(DeliveryError::Reset(Box::new(panic))),
        }
    }
}

/// Feeds a [`ProcessManager`] from a subscription, with its checkpoint in `checkpoints`.
///
/// Events are handed over one by one, then the checkpoint is saved: a crash in between
/// delivers them again, which is why the commands a process manager sends must be
/// idempotent ([`Engine::execute_caused_by`](crate::Engine::execute_caused_by) makes
/// them so).
pub struct React<M> {
    manager: M,
    checkpoints: Arc<dyn CheckpointStore>,
    identity: Identity,
}

impl<M: ProcessManager> React<M> {
    /// A consumer that feeds `manager` and keeps its checkpoint in `checkpoints`.
    ///
    /// Refuses a process manager whose [`NAME`](ProcessManager::NAME) or
    /// [`event_types`](ProcessManager::event_types) are not valid identifiers, which the
    /// derive has already checked at compile time.
    pub fn new(manager: M, checkpoints: impl CheckpointStore) -> Result<Self, IdentifierError> {
        Ok(Self {
            identity: Identity::new(M::NAME, 1, M::event_types())?,
            manager,
            checkpoints: Arc::new(checkpoints),
        })
    }
}

#[async_trait]
impl<M: ProcessManager> Consumer for React<M> {
    fn name(&self) -> &SubscriptionName {
        &self.identity.name
    }

    fn version(&self) -> u32 {
        1
    }

    fn filter(&self) -> &EventFilter {
        &self.identity.filter
    }

    fn checkpoint_name(&self) -> &SubscriptionName {
        &self.identity.checkpoint
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
        let manager = &self.manager;
        each(events, |event| async move { manager.handle(&event).await }).await?;
        self.checkpoints
            .save_checkpoint(self.checkpoint_name(), to)
            .await?;
        Ok(())
    }

    /// A process manager has no view to empty: a "rebuild" only moves its checkpoint back,
    /// and the idempotent commands turn the replay into no-ops.
    async fn reset(&self) -> Result<(), DeliveryError> {
        self.checkpoints
            .save_checkpoint(self.checkpoint_name(), Position::START)
            .await?;
        Ok(())
    }
}

/// Decodes each event and hands it to `handle`, in order, stopping at the first failure
/// (an error or a panic).
async fn each<E, Error, Handled>(
    events: &[Arc<StoredEvent>],
    handle: impl Fn(Envelope<E>) -> Handled,
) -> Result<(), DeliveryError>
where
    E: DomainEvent,
    Error: std::error::Error + Send + Sync + 'static,
    Handled: std::future::Future<Output = Result<(), Error>>,
{
    for stored in events {
        // The one place where typed handlers are called: a panic in one (or in an
        // upcaster) is the event's failure, like an `Err`, and the batch ends there.
        let handled = unwind::catch(async {
            let event = decode::<E>(stored)?;
            handle(event).await.map_err(|e| failed(stored, Box::new(e)))
        })
        .await;
        handled.unwrap_or_else(|panic| Err(failed(stored, Box::new(panic))))?;
    }
    Ok(())
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
