//! The aggregate trait.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Command, DomainEvent};

/// A consistency boundary: state rebuilt by folding its events, which decides whether a
/// command is accepted.
///
/// `handle` decides (it may be async, to ask a service) and never mutates; `apply`
/// mutates and never fails, because an event is a fact that already happened. The engine
/// loads the state, calls `handle`, appends the events with an optimistic version check,
/// and calls `apply` for each.
///
/// The state is serialised for snapshots; bump [`Aggregate::SNAPSHOT_VERSION`] when its
/// shape changes, and old snapshots are ignored (the state is rebuilt from events).
///
/// ```
/// use cqrs_core::{Aggregate, Command};
/// # use cqrs_core::{codec::serde_enum, DomainEvent, EventTypeInfo, PayloadError};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # enum CounterEvent { Incremented }
/// # impl DomainEvent for CounterEvent {
/// #     const EVENT_TYPES: &'static [EventTypeInfo] = &[EventTypeInfo { name: "Incremented", version: 1 }];
/// #     fn event_type(&self) -> &'static str { "Incremented" }
/// #     fn encode(&self) -> Result<serde_json::Value, cqrs_core::codec::JsonError> { serde_enum::encode(self) }
/// #     fn decode(t: &str, d: &serde_json::Value) -> Result<Self, PayloadError> { serde_enum::decode(t, d) }
/// # }
/// # struct Increment;
/// # impl Command for Increment { fn command_name(&self) -> &'static str { "Increment" } }
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Counter { value: u32 }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the counter is full")]
/// struct Full;
///
/// impl Aggregate for Counter {
///     const TYPE: &'static str = "counter";
///     type Command = Increment;
///     type Event = CounterEvent;
///     type Error = Full;
///     type Services = ();
///
///     async fn handle(&self, _: &Increment, _: &()) -> Result<Vec<CounterEvent>, Full> {
///         if self.value == u32::MAX { Err(Full) } else { Ok(vec![CounterEvent::Incremented]) }
///     }
///
///     fn apply(&mut self, event: &CounterEvent) {
///         match event { CounterEvent::Incremented => self.value += 1 }
///     }
/// }
/// ```
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The aggregate type name: the stream type of its events.
    const TYPE: &'static str;

    /// Version of the serialised state. Snapshots taken at another version are ignored.
    const SNAPSHOT_VERSION: u32 = 1;

    /// The commands it handles.
    type Command: Command;
    /// The events it emits and applies.
    type Event: DomainEvent;
    /// Why it refuses a command: a domain error, shown to the caller as is.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Dependencies the handler may call (a clock, a price service); `()` when none.
    type Services: Send + Sync + 'static;

    /// Decides what a command does: the events to record, or a refusal.
    fn handle(
        &self,
        command: &Self::Command,
        services: &Self::Services,
    ) -> impl Future<Output = Result<Vec<Self::Event>, Self::Error>> + Send;

    /// Folds one event into the state.
    fn apply(&mut self, event: &Self::Event);
}
