//! Errors of the store layer.

use std::sync::Arc;

use uuid::Uuid;

use super::{ExpectedVersion, UnstorableJson};
use crate::ident::IdentifierError;
use crate::{StoredEvent, StreamId};

/// A boxed error from a backend's driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream was not at the expected version: another writer got there first.
    /// Nothing was written. Reload and retry (the engine does).
    #[error("conflict on stream {stream}: expected {expected}, but it is at version {actual}")]
    Conflict {
        /// The stream.
        stream: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The version the stream was at (0 when it has no events).
        actual: u64,
    },
    /// The append ran in a transaction older than the one that wrote the stream's current
    /// version, so its events would come before that version in the global log (which
    /// is in transaction order on PostgreSQL) and a subscriber would see the stream go
    /// backwards. Nothing was written. Roll the transaction back and retry in a new one,
    /// or append to the stream before the transaction's other writes. Only an append
    /// inside a caller's transaction can meet it: a store retries its own.
    #[error(
        "append to {stream} refused: the transaction is older than the one that wrote its \
         version {version}, so its events would precede that version in the global log; \
         roll back and retry in a new transaction"
    )]
    StaleTransaction {
        /// The stream.
        stream: StreamId,
        /// The stream's current version, written by the younger transaction.
        version: u64,
    },
    /// The stream was deleted ([`StreamStore::delete_stream`](super::StreamStore::delete_stream)):
    /// its last event, at `version`, is its tombstone, and it takes no more events.
    /// Nothing was written. Loading it through the engine fails the same way.
    #[error(
        "stream {stream} was deleted (its tombstone is version {version}): it takes no more events"
    )]
    StreamDeleted {
        /// The stream.
        stream: StreamId,
        /// The tombstone's version.
        version: u64,
    },
    /// The stream is archived ([`StreamStore::archive_stream`](super::StreamStore::archive_stream)):
    /// its events are out of the hot path, so it is neither loaded nor appended to, nor
    /// deleted, purged or truncated. Nothing was written. Un-archive it
    /// ([`unarchive_stream`](super::StreamStore::unarchive_stream)) to use it again, or read
    /// it where it is ([`read_archived_stream`](super::StreamStore::read_archived_stream)).
    #[error(
        "stream {stream} is archived (at version {version}): un-archive it to load it or \
         append to it, or read it from the archive"
    )]
    Archived {
        /// The stream.
        stream: StreamId,
        /// Its last version.
        version: u64,
    },
    /// [`purge_stream`](super::StreamStore::purge_stream) was asked of a stream that is not
    /// deleted: only a deleted stream's events can be removed. Nothing changed.
    #[error("stream {stream} is not deleted: delete it first, then purge it")]
    NotDeleted {
        /// The stream.
        stream: StreamId,
    },
    /// The events asked for were truncated away
    /// ([`truncate_stream`](super::StreamStore::truncate_stream)): the stream keeps its
    /// events from version `before` on, and a snapshot stands for the rest. A temporal
    /// read before the cut cannot be answered.
    #[error("stream {stream} was truncated: its events before version {before} are gone")]
    Truncated {
        /// The stream.
        stream: StreamId,
        /// Its first version kept.
        before: u64,
    },
    /// A truncation was asked that no snapshot of the stream covers: the aggregate could
    /// not be loaded afterwards. Nothing changed. Save a snapshot at `before - 1` or later
    /// first (the engine's snapshot policy does).
    #[error(
        "cannot truncate {stream} before version {before}: its snapshot ({}) does not cover \
         version {}",
        snapshot.map_or_else(|| "none".to_owned(), |v| format!("at version {v}")),
        before.saturating_sub(1)
    )]
    NotCovered {
        /// The stream.
        stream: StreamId,
        /// The first version that would have been kept.
        before: u64,
        /// The version of the stream's snapshot, if it has one.
        snapshot: Option<u64>,
    },
    /// The append carries personal data about a subject that was forgotten
    /// ([`StreamStore::forget_subject`](super::StreamStore::forget_subject)): its key is
    /// destroyed, and no new personal data about it is stored. Nothing was written.
    #[error("subject {subject} was forgotten: personal data about it is no longer stored")]
    Forgotten {
        /// The subject.
        subject: crate::personal::Subject,
    },
    /// The store holds or was given personal data ([`personal`](crate::personal)) and has
    /// no key-encryption key to wrap and unwrap its subjects' keys. Nothing was written.
    #[error(
        "personal data needs a key-encryption key, and this store has none: give it one \
         (PgStore::with_key_encryption_key, e.g. StaticKek::from_env(\"CQRS_KEK\"))"
    )]
    NoKeyEncryptionKey,
    /// A key could not be wrapped, unwrapped or checked: a wrong key-encryption key
    /// ([`PersonalError::WrongKek`](crate::personal::PersonalError::WrongKek)), a wrapped
    /// key that does not unwrap, an invalid subject.
    #[error(transparent)]
    Personal(#[from] crate::personal::PersonalError),
    /// An identifier was refused before any I/O.
    #[error(transparent)]
    InvalidIdentifier(#[from] IdentifierError),
    /// An append had no events. Nothing was written.
    #[error("append to {stream} has no events")]
    EmptyAppend {
        /// The stream.
        stream: StreamId,
    },
    /// An event id in the batch is already stored. Nothing was written.
    #[error("event id {event_id} is already stored (append to {stream})")]
    DuplicateEventId {
        /// The stream appended to.
        stream: StreamId,
        /// The id found twice.
        event_id: Uuid,
    },
    /// A value cannot be stored by every backend (a NUL character, or nesting deeper
    /// than [`MAX_JSON_DEPTH`](super::MAX_JSON_DEPTH)). Nothing was written.
    #[error("cannot store in {stream}: {reason}")]
    Unstorable {
        /// The stream appended to, or whose snapshot was saved.
        stream: StreamId,
        /// What is wrong.
        #[source]
        reason: UnstorableJson,
    },
    /// Stored data could not be read back by the store itself (not by the codec): for
    /// example metadata that does not fit [`Metadata`](crate::Metadata) after a manual
    /// edit.
    #[error("corrupt stored data at {stream} version {stream_version}: {reason}")]
    Corrupt {
        /// The stream.
        stream: StreamId,
        /// The version of the unreadable event.
        stream_version: u64,
        /// What is wrong (naming the event type when the store could read it).
        reason: String,
        /// The event as far as the store could read it (empty metadata, or `null` data,
        /// in place of the part that failed), when it could: a subscription parks it under
        /// [`FailurePolicy::Park`](crate::subscription::FailurePolicy::Park) instead of
        /// stalling on it.
        event: Option<Arc<StoredEvent>>,
    },
    /// The store could not be reached, or the connection broke. Whether the operation
    /// took effect is unknown for an append whose commit was in flight; everything else
    /// did not happen. Retrying later is safe (an append with an exact expected version
    /// cannot apply twice).
    #[error("store unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// A projection that runs inside the append (see the backends' inline projections)
    /// failed, so the append was rolled back: nothing was written.
    #[error("projection {projection} refused the append to {stream}: {source}")]
    Projection {
        /// The stream appended to.
        stream: StreamId,
        /// The projection's name.
        projection: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// Any other backend failure.
    #[error("store error: {0}")]
    Backend(#[source] BoxError),
}

impl StoreError {
    /// Whether trying the same operation again may succeed: a conflict (after reloading),
    /// a stale transaction (in a new transaction) or an unavailable store (after a pause).
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            StoreError::Conflict { .. }
                | StoreError::StaleTransaction { .. }
                | StoreError::Unavailable(_)
        )
    }
}
