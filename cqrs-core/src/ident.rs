//! Identifiers that reach a store: stream types, stream ids, event types and subscription
//! names.
//!
//! They are checked once, where they are built, so that a backend never sees a value it
//! cannot store faithfully: PostgreSQL `text` cannot hold NUL, an empty id is always a
//! bug, and an unbounded id makes indexes and logs unbounded too. Invalid input is a
//! typed [`IdentifierError`] before any I/O.

use std::fmt;
use std::sync::Arc;

/// The longest identifier accepted, in bytes of UTF-8.
///
/// 255 bytes fits any sensible id (a UUID is 36, a URN rarely over 100) and keeps
/// PostgreSQL's btree entries far below their size limit.
pub const MAX_IDENTIFIER_LEN: usize = 255;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    /// The identifier was empty.
    #[error("{what} must not be empty")]
    Empty {
        /// Which identifier, e.g. `"stream id"`.
        what: &'static str,
    },
    /// The identifier was longer than [`MAX_IDENTIFIER_LEN`] bytes.
    #[error("{what} is {len} bytes long; the limit is {max} bytes")]
    TooLong {
        /// Which identifier.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit, [`MAX_IDENTIFIER_LEN`].
        max: usize,
    },
    /// The identifier contained a NUL character, which PostgreSQL text cannot hold.
    #[error("{what} contains a NUL character at byte {at}")]
    ContainsNul {
        /// Which identifier.
        what: &'static str,
        /// Byte offset of the first NUL.
        at: usize,
    },
    /// The name is one the stores keep for their own events (the tombstone of a deleted
    /// stream, [`TOMBSTONE_EVENT_TYPE`](crate::TOMBSTONE_EVENT_TYPE)): an application's
    /// event must not pass for one.
    #[error("{what} {value:?} is reserved for the store's own events")]
    Reserved {
        /// Which identifier.
        what: &'static str,
        /// The name given.
        value: String,
    },
}

/// Checks one identifier against the rules of this module.
///
/// The types that hold identifiers ([`StreamId`], [`SubscriptionName`],
/// [`EventFilter`](crate::EventFilter), [`NewEvent`](crate::NewEvent)) call it when they
/// are built, so a backend never has to.
///
/// ```
/// use cqrs_core::ident::{validate, IdentifierError};
/// assert!(validate("subscription name", "balances").is_ok());
/// assert_eq!(
///     validate("subscription name", ""),
///     Err(IdentifierError::Empty { what: "subscription name" })
/// );
/// ```
pub fn validate(what: &'static str, value: &str) -> Result<(), IdentifierError> {
    if value.is_empty() {
        return Err(IdentifierError::Empty { what });
    }
    if value.len() > MAX_IDENTIFIER_LEN {
        return Err(IdentifierError::TooLong {
            what,
            len: value.len(),
            max: MAX_IDENTIFIER_LEN,
        });
    }
    if let Some(at) = value.bytes().position(|b| b == 0) {
        return Err(IdentifierError::ContainsNul { what, at });
    }
    Ok(())
}

/// The identity of one event stream: the aggregate type and the aggregate id.
///
/// Streams of different types never share versions, so `("account", "42")` and
/// `("order", "42")` are distinct streams. Both parts are validated on construction, so
/// holding a `StreamId` proves the store can take it. Cloning is cheap.
///
/// ```
/// use cqrs_core::StreamId;
/// let id = StreamId::new("account", "alice")?;
/// assert_eq!(id.to_string(), "account/alice");
/// assert!(StreamId::new("account", "").is_err());
/// # Ok::<(), cqrs_core::ident::IdentifierError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    stream_type: Arc<str>,
    id: Arc<str>,
}

impl StreamId {
    /// Builds a stream id, refusing an empty, over-long or NUL-containing part.
    pub fn new(stream_type: &str, id: &str) -> Result<Self, IdentifierError> {
        validate("stream type", stream_type)?;
        validate("stream id", id)?;
        Ok(Self {
            stream_type: stream_type.into(),
            id: id.into(),
        })
    }

    /// The stream type (the aggregate type name).
    pub fn stream_type(&self) -> &str {
        &self.stream_type
    }

    /// The id of the stream within its type (the aggregate id).
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream_type, self.id)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({:?}/{:?})", self.stream_type, self.id)
    }
}

/// The name of a subscription, or of one of its checkpoints: the key of its checkpoint,
/// lease and dead letters in a [`CheckpointStore`](crate::CheckpointStore).
///
/// Validated on construction like the parts of a [`StreamId`], so a checkpoint store is
/// never handed a name it cannot store. Cloning is cheap.
///
/// ```
/// use cqrs_core::ident::{IdentifierError, SubscriptionName};
/// let name = SubscriptionName::new("balances")?;
/// assert_eq!(name.versioned(2)?.as_str(), "balances@v2");
/// assert_eq!(
///     SubscriptionName::new(""),
///     Err(IdentifierError::Empty { what: "subscription name" })
/// );
/// # Ok::<(), IdentifierError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionName(Arc<str>);

impl SubscriptionName {
    /// Builds a name, refusing an empty, over-long or NUL-containing one.
    pub fn new(name: impl Into<String>) -> Result<Self, IdentifierError> {
        let name = name.into();
        validate("subscription name", &name)?;
        Ok(Self(name.into()))
    }

    /// The key of this subscription's checkpoint for `version` of its logic,
    /// `name@vVERSION`: each version has its own. Refused if it grows past the limit.
    pub fn versioned(&self, version: u32) -> Result<Self, IdentifierError> {
        Self::new(format!("{self}@v{version}"))
    }

    /// The name and version of a checkpoint key made by [`versioned`](Self::versioned):
    /// `orders@v2` is (`orders`, `Some(2)`). A name without a version (a relay's
    /// checkpoint, a subscription's own name) is itself, with `None`.
    ///
    /// ```
    /// use cqrs_core::SubscriptionName;
    /// let key = SubscriptionName::new("orders")?.versioned(2)?;
    /// let (name, version) = key.unversioned();
    /// assert_eq!((name.as_str(), version), ("orders", Some(2)));
    /// assert_eq!(name.unversioned(), (name.clone(), None));
    /// # Ok::<(), cqrs_core::ident::IdentifierError>(())
    /// ```
    pub fn unversioned(&self) -> (Self, Option<u32>) {
        let split = self.0.rsplit_once("@v").and_then(|(name, version)| {
            let version = version.parse().ok()?;
            Some((Self::new(name).ok()?, version))
        });
        match split {
            Some((name, version)) => (name, Some(version)),
            None => (self.clone(), None),
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SubscriptionName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SubscriptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubscriptionName({:?})", &*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_longest_valid_identifier() {
        let long = "é".repeat(MAX_IDENTIFIER_LEN / 2);
        assert!(StreamId::new("t", &long).is_ok());
    }

    #[test]
    fn refuses_bad_identifiers_with_the_reason() {
        assert_eq!(
            StreamId::new("", "x"),
            Err(IdentifierError::Empty {
                what: "stream type"
            })
        );
        assert_eq!(
            StreamId::new("t", &"x".repeat(256)),
            Err(IdentifierError::TooLong {
                what: "stream id",
                len: 256,
                max: 255
            })
        );
        assert_eq!(
            SubscriptionName::new("x".repeat(254))
                .expect("valid")
                .versioned(1),
            Err(IdentifierError::TooLong {
                what: "subscription name",
                len: 257,
                max: 255
            })
        );
        assert_eq!(
            StreamId::new("t", "a\0b"),
            Err(IdentifierError::ContainsNul {
                what: "stream id",
                at: 1
            })
        );
    }
}
