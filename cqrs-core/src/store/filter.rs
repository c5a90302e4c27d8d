//! Which events a global read returns.

use crate::ident::{self, IdentifierError};

/// Which events a global read returns. Empty lists mean "all".
///
/// Stores apply the filter where the events are (in SQL for PostgreSQL), so that a
/// subscription to two event types does not ship the whole log to the application.
///
/// ```
/// use cqrs_core::EventFilter;
/// let filter = EventFilter::all().with_stream_types(["account"]).with_event_types(["Deposited"]);
/// assert!(filter.accepts("account", "Deposited"));
/// assert!(!filter.accepts("account", "Withdrawn"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of streams of these types.
    pub stream_types: Vec<String>,
    /// Only events of these types.
    pub event_types: Vec<String>,
}

impl EventFilter {
    /// Every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Restricts to streams of these types.
    pub fn with_stream_types<S: Into<String>>(
        mut self,
        types: impl IntoIterator<Item = S>,
    ) -> Self {
        self.stream_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Restricts to these event types.
    pub fn with_event_types<S: Into<String>>(mut self, types: impl IntoIterator<Item = S>) -> Self {
        self.event_types = types.into_iter().map(Into::into).collect();
        self
    }

    /// Whether an event of this stream type and event type passes the filter.
    pub fn accepts(&self, stream_type: &str, event_type: &str) -> bool {
        (self.stream_types.is_empty() || self.stream_types.iter().any(|t| t == stream_type))
            && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type))
    }

    /// Checks every name with [`ident::validate`](crate::ident::validate). A name that
    /// is not a valid identifier could match no stored event; stores refuse it as
    /// [`StoreError::InvalidIdentifier`](crate::StoreError::InvalidIdentifier) rather than return nothing (PostgreSQL could not
    /// even take a NUL-containing name as a parameter).
    ///
    /// ```
    /// use cqrs_core::EventFilter;
    /// assert!(EventFilter::all().with_event_types(["Deposited"]).validate().is_ok());
    /// assert!(EventFilter::all().with_stream_types(["a\0b"]).validate().is_err());
    /// ```
    pub fn validate(&self) -> Result<(), IdentifierError> {
        for name in &self.stream_types {
            ident::validate("stream type", name)?;
        }
        for name in &self.event_types {
            ident::validate("event type", name)?;
        }
        Ok(())
    }
}
