//! Errors of the engine.

use crate::codec::{DecodeError, EncodeError};
use crate::ident::IdentifierError;
use crate::store::BoxError;
use crate::unwind::Panicked;
use crate::{StoreError, StreamId};

/// Why a command or a load failed. `E` is the aggregate's own error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError<E: std::error::Error + 'static> {
    /// The aggregate refused the command. Nothing was written.
    #[error("command refused: {0}")]
    Rejected(#[source] E),
    /// The aggregate id is not a valid identifier.
    #[error("invalid aggregate id: {0}")]
    InvalidId(#[from] IdentifierError),
    /// [`send`](crate::Engine::send) got a command that names no aggregate.
    #[error("command {command} names no aggregate id; use `execute(id, command)`")]
    MissingAggregateId {
        /// The command's name.
        command: &'static str,
    },
    /// The aggregate is not at the version the caller based its command on
    /// ([`execute_expecting`](crate::Engine::execute_expecting)). Nothing was written;
    /// sending the same command again fails the same way: read the aggregate again first.
    #[error("{stream} is at version {actual}, not at the expected version {expected}")]
    UnexpectedVersion {
        /// The stream.
        stream: StreamId,
        /// The version the caller expected.
        expected: u64,
        /// The version the stream is at.
        actual: u64,
    },
    /// Every attempt lost a race with another writer. Nothing was written.
    #[error("gave up on {stream} after {attempts} conflicting attempts: {source}")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// How many attempts were made.
        attempts: u32,
        /// The last conflict.
        #[source]
        source: StoreError,
    },
    /// [`load_at`](crate::Engine::load_at) asked for a version the stream has not reached.
    #[error("{stream} has {current} events; version {requested} does not exist")]
    VersionNotFound {
        /// The stream.
        stream: StreamId,
        /// The version asked for.
        requested: u64,
        /// The stream's current version.
        current: u64,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event could not be decoded.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An event could not be encoded. Nothing was written.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// An event the command decided holds a float that is NaN, +∞ or −∞, at `path` in its
    /// data (`amount`, `lines[2].price`). JSON has no such numbers: serde_json would have
    /// stored `null`, and no later load of the aggregate would have decoded it. Refused
    /// before any I/O: nothing was written and the aggregate is as it was. Usually the
    /// command's input is at fault (an HTTP service answers 422); the same command fails
    /// the same way.
    #[error("cannot store event {event_type:?} in {stream}: {}", crate::codec::json::non_finite_message(path, *value))]
    NonFinite {
        /// The stream.
        stream: StreamId,
        /// The event type.
        event_type: &'static str,
        /// Where the float is in the event's data.
        path: String,
        /// The float (an `f32` widened to `f64`).
        value: f64,
    },
    /// The aggregate's `handle` or `apply` panicked: a bug in application code. The
    /// engine caught the panic and dropped the state it was working on (its memory image
    /// included), so the next command on the aggregate loads it from the store.
    ///
    /// Without `committed`, nothing was written. With it, `apply` panicked on the events
    /// the command had just committed (up to that version): the command took effect and
    /// the engine's projections ran, but no image or snapshot was kept, and the next load
    /// applies those events again.
    #[error("`{call}` of {stream}{} {source}", committed.map(|v| format!(", after version {v} was committed,")).unwrap_or_default())]
    Panicked {
        /// The stream.
        stream: StreamId,
        /// The function that panicked: `"handle"` or `"apply"`.
        call: &'static str,
        /// The version committed before the panic, if the command committed.
        committed: Option<u64>,
        /// The panic.
        #[source]
        source: Panicked,
    },
    /// The events were committed, but an inline projection failed on them (an error, or
    /// a panic: [`Panicked`] as the source).
    #[error("events committed on {stream} up to version {version}, but projection {projection} failed: {source}")]
    Projection {
        /// The stream.
        stream: StreamId,
        /// The version that was committed.
        version: u64,
        /// The projection's name.
        projection: &'static str,
        /// Its error.
        #[source]
        source: BoxError,
    },
}

impl<E: std::error::Error + 'static> EngineError<E> {
    /// The aggregate's refusal, if that is what this is.
    pub fn rejection(&self) -> Option<&E> {
        match self {
            EngineError::Rejected(e) => Some(e),
            _ => None,
        }
    }

    /// A short, stable name of the kind of error (`rejected`, `conflict`, `store`, ...):
    /// what the `cqrs.execute` span records as `error.type` and logs can group by.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Rejected(_) => "rejected",
            EngineError::InvalidId(_) => "invalid_id",
            EngineError::MissingAggregateId { .. } => "missing_aggregate_id",
            EngineError::UnexpectedVersion { .. } => "unexpected_version",
            EngineError::Conflict { .. } => "conflict",
            EngineError::VersionNotFound { .. } => "version_not_found",
            EngineError::Store(_) => "store",
            EngineError::Decode(_) => "decode",
            EngineError::Encode(_) => "encode",
            EngineError::NonFinite { .. } => "non_finite",
            EngineError::Panicked { .. } => "panicked",
            EngineError::Projection { .. } => "projection",
        }
    }

    /// Whether the same command may succeed if sent again later: every attempt
    /// conflicted, or the store was unavailable.
    pub fn is_retriable(&self) -> bool {
        match self {
            EngineError::Conflict { .. } => true,
            EngineError::Store(e) => e.is_retriable(),
            _ => false,
        }
    }
}
