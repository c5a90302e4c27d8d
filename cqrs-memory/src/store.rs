//! The in-memory store: its data and the locks around it. Each store trait is implemented
//! in the file named after it.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use cqrs_core::personal::{StaticKek, Subject};
use cqrs_core::store::personal_data::{self, StoredKey};
use cqrs_core::{Position, Snapshot, StoredEvent, StreamId};
use tokio::sync::watch;

use crate::checkpoint_store::Subscriptions;
use crate::inline::InlineProjections;

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
    pub(crate) log: RwLock<Log>,
    pub(crate) snapshots: Mutex<HashMap<StreamId, Snapshot>>,
    pub(crate) subscriptions: Subscriptions,
    /// Projections run inside each append (see [`MemoryStore::with_inline_projection`]).
    pub(crate) inline: InlineProjections,
    /// The position of the last event, for `wait_for_events`.
    pub(crate) head: watch::Sender<Position>,
    /// The subjects' keys of personal data; locked after `log` when both are.
    pub(crate) keys: Mutex<Keys>,
}

/// The subjects' data keys, wrapped by a key-encryption key of this store alone (its data
/// lives no longer than the process), as a database keeps them.
pub(crate) struct Keys {
    pub(crate) kek: StaticKek,
    pub(crate) subjects: HashMap<Subject, StoredKey>,
}

#[derive(Default)]
pub(crate) struct Log {
    /// Every event in commit order; the event at index `i` has sequence `i + 1`, `None`
    /// once purged (`purge_stream`), so that the others keep their places.
    pub(crate) all: Vec<Option<Arc<StoredEvent>>>,
    /// Each stream's events in version order (from 1 without gaps, but for a purged
    /// stream, which keeps only its tombstone).
    pub(crate) streams: HashMap<StreamId, Vec<Arc<StoredEvent>>>,
    /// Stored event ids, to refuse duplicates as the database's unique index does.
    pub(crate) event_ids: HashSet<uuid::Uuid>,
    /// Deleted streams: their last event is their tombstone.
    pub(crate) deleted: HashSet<StreamId>,
    /// Truncated streams, with the first version they keep.
    pub(crate) truncated: HashMap<StreamId, u64>,
    /// Archived streams' events, taken out of `streams` (they keep their places in `all`,
    /// which global reads skip unless asked for the archive).
    pub(crate) archived: HashMap<StreamId, Vec<Arc<StoredEvent>>>,
}

impl Log {
    /// [`StoreError::Archived`](cqrs_core::StoreError::Archived) if `stream` is archived.
    pub(crate) fn check_not_archived(
        &self,
        stream: &StreamId,
    ) -> Result<(), cqrs_core::StoreError> {
        match self.archived.get(stream) {
            None => Ok(()),
            Some(events) => Err(cqrs_core::StoreError::Archived {
                stream: stream.clone(),
                version: events.last().map_or(0, |e| e.stream_version),
            }),
        }
    }

    /// Whether a global read with `filter` returns `event`: not if its stream is archived,
    /// unless the filter asks for the archive.
    pub(crate) fn visible(&self, event: &StoredEvent, filter: &cqrs_core::EventFilter) -> bool {
        filter.accepts(event.stream.stream_type(), &event.event_type)
            && (self.archived.is_empty()
                || filter.includes_archived()
                || !self.archived.contains_key(&event.stream))
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                log: RwLock::default(),
                snapshots: Mutex::default(),
                subscriptions: Subscriptions::default(),
                inline: InlineProjections::default(),
                head: watch::Sender::new(Position::START),
                keys: Mutex::new(Keys {
                    kek: StaticKek::generate(),
                    subjects: HashMap::new(),
                }),
            }),
        }
    }

    /// Opens the personal fields of events read from the log (see
    /// [`open_events`](cqrs_core::store::personal_data::open_events)): a copy of each
    /// event that holds any, the others as they are.
    pub(crate) fn open(
        &self,
        events: Vec<Arc<StoredEvent>>,
        prefix: bool,
    ) -> Result<Vec<Arc<StoredEvent>>, cqrs_core::StoreError> {
        let subjects = personal_data::subjects_to_open(&events)?;
        if subjects.is_empty() {
            return Ok(events);
        }
        let keys = lock(&self.inner.keys);
        let found: HashMap<Subject, StoredKey> = subjects
            .into_iter()
            .filter_map(|s| Some((s.clone(), keys.subjects.get(&s)?.clone())))
            .collect();
        personal_data::open_events(Some(&keys.kek), events, &found, prefix)
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
    pub(crate) fn read_log(&self) -> std::sync::RwLockReadGuard<'_, Log> {
        self.inner
            .log
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn write_log(&self) -> std::sync::RwLockWriteGuard<'_, Log> {
        self.inner
            .log
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Locks `mutex`, whose data no panic leaves half-changed (as for the log).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
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
