//! The event store trait.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreError;
use crate::ident::{self, IdentifierError};
use crate::{NewEvent, Position, StoredEvent, StreamId};

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
    /// [`StoreError::InvalidIdentifier`] rather than return nothing (PostgreSQL could not
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

/// Where events are kept: appended per stream, read per stream or in global order.
///
/// Events come back as `Arc<StoredEvent>` so that a store that keeps them in memory hands
/// out shared references instead of copies.
///
/// Implementations must keep the guarantees of the
/// conformance suite (`testing::conformance`, feature `testing`): atomic appends, exactly one winner
/// per expected version, contiguous versions from 1, and a global read that never skips
/// an event that commits late.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
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

    /// Reads up to `max_count` events of `stream` with version `>= from_version`, in
    /// version order. A stream with no events reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError>;

    /// Reads up to `max_count` events after `after` in global order that pass `filter`.
    ///
    /// Never skips: an event that is not returned now because its transaction is still
    /// open will have a position after the last one returned. A store may return fewer
    /// than `max_count` events while more exist: it stops before an event it cannot read,
    /// and the next read, starting at that event, fails with [`StoreError::Corrupt`]
    /// naming it. A filter that [`EventFilter::validate`] refuses is
    /// [`StoreError::InvalidIdentifier`].
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError>;

    /// Waits until events after `after` may be readable, or `timeout` passes. Returns
    /// `true` when woken by new events, `false` on timeout. A spurious `true` is allowed:
    /// callers read again either way.
    async fn wait_for_events(&self, after: Position, timeout: Duration)
        -> Result<bool, StoreError>;

    /// A position up to which the global order is complete: every event that will ever
    /// be stored at or before it is readable now (or was rolled back), so a reader that
    /// found nothing after its position may move on to this one.
    ///
    /// A filtered subscription needs it: without it, its position stays at the last event
    /// it consumed while the log grows with events it does not consume, and waiting for
    /// events "after its position" would return at once, forever. In memory it is the
    /// last event's position; on PostgreSQL, the position just below the oldest
    /// transaction still running.
    async fn read_horizon(&self) -> Result<Position, StoreError>;

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
            let batch = self.read_stream(stream, from, BATCH).await?;
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

    /// How many events after `after` pass `filter`, counting at most `limit` (a
    /// subscription's lag). Events of transactions still open may or may not be counted.
    ///
    /// The provided implementation reads the events; a backend that can count where the
    /// events are should override it.
    async fn count_after(
        &self,
        after: Position,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<u64, StoreError> {
        const BATCH: usize = 1_000;
        let mut count = 0;
        let mut after = after;
        while count < limit {
            let batch = self.read_all(after, BATCH, filter).await?;
            let Some(last) = batch.last() else { break };
            after = last.position;
            count += batch.len() as u64;
            if batch.len() < BATCH {
                break;
            }
        }
        Ok(count.min(limit))
    }
}
