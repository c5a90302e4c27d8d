//! Consumers for typed handlers: [`Project`] for projections, [`React`] for process
//! managers. Both apply events one by one, then save the checkpoint (at-least-once).

use std::sync::Arc;

use async_trait::async_trait;

use super::{Consumer, DeliveryError, ProcessManager};
use crate::store::BoxError;
use crate::{
    codec, CheckpointStore, DomainEvent, Envelope, EventFilter, Position, Projection, StoredEvent,
};

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
    filter: EventFilter,
}

impl<P: Projection> Project<P> {
    /// A consumer that feeds `projection` and keeps its checkpoint in `checkpoints`.
    pub fn new(projection: P, checkpoints: impl CheckpointStore) -> Self {
        Self {
            projection,
            checkpoints: Arc::new(checkpoints),
            filter: EventFilter::all().with_event_types(P::event_types()),
        }
    }
}

#[async_trait]
impl<P: Projection> Consumer for Project<P> {
    fn name(&self) -> &str {
        P::NAME
    }

    fn version(&self) -> u32 {
        P::VERSION
    }

    fn filter(&self) -> &EventFilter {
        &self.filter
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
            let event = decode::<P::Event>(stored)?;
            self.projection
                .handle(&event)
                .await
                .map_err(|e| failed(stored, Box::new(e)))?;
        }
        self.checkpoints
            .save_checkpoint(&self.checkpoint_name(), to)
            .await?;
        Ok(())
    }

    async fn reset(&self) -> Result<(), DeliveryError> {
        self.checkpoints
            .save_checkpoint(&self.checkpoint_name(), Position::START)
            .await?;
        self.projection
            .reset()
            .await
            .map_err(|e| DeliveryError::Reset(Box::new(e)))
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
    filter: EventFilter,
}

impl<M: ProcessManager> React<M> {
    /// A consumer that feeds `manager` and keeps its checkpoint in `checkpoints`.
    pub fn new(manager: M, checkpoints: impl CheckpointStore) -> Self {
        Self {
            manager,
            checkpoints: Arc::new(checkpoints),
            filter: EventFilter::all().with_event_types(M::event_types()),
        }
    }
}

#[async_trait]
impl<M: ProcessManager> Consumer for React<M> {
    fn name(&self) -> &str {
        M::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn filter(&self) -> &EventFilter {
        &self.filter
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
            let event = decode::<M::Event>(stored)?;
            self.manager
                .handle(&event)
                .await
                .map_err(|e| failed(stored, Box::new(e)))?;
        }
        self.checkpoints
            .save_checkpoint(&self.checkpoint_name(), to)
            .await?;
        Ok(())
    }

    /// A process manager has no view to empty: a "rebuild" only moves its checkpoint back,
    /// and the idempotent commands turn the replay into no-ops.
    async fn reset(&self) -> Result<(), DeliveryError> {
        self.checkpoints
            .save_checkpoint(&self.checkpoint_name(), Position::START)
            .await?;
        Ok(())
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
