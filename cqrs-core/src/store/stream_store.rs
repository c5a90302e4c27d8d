//! The write side of an event store: streams, appended to and read one at a time. This
//! is all the engine needs.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use crate::{NewEvent, StoredEvent, StreamId};

/// What a writer expects the stream's version to be before its append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// Append whatever the version (no concurrency check).
    Any,
    /// The stream must have no events (creating an aggregate).
    NoStream,
    /// The stream's last version must be exactly this. `Exact(0)` is the same as
    /// `NoStream`.
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any version"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "version {v}"),
        }
    }
}

impl ExpectedVersion {
    /// Whether a stream at `actual` (0 = no events) satisfies this expectation.
    ///
    /// ```
    /// use cqrs_core::ExpectedVersion;
    /// assert!(ExpectedVersion::NoStream.matches(0));
    /// assert!(!ExpectedVersion::Exact(3).matches(4));
    /// assert!(ExpectedVersion::Any.matches(4));
    /// ```
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => actual == v,
        }
    }
}

/// Streams, appended to and read one at a time: the write side of an event store, and
/// all that the [`Engine`](crate::Engine) uses.
///
/// Events come back as `Arc<StoredEvent>` so that a store that keeps them in memory hands
/// out shared references instead of copies.
///
/// Implementations must keep the guarantees of the conformance suite
/// (`testing::conformance`, feature `testing`): atomic appends, exactly one winner per
/// expected version, contiguous versions from 1.
#[async_trait]
pub trait StreamStore: Send + Sync + 'static {
    /// Appends `events` to `stream` atomically if the stream is at `expected`.
    ///
    /// The events get versions `actual + 1 ..= actual + events.len()` and positions in
    /// commit order. Either all are stored or none: a version mismatch is
    /// [`StoreError::Conflict`], an empty batch [`StoreError::EmptyAppend`], an event id
    /// already stored [`StoreError::DuplicateEventId`], data or metadata that
    /// [`check_append`](super::check_append) refuses [`StoreError::Unstorable`].
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError>;

    /// Deletes `stream` if it is at `expected`: appends its tombstone (a last event of
    /// type [`TOMBSTONE_EVENT_TYPE`](crate::TOMBSTONE_EVENT_TYPE), with `metadata`, at
    /// the next version) and closes it, atomically. From then on an append to it is
    /// [`StoreError::StreamDeleted`], and loading it through the engine fails the same
    /// way; its events stay where they are (readable, in the global order), and
    /// subscriptions receive the tombstone as the stream's deletion notice. A stream with
    /// no events can be deleted too: its id can then never be used. Deleting it again is
    /// [`StoreError::StreamDeleted`]; a version mismatch [`StoreError::Conflict`].
    ///
    /// Returns the tombstone. Inline projections are not run for it: a projection learns
    /// of the deletion from its subscription.
    async fn delete_stream(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: crate::Metadata,
    ) -> Result<Arc<StoredEvent>, StoreError>;

    /// Removes the events of deleted stream `stream` for good (a hard delete): every
    /// event but its tombstone, its snapshot, and the dead letters of those events in
    /// every subscription. Returns how many events were removed (0 when purged already).
    /// A stream that is not deleted is [`StoreError::NotDeleted`].
    ///
    /// What it does to the rest, plainly: the global order keeps its other events and
    /// their positions (a reader sees a gap where the removed ones were); the tombstone
    /// stays, so the stream's id stays closed and subscriptions still receive the
    /// deletion notice; read models keep whatever they derived from the removed events
    /// until they drop it (their `stream_deleted`) or are rebuilt, and a rebuild no
    /// longer sees them. Copies elsewhere (a bus, an export, a backup) are not touched.
    async fn purge_stream(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// Removes the events of `stream` before version `before`, for a long-lived stream
    /// whose snapshot stands for its past: refused with [`StoreError::NotCovered`] unless
    /// the store holds a snapshot of the stream at version `before - 1` or later. Its
    /// last event always stays. Returns how many events were removed (0 when they were
    /// already).
    ///
    /// Afterwards the aggregate loads from the snapshot and the events after it (by an
    /// engine that reads snapshots, [`Engine::with_snapshots`](crate::Engine::with_snapshots);
    /// one that does not is told [`StoreError::Truncated`]); a read of
    /// the stream from a version before the cut is [`StoreError::Truncated`], so a
    /// temporal load of the past says it cannot answer. The removed events' dead letters
    /// go too; the global order keeps the other events at their positions (a gap where
    /// the removed ones were). Take care: the snapshot is now the only record of the
    /// past, so an aggregate whose snapshot no longer reads (a new
    /// [`SNAPSHOT_VERSION`](crate::Aggregate::SNAPSHOT_VERSION)) cannot be loaded, and a
    /// command repeated from before the cut is no longer recognised as done.
    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError>;

    /// Moves the events of `stream` out of the hot path, into the store's archive (on
    /// PostgreSQL the table `events_archive`), for a stream nobody loads any more but whose
    /// history must be kept. Returns how many events moved (0 when it was archived
    /// already, or has no events).
    ///
    /// While archived, the stream keeps its id and its version, and everything that would
    /// load or change it says so with [`StoreError::Archived`]: reads, appends, deletes,
    /// purges, truncations, and so the engine's loads and commands (never an empty
    /// aggregate that would take a creation command). The global read, listings and
    /// subscriptions skip its events, unless their filter asks for the archive
    /// ([`EventFilter::including_archived`](crate::EventFilter::including_archived)).
    /// Its snapshot and the dead letters of its events stay where they are. An append that
    /// races the archiving either returned before it (its events are archived with the
    /// rest) or is refused.
    async fn archive_stream(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// Moves an archived stream's events back into the hot path, at their versions and
    /// global positions: it loads and takes events again. Returns how many events moved (0
    /// when it was not archived). Subscriptions that passed their positions while they were
    /// archived do not receive them (they are behind them in the global order); rebuild
    /// a read model that must hold them.
    async fn unarchive_stream(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// Reads up to `max_count` events of archived `stream` with version `>= from_version`,
    /// in version order, from the archive: its history, without un-archiving it. A stream
    /// that is not archived reads as empty here (its events are in the hot path:
    /// [`read_stream`](Self::read_stream)).
    async fn read_archived_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError>;

    /// Forgets `subject` (crypto-shredding): destroys its data key, so that from then on
    /// every read of its events shows the placeholders of its
    /// [personal fields](crate::personal) instead of their values, and drops the
    /// snapshots of the streams that hold them (a snapshot is state derived from them, in
    /// plaintext). New personal data about it is refused ([`StoreError::Forgotten`]).
    /// Forgetting it again, or a subject the store never held data about, changes
    /// nothing but that refusal.
    ///
    /// Returns the streams that hold its sealed fields, in order: where the application
    /// looks for the copies the store does not own (read models built from them, to
    /// rebuild or clean; messages already on a bus).
    async fn forget_subject(
        &self,
        subject: &crate::personal::Subject,
    ) -> Result<Vec<StreamId>, StoreError>;

    /// Reads up to `max_count` events of `stream` with version `>= from_version`, in
    /// version order. A stream with no events reads as empty. From a version that was
    /// truncated away, [`StoreError::Truncated`]; of an archived stream,
    /// [`StoreError::Archived`].
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError>;

    /// The events of `stream` that were written by the command with id `command_id`
    /// ([`Metadata::command_id`](crate::Metadata::command_id)), in version order; empty
    /// when that command wrote nothing there. The engine uses it to make commands
    /// idempotent.
    ///
    /// The provided implementation reads the whole stream; a backend with an index on the
    /// command id should override it.
    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        const BATCH: usize = 1_000;
        let mut found = Vec::new();
        let mut from = 1;
        loop {
            let batch = match self.read_stream(stream, from, BATCH).await {
                // What was truncated away is not there to look at.
                Err(StoreError::Truncated { before, .. }) if before > from => {
                    from = before;
                    continue;
                }
                read => read?,
            };
            let Some(last) = batch.last() else {
                return Ok(found);
            };
            from = last.stream_version + 1;
            let done = batch.len() < BATCH;
            found.extend(
                batch
                    .into_iter()
                    .filter(|e| e.metadata.command_id == Some(command_id)),
            );
            if done {
                return Ok(found);
            }
        }
    }

    /// Reads up to `max_count` events of `stream` with version `<= to_version`, newest
    /// first: the last events of a stream (`to_version = u64::MAX`), what an operator
    /// looks at first. The next page starts at the last returned version minus one.
    ///
    /// The provided implementation reads the stream forwards up to `to_version`; a
    /// backend that can read an index backwards should override it.
    async fn read_stream_backwards(
        &self,
        stream: &StreamId,
        to_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        const BATCH: usize = 1_000;
        if max_count == 0 {
            return Ok(Vec::new());
        }
        let mut last = VecDeque::with_capacity(max_count.min(BATCH));
        let mut from = 1;
        while from <= to_version {
            let batch = match self.read_stream(stream, from, BATCH).await {
                // What was truncated away is not there to read.
                Err(StoreError::Truncated { before, .. }) if before > from => {
                    from = before;
                    continue;
                }
                read => read?,
            };
            let done = batch.len() < BATCH;
            for event in batch {
                if event.stream_version > to_version {
                    break;
                }
                from = event.stream_version + 1;
                if last.len() == max_count {
                    last.pop_front();
                }
                last.push_back(event);
            }
            if done {
                break;
            }
        }
        Ok(last.into_iter().rev().collect())
    }
}
