//! Who handles which event type: exactly one handler each, checked when the application
//! starts, before any handler runs.
//!
//! Why the rule: with one handler per event type, what an event sets off is written in
//! one place, and the audit trail can name the handler behind every effect
//! (`Running::handler_of`). A second handler of a type would split that, and a type
//! without one would be published to no one: both are start-up errors here, not
//! surprises in production.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use cqrs_core::ident::IdentifierError;
use cqrs_core::subscription::{React, SubscriptionError, SubscriptionHandle};
use cqrs_core::{CheckpointStore, DomainEvent, EventStore, ProcessManager, Subscription};

/// Why the handlers may not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("{event_type} is already handled by {first}; {second} may not handle it too")]
    SecondHandler {
        event_type: &'static str,
        first: &'static str,
        second: &'static str,
    },
    #[error("no handler for {}", .0.join(", "))]
    Unhandled(Vec<&'static str>),
    #[error("handler refused: {0}")]
    InvalidName(#[from] IdentifierError),
}

/// The handlers of the event types of `E`, each to run in its own subscription.
pub struct Registry<E> {
    events: Arc<dyn EventStore>,
    /// Event type -> the name of its handler.
    handlers: BTreeMap<&'static str, &'static str>,
    subscriptions: Vec<Subscription>,
    event_family: PhantomData<fn() -> E>,
}

impl<E: DomainEvent> Registry<E> {
    /// An empty registry whose handlers will read `events`.
    pub fn new(events: Arc<dyn EventStore>) -> Self {
        Self {
            events,
            handlers: BTreeMap::new(),
            subscriptions: Vec::new(),
            event_family: PhantomData,
        }
    }

    /// Adds `handler` for the event types it declares (`#[process_manager(events(...))]`),
    /// with its checkpoint in `checkpoints`. Refused if one of them already has a handler.
    pub fn subscribe<M>(
        mut self,
        handler: M,
        checkpoints: impl CheckpointStore,
    ) -> Result<Self, RegistryError>
    where
        M: ProcessManager<Event = E>,
    {
        for event_type in M::event_types() {
            if let Some(&first) = self.handlers.get(event_type) {
                return Err(RegistryError::SecondHandler {
                    event_type,
                    first,
                    second: M::NAME,
                });
            }
            self.handlers.insert(event_type, M::NAME);
        }
        let consumer = React::new(handler, checkpoints)?;
        self.subscriptions
            .push(Subscription::new(self.events.clone(), consumer));
        Ok(self)
    }

    /// Starts every handler, once every event type of `E` has one.
    pub fn start(self) -> Result<Running, RegistryError> {
        let unhandled: Vec<&'static str> = E::event_type_names()
            .into_iter()
            .filter(|event_type| !self.handlers.contains_key(event_type))
            .collect();
        if !unhandled.is_empty() {
            return Err(RegistryError::Unhandled(unhandled));
        }
        Ok(Running {
            handlers: self.handlers,
            subscriptions: self
                .subscriptions
                .into_iter()
                .map(Subscription::start)
                .collect(),
        })
    }
}

/// The handlers, running.
pub struct Running {
    handlers: BTreeMap<&'static str, &'static str>,
    subscriptions: Vec<SubscriptionHandle>,
}

impl Running {
    /// The event types and their handlers, by event type.
    pub fn table(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.handlers.iter().map(|(t, h)| (*t, *h))
    }

    /// The handler of an event type.
    pub fn handler_of(&self, event_type: &str) -> Option<&'static str> {
        self.handlers.get(event_type).copied()
    }

    /// Waits until every handler has seen every event so far, in the order they were
    /// subscribed: subscribe a handler before those that handle what its commands write.
    pub async fn caught_up(&self, timeout: Duration) -> Result<(), SubscriptionError> {
        for subscription in &self.subscriptions {
            subscription.caught_up(timeout).await?;
        }
        Ok(())
    }

    /// Stops every handler after its current batch; the first failure, if any.
    pub async fn shutdown(self) -> Result<(), SubscriptionError> {
        let mut outcome = Ok(());
        for subscription in self.subscriptions {
            let stopped = subscription.shutdown().await;
            if outcome.is_ok() {
                outcome = stopped;
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use cqrs_core::{Envelope, ProcessManager};

    use super::*;
    use crate::subscribers::SignupEvent;

    /// Handlers that do nothing: the registry only looks at what they declare.
    #[derive(ProcessManager)]
    #[process_manager(event = SignupEvent, events(User))]
    struct Welcomes;

    #[derive(ProcessManager)]
    #[process_manager(event = SignupEvent, events(User, Email))]
    struct AlsoWelcomes;

    impl Welcomes {
        async fn handle(&self, _: &Envelope<SignupEvent>) -> Result<(), Infallible> {
            Ok(())
        }
    }

    impl AlsoWelcomes {
        async fn handle(&self, _: &Envelope<SignupEvent>) -> Result<(), Infallible> {
            Ok(())
        }
    }

    fn registry() -> Registry<SignupEvent> {
        Registry::new(Arc::new(cqrs_memory::MemoryStore::new()))
    }

    #[test]
    fn a_second_handler_for_an_event_type_is_refused() {
        let refused = registry()
            .subscribe(Welcomes, cqrs_memory::MemoryStore::new())
            .expect("the first handler of user.signup is welcome")
            .subscribe(AlsoWelcomes, cqrs_memory::MemoryStore::new())
            .err();
        assert_eq!(
            refused,
            Some(RegistryError::SecondHandler {
                event_type: "user.signup",
                first: "welcomes",
                second: "also_welcomes",
            })
        );
    }

    #[test]
    fn an_event_type_without_a_handler_is_refused() {
        let refused = registry()
            .subscribe(Welcomes, cqrs_memory::MemoryStore::new())
            .expect("the first handler of user.signup is welcome")
            .start()
            .err();
        assert_eq!(
            refused,
            Some(RegistryError::Unhandled(vec![
                "email.send",
                "folder.create"
            ]))
        );
    }
}
