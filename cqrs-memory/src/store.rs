//! The in-memory store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use cqrs_core::store::{check_append, check_snapshot};
use cqrs_core::{
    EventFilter, EventStore, ExpectedVersion, NewEvent, Position, Snapshot, SnapshotStore,
    StoreError, StoredEvent, StreamId,
};
use tokio::sync::watch;

use crate::inline::Inline;
use crate::subscriptions::Subscriptions;

/// Event, snapshot and checkpoint store in memory.
///
/// Cheap to clone: clones share the same data, so one store can be handed to several
/// engines and subscriptions. Events are kept behind `Arc` and handed out as shared
/// references: reading the tail of a long stream costs the tail, not the stream.
///
/// Appends take a write lock for the check-and-insert, so racing appends on one stream
/// behave as on a database: exactly one wins per expected version.
#[derive(Clone)]
pub struct MemoryStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    log: RwLock<Log>,
    snapshots: Mutex<HashMap<StreamId, Snapshot>>,
    pub(crate) subscriptions: Subscriptions,
    /// Projections run inside each append (see [`MemoryStore::with_inline_projection`]).
    pub(crate) inline: Inline,
    /// The position of the last event, for `wait_for_events`.
    head: watch::Sender<Position>,
}

#[derive(Default)]
struct Log {
    /// Every event in commit order; the event at index `i` has sequence `i + 1`.
    all: Vec<Arc<StoredEvent>>,
    /// Each stream's events in version order; the event at index `i` has version `i + 1`.
    streams: HashMap<StreamId, Vec<Arc<StoredEvent>>>,
    /// Stored event ids, to refuse duplicates as the database's unique index does.
    event_ids: HashSet<uuid::Uuid>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                log: RwLock::default(),
                snapshots: Mutex::default(),
                subscriptions: Subscriptions::default(),
                inline: Inline::default(),
                head: watch::Sender::new(Position::START),
            }),
        }
    }

    /// The number of events stored.
    pub fn len(&self) -> usize {
        self.read_log().all.len()
    }

    /// Whether no event is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    // A panic while holding a lock cannot leave the data half-changed (every write
    // checks first and mutates after), so a poisoned lock is safe to keep using.
    fn read_log(&self) -> std::sync::RwLockReadGuard<'_, Log> {
        self.inner
            .log
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl MemoryStore {
    fn write_log(&self) -> std::sync::RwLockWriteGuard<'_, Log> {
        self.inner
            .log
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores events checked by [`prepare`] (under the same lock, or under the inline
    /// projections' gate) and wakes waiting readers.
    fn commit(&self, log: &mut Log, stored: Vec<Arc<StoredEvent>>) -> Vec<Arc<StoredEvent>> {
        let Some(first) = stored.first() else {
            return stored;
        };
        log.event_ids.extend(stored.iter().map(|e| e.event_id));
        log.all.extend(stored.iter().cloned());
        log.streams
            .entry(first.stream.clone())
            .or_default()
            .extend(stored.iter().cloned());
        self.inner.head.send_replace(position_of(log.all.len()));
        stored
    }
}

/// Checks an append against `log` and builds its events, without storing them: every
/// check is made here, so that [`MemoryStore::commit`] cannot fail and a batch is stored
/// whole or not at all.
fn prepare(
    log: &Log,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
    let actual = log.streams.get(stream).map_or(0, Vec::len) as u64;
    if !expected.matches(actual) {
        return Err(StoreError::Conflict {
            stream: stream.clone(),
            expected,
            actual,
        });
    }
    let mut batch_ids = HashSet::with_capacity(events.len());
    for event in &events {
        let id = event.event_id();
        if log.event_ids.contains(&id) || !batch_ids.insert(id) {
            return Err(StoreError::DuplicateEventId {
                stream: stream.clone(),
                event_id: id,
            });
        }
    }
    let recorded_at = chrono::Utc::now();
    let first_sequence = log.all.len() + 1;
    Ok(events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            Arc::new(event.into_stored(
                stream.clone(),
                actual + 1 + i as u64,
                position_of(first_sequence + i),
                recorded_at,
            ))
        })
        .collect())
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("events", &self.len())
            .finish_non_exhaustive()
    }
}

/// The memory store's positions: the sequence number in both parts.
pub(crate) fn position_of(sequence: usize) -> Position {
    Position::from_parts(sequence as u64, sequence as u64)
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        if events.is_empty() {
            return Err(StoreError::EmptyAppend {
                stream: stream.clone(),
            });
        }
        // Refused as on PostgreSQL (and before the version check, as there), so that a
        // test on memory fails where production would.
        check_append(stream, &events)?;
        if self.inner.inline.is_empty() {
            let mut log = self.write_log();
            let stored = prepare(&log, stream, expected, events)?;
            return Ok(self.commit(&mut log, stored));
        }
        // With inline projections, appends take turns at the gate: the checks made under
        // the read lock stay true while the projections run, and no reader sees the
        // events before the projections have taken them in.
        let _turn = self.inner.inline.gate().await;
        let stored = prepare(&self.read_log(), stream, expected, events)?;
        self.inner.inline.run(stream, &stored).await?;
        Ok(self.commit(&mut self.write_log(), stored))
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let log = self.read_log();
        let Some(events) = log.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let start = usize::try_from(from_version.saturating_sub(1)).unwrap_or(usize::MAX);
        Ok(events.iter().skip(start).take(max_count).cloned().collect())
    }

    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        filter.validate()?;
        let log = self.read_log();
        let start = usize::try_from(after.sequence()).unwrap_or(usize::MAX);
        Ok(log
            .all
            .iter()
            .skip(start)
            .filter(|e| filter.accepts(e.stream.stream_type(), &e.event_type))
            .take(max_count)
            .cloned()
            .collect())
    }

    async fn read_horizon(&self) -> Result<Position, StoreError> {
        Ok(position_of(self.read_log().all.len()))
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        let mut head = self.inner.head.subscribe();
        if *head.borrow_and_update() > after {
            return Ok(true);
        }
        let woken = tokio::time::timeout(timeout, head.wait_for(|p| *p > after)).await;
        // The sender lives in `self`, so the channel cannot close while we wait.
        Ok(matches!(woken, Ok(Ok(_))))
    }
}

#[async_trait]
impl SnapshotStore for MemoryStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let snapshots = self
            .inner
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(snapshots.get(stream).cloned())
    }

    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError> {
        check_snapshot(stream, &snapshot)?;
        let mut snapshots = self
            .inner
            .snapshots
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match snapshots.get(stream) {
            Some(stored) if stored.stream_version > snapshot.stream_version => {}
            _ => {
                snapshots.insert(stream.clone(), snapshot);
            }
        }
        Ok(())
    }
}
