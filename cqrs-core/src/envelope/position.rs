//! The global position of an event: the checkpoint type of subscriptions.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where an event stands in the store-wide commit order.
///
/// Subscriptions read "all events after position P" and save P as their checkpoint.
/// The value is opaque: a backend decides what its two parts mean, and callers only
/// compare, store and hand positions back. The memory store counts events; PostgreSQL
/// pairs the writing transaction's id with a sequence number, because a sequence alone
/// becomes visible out of order and a reader would skip the late committer (see the
/// PostgreSQL chapter of the guide).
///
/// Positions order lexicographically by (commit, sequence). [`Position::START`] is before
/// every event.
///
/// ```
/// use cqrs_core::Position;
/// let a = Position::from_parts(7, 100);
/// let b = Position::from_parts(8, 3);
/// assert!(Position::START < a && a < b);
/// // Shown and parsed as `COMMIT.SEQUENCE`, as operators see it.
/// assert_eq!(a.to_string(), "7.100");
/// assert_eq!("7.100".parse::<Position>(), Ok(a));
/// assert!("7".parse::<Position>().is_err());
/// ```
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    commit: u64,
    sequence: u64,
}

impl Position {
    /// Before the first event: the checkpoint of a subscription that has read nothing.
    pub const START: Position = Position {
        commit: 0,
        sequence: 0,
    };

    /// Builds a position from its two parts. For backends: the meaning of the parts is
    /// theirs.
    pub const fn from_parts(commit: u64, sequence: u64) -> Self {
        Self { commit, sequence }
    }

    /// The commit-order part (a counter or a transaction id, depending on the backend).
    pub const fn commit(&self) -> u64 {
        self.commit
    }

    /// The tie-breaking part within one commit.
    pub const fn sequence(&self) -> u64 {
        self.sequence
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.commit, self.sequence)
    }
}

/// A text that is not a position (`COMMIT.SEQUENCE`, two unsigned integers), from
/// [`Position`]'s `FromStr`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a position: expected COMMIT.SEQUENCE, two unsigned integers such as 7.100")]
pub struct PositionParseError(String);

impl std::str::FromStr for Position {
    type Err = PositionParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let refused = || PositionParseError(text.to_owned());
        let (commit, sequence) = text.split_once('.').ok_or_else(refused)?;
        let part = |part: &str| part.parse::<u64>().map_err(|_| refused());
        Ok(Self::from_parts(part(commit)?, part(sequence)?))
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Position({self})")
    }
}
