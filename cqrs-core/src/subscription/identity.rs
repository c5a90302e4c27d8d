//! What a consumer is known by: its name, its version, its checkpoint's key, its filter.

use crate::ident::IdentifierError;
use crate::{EventFilter, Listener, SubscriptionName};

/// The names a [`Consumer`](super::Consumer) is known by, validated together when it is
/// built: its subscription's name (the key of its lease and dead letters), the version of
/// its logic, its checkpoint's key (`NAME@vVERSION`) and the filter of what it consumes.
///
/// ```
/// use cqrs_core::subscription::Identity;
/// use cqrs_core::{EventFilter, SubscriptionName};
/// let identity = Identity::new(SubscriptionName::new("balances")?, 2, EventFilter::all())?;
/// assert_eq!(identity.checkpoint().as_str(), "balances@v2");
/// # Ok::<(), cqrs_core::ident::IdentifierError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    name: SubscriptionName,
    version: u32,
    checkpoint: SubscriptionName,
    filter: EventFilter,
}

impl Identity {
    /// The identity of a consumer named `name` at `version`, reading what `filter` lets
    /// through. Refuses a checkpoint key `name@vVERSION` that is too long.
    pub fn new(
        name: SubscriptionName,
        version: u32,
        filter: EventFilter,
    ) -> Result<Self, IdentifierError> {
        Ok(Self {
            checkpoint: name.versioned(version)?,
            name,
            version,
            filter,
        })
    }

    /// The identity of a consumer that feeds listener `L` at `version`: its
    /// [`NAME`](Listener::NAME), and a filter of its
    /// [`event_types`](Listener::event_types) and
    /// [`stream_types`](Listener::stream_types). Refuses any of them that is not a valid
    /// identifier (the derives have checked the name at compile time).
    pub fn of<L: Listener>(version: u32) -> Result<Self, IdentifierError> {
        let filter = EventFilter::all()
            .with_event_types(L::event_types())?
            .with_stream_types(L::stream_types())?;
        Self::new(SubscriptionName::new(L::NAME)?, version, filter)
    }

    /// The same identity reading what `filter` lets through instead.
    pub fn with_filter(mut self, filter: EventFilter) -> Self {
        self.filter = filter;
        self
    }

    /// The subscription's name: the key of its lease and of its dead letters.
    pub fn name(&self) -> &SubscriptionName {
        &self.name
    }

    /// The version of the consumer's logic. Each version has its own checkpoint, so a new
    /// version finds none, and the runner resets the read model and replays everything.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The key of its checkpoint: the name and the version
    /// ([`SubscriptionName::versioned`], `name@vVERSION`).
    pub fn checkpoint(&self) -> &SubscriptionName {
        &self.checkpoint
    }

    /// The events it consumes, filtered by the store.
    pub fn filter(&self) -> &EventFilter {
        &self.filter
    }
}
