//! Process managers: event handlers that send commands.

use std::future::Future;

use crate::{Envelope, Listener};

/// Reacts to events by sending commands to other aggregates (a saga, or a policy: "when
/// an order is confirmed, prepare it in the kitchen").
///
/// A process manager is a [`Listener`] (a stable name, the events it reads) with a
/// handler, and no version: it keeps no view that a new version would rebuild, and
/// replaying history into new logic would send commands for the whole past.
///
/// A process manager runs in a [`Subscription`](super::Subscription), so it sees each
/// event at least once. Send its commands with
/// [`Engine::execute_caused_by`](crate::Engine::execute_caused_by): the command's events
/// then carry the event's correlation id and its id as causation id, and the command id
/// is derived from the event, so a redelivered event returns the first outcome instead
/// of acting twice.
///
/// ```
/// # use cqrs_core::{Aggregate, Engine, Envelope, EngineError, Listener, ProcessManager};
/// # #[derive(Debug, thiserror::Error)] #[error("kitchen")] struct KitchenError;
/// # mod defs {
/// #   use serde::{Deserialize, Serialize};
/// #   #[derive(Debug, Clone, Serialize, Deserialize, cqrs_core::DomainEvent)]
/// #   pub enum OrderEvent { Confirmed { dish: String } }
/// # }
/// # use defs::OrderEvent;
/// # trait Kitchen: Aggregate {}
/// struct SendToKitchen<K: Aggregate> {
///     kitchen: Engine<K>,
/// }
/// # impl<K: Aggregate> SendToKitchen<K> { fn prepare(&self, dish: &str) -> K::Command { todo!() } }
///
/// impl<K: Aggregate> Listener for SendToKitchen<K> {
///     const NAME: &'static str = "send_to_kitchen";
///     type Event = OrderEvent;
///     type Error = EngineError<K::Error>;
/// }
///
/// impl<K: Aggregate> ProcessManager for SendToKitchen<K> {
///     async fn handle(&self, event: &Envelope<OrderEvent>) -> Result<(), Self::Error> {
///         let OrderEvent::Confirmed { dish } = &event.data;
///         let command = self.prepare(dish);
///         self.kitchen.execute_caused_by(event.stream.id(), command, event).await?;
///         Ok(())
///     }
/// }
/// ```
pub trait ProcessManager: Listener {
    /// Reacts to one event.
    fn handle(
        &self,
        event: &Envelope<Self::Event>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
