//! Which events a global read returns.

use crate::ident::{self, IdentifierError};

/// Which events a global read returns. Empty lists mean "all".
///
/// Stores apply the filter where the events are (in SQL for PostgreSQL), so that a
/// subscription to two event types does not ship the whole log to the application.
///
/// Every name is checked with [`ident::validate`](crate::ident::validate) where it is
/// given: a name that is not a valid identifier could match no stored event (and
/// PostgreSQL could not even take a NUL-containing one as a parameter), so it is refused
/// there, and a store is never handed one.
///
/// ```
/// use cqrs_core::EventFilter;
/// let filter = EventFilter::all()
///     .with_stream_types(["account"])?
///     .with_event_types(["Deposited"])?;
/// assert!(filter.accepts("account", "Deposited"));
/// assert!(!filter.accepts("account", "Withdrawn"));
/// assert!(EventFilter::all().with_stream_types(["a\0b"]).is_err());
/// # Ok::<(), cqrs_core::ident::IdentifierError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    stream_types: Vec<String>,
    event_types: Vec<String>,
    archived: bool,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Restricts to streams of these types (replacing any given before); refuses a name
    /// that is not a valid identifier.
    pub fn with_stream_types<S: Into<String>>(
        mut self,
        types: impl IntoIterator<Item = S>,
    ) -> Result<Self, IdentifierError> {
        self.stream_types = names("stream type", types)?;
        Ok(self)
    }

    /// Restricts to these event types (replacing any given before); refuses a name that
    /// is not a valid identifier.
    pub fn with_event_types<S: Into<String>>(
        mut self,
        types: impl IntoIterator<Item = S>,
    ) -> Result<Self, IdentifierError> {
        self.event_types = names("event type", types)?;
        Ok(self)
    }

    /// Also reads the events of archived streams
    /// ([`StreamStore::archive_stream`](crate::StreamStore::archive_stream)), in their places
    /// in the global order; by default a global read skips them. For a read model that must
    /// hold the whole history (its rebuild), or an export.
    ///
    /// ```
    /// use cqrs_core::EventFilter;
    /// assert!(!EventFilter::all().includes_archived());
    /// assert!(EventFilter::all().including_archived().includes_archived());
    /// ```
    pub fn including_archived(mut self) -> Self {
        self.archived = true;
        self
    }

    /// Whether it reads archived streams' events too.
    pub fn includes_archived(&self) -> bool {
        self.archived
    }

    /// The stream types it restricts to; empty for all.
    pub fn stream_types(&self) -> &[String] {
        &self.stream_types
    }

    /// The event types it restricts to; empty for all.
    pub fn event_types(&self) -> &[String] {
        &self.event_types
    }

    /// Whether an event of this stream type and event type passes the filter. A
    /// tombstone ([`TOMBSTONE_EVENT_TYPE`](crate::TOMBSTONE_EVENT_TYPE)) passes whatever
    /// the event types: a subscription to a stream type hears of its streams' deletion.
    pub fn accepts(&self, stream_type: &str, event_type: &str) -> bool {
        (self.stream_types.is_empty() || self.stream_types.iter().any(|t| t == stream_type))
            && (self.event_types.is_empty()
                || self.event_types.iter().any(|t| t == event_type)
                // A stream's deletion notice reaches whoever reads its stream type.
                || event_type == crate::TOMBSTONE_EVENT_TYPE)
    }
}

fn names<S: Into<String>>(
    what: &'static str,
    names: impl IntoIterator<Item = S>,
) -> Result<Vec<String>, IdentifierError> {
    names
        .into_iter()
        .map(|name| {
            let name = name.into();
            ident::validate(what, &name)?;
            Ok(name)
        })
        .collect()
}
