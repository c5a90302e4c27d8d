//! The memory image: a bounded in-process cache of hot aggregates' state and version.
//!
//! Without it every command reads the stream (or a snapshot and its tail) before
//! deciding: on PostgreSQL a read round trip before the append round trip, and a cost
//! that grows with the tail. With it ([`Engine::with_image_cache`]) a command on a hot
//! aggregate is decided on the cached state and appended with the cached version as the
//! expected version, so it costs one round trip.
//!
//! Correctness rests on the optimistic check alone. The cache may be stale (another
//! engine or process wrote since): then the append conflicts, the entry is dropped, and
//! the engine's retry reloads from the store and decides again. Nothing the cache holds
//! is ever written.
//!
//! A decision that appends nothing (a refusal, or no events) meets no optimistic check,
//! so when it was made on an image the engine checks that the stream has no event after
//! the image's version (a read of at most one event); if it has, the engine drops the
//! image and decides again on a fresh load. A refusal never rests on a stale image.
//!
//! A command *takes* its aggregate's image out of the cache for its duration, and the
//! engine puts it back only when the state is known to be right: after a commit (with
//! the committed events applied, at the new version), or unchanged after a refusal or a
//! command that decided nothing. A failed append never leaves a half-applied state behind,
//! and the aggregate type needs no `Clone`. Two commands of one engine on the same
//! aggregate at once: the second finds no image, loads from the store, and the store's
//! check orders them as it would two processes.
//!
//! Eviction is CLOCK (second chance), O(1) amortised per operation: entries live in a
//! fixed ring of `capacity` slots plus an index from stream to slot; a hit sets the
//! slot's *referenced* bit; when the ring is full, a hand sweeps it, clearing set bits and
//! evicting the first slot whose bit is clear. Each bit the hand clears was set by one
//! earlier hit, so the sweep costs at most one step per hit plus one per insert. It
//! approximates LRU without a linked list or any per-hit reordering, and with no
//! dependency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Engine, EngineError, Loaded};
use crate::{Aggregate, StreamId};

/// Cached states, at most `capacity` of them.
pub(super) struct ImageCache<A> {
    clock: Mutex<Clock<A>>,
    capacity: usize,
}

struct Slot<A> {
    id: Arc<str>,
    /// `None` while a command has the image out, or after a conflict dropped it.
    image: Option<Loaded<A>>,
    referenced: bool,
}

/// Keyed by the aggregate id alone: an engine caches one aggregate type, so the id
/// names the stream, and hashing one string instead of two halves the cost of a lookup.
struct Clock<A> {
    index: HashMap<Arc<str>, usize>,
    slots: Vec<Slot<A>>,
    hand: usize,
}

impl<A> ImageCache<A> {
    /// A cache of at most `capacity` aggregates (at least 1).
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            clock: Mutex::new(Clock {
                index: HashMap::with_capacity(capacity.min(1 << 16)),
                slots: Vec::with_capacity(capacity.min(1 << 16)),
                hand: 0,
            }),
            capacity,
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    // Every operation below checks before it mutates and cannot panic half-way, so a
    // poisoned lock (a panic elsewhere while holding it) leaves consistent data.
    fn lock(&self) -> MutexGuard<'_, Clock<A>> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the image of `stream` out of the cache, if there is one.
    pub(super) fn take(&self, stream: &StreamId) -> Option<Loaded<A>> {
        let mut clock = self.lock();
        let at = *clock.index.get(stream.id())?;
        let slot = &mut clock.slots[at];
        slot.referenced = true;
        slot.image.take()
    }

    /// Puts an image of `stream` in the cache, unless the cache already holds a newer
    /// (or as new) one, evicting another stream's image if the cache is full. Returns
    /// whether an image was evicted.
    pub(super) fn keep(&self, stream: &StreamId, loaded: Loaded<A>) -> bool {
        let mut clock = self.lock();
        if let Some(&at) = clock.index.get(stream.id()) {
            let slot = &mut clock.slots[at];
            slot.referenced = true;
            if slot
                .image
                .as_ref()
                .is_none_or(|held| held.version < loaded.version)
            {
                let _replaced = slot.image.replace(loaded);
                drop(clock); // drop the old state outside the lock
            }
            return false;
        }
        let id: Arc<str> = stream.id().into();
        let fresh = Slot {
            id: Arc::clone(&id),
            image: Some(loaded),
            referenced: false,
        };
        if clock.slots.len() < self.capacity {
            let at = clock.slots.len();
            clock.slots.push(fresh);
            clock.index.insert(id, at);
            return false;
        }
        let victim = clock.sweep();
        let evicted = std::mem::replace(&mut clock.slots[victim], fresh);
        clock.index.remove(&evicted.id);
        clock.index.insert(id, victim);
        drop(clock); // drop the evicted state outside the lock
        evicted.image.is_some()
    }

    /// Drops the image of `stream`: it is stale.
    pub(super) fn forget(&self, stream: &StreamId) {
        let mut clock = self.lock();
        if let Some(&at) = clock.index.get(stream.id()) {
            let _stale = clock.slots[at].image.take();
            drop(clock);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().index.len()
    }
}

impl<A> Clock<A> {
    /// Advances the hand to the first slot not referenced since the hand last passed,
    /// clearing the bits on the way, and returns that slot. The ring is full (not empty).
    fn sweep(&mut self) -> usize {
        let len = self.slots.len();
        loop {
            let at = self.hand;
            self.hand = (at + 1) % len;
            let slot = &mut self.slots[at];
            if !slot.referenced {
                return at;
            }
            slot.referenced = false;
        }
    }
}

impl<A: Aggregate> Engine<A> {
    /// Keeps the state and version of up to `capacity` recently used aggregates in
    /// memory (the *memory image*), so that a command on one of them needs no read.
    ///
    /// A command on a cached aggregate is decided on the cached state and appended with
    /// the cached version as the expected version. If another engine or process wrote
    /// since, the append conflicts: the entry is dropped and the command retried (by the
    /// [retry policy](Self::with_retry)) on a fresh load. So the image never makes a
    /// decision on stale state stick, and correctness rests on the store's optimistic
    /// check alone. Least recently used entries (approximately: CLOCK eviction) make way
    /// for new ones. A refusal (or a decision to do nothing) made on a cached state is
    /// confirmed with a read of at most one event after the cached version, since it
    /// appends nothing for the optimistic check to catch. `capacity` 0 turns the image
    /// off. Clones of the engine share it.
    ///
    /// [`load`](Self::load) and [`load_at`](Self::load_at) always read the store.
    ///
    /// ```
    /// # use cqrs_core::{Aggregate, Engine, StreamStore};
    /// # fn build<A: Aggregate<Services = ()>>(store: impl StreamStore) {
    /// let engine = Engine::<A>::new(store, ()).with_image_cache(10_000);
    /// # }
    /// ```
    pub fn with_image_cache(mut self, capacity: usize) -> Self {
        self.images = (capacity > 0).then(|| Arc::new(ImageCache::new(capacity)));
        self
    }

    /// The state to decide a command on: the image if there is one (`true`), else a
    /// load (`false`).
    pub(super) async fn load_for_command(
        &self,
        stream: &StreamId,
    ) -> Result<(Loaded<A>, bool), EngineError<A::Error>> {
        if let Some(images) = &self.images {
            let image = images.take(stream);
            crate::observe::metrics::image(A::TYPE, image.is_some());
            if let Some(loaded) = image {
                return Ok((loaded, true));
            }
        }
        Ok((self.load_stream(stream, None).await?, false))
    }

    /// Whether a decision that appends nothing (a refusal, or no events), made on
    /// `loaded`, stands. One made on a freshly loaded state does. One made on an image
    /// does if the stream has no event after the image's version: it is checked with a
    /// read of at most one event, because without an append no optimistic check would
    /// catch a stale image, and a refusal must not rest on another process's past.
    pub(super) async fn decision_stands(
        &self,
        stream: &StreamId,
        loaded: &Loaded<A>,
        from_image: bool,
    ) -> Result<bool, EngineError<A::Error>> {
        if !from_image {
            return Ok(true);
        }
        let newer = self
            .events
            .read_stream(stream, loaded.version + 1, 1)
            .await?;
        if newer.is_empty() {
            return Ok(true);
        }
        tracing::debug!(version = loaded.version, "stale image; reloading");
        Ok(false)
    }

    /// Puts a state known to be stored at `loaded.version` back into the image.
    pub(super) fn keep_image(&self, stream: &StreamId, loaded: Loaded<A>) {
        if let Some(images) = &self.images {
            if images.keep(stream, loaded) {
                crate::observe::metrics::evicted(A::TYPE);
            }
        }
    }

    /// Drops a stale image (another writer moved the stream).
    pub(super) fn forget_image(&self, stream: &StreamId) {
        if let Some(images) = &self.images {
            images.forget(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(n: u32) -> StreamId {
        StreamId::new("t", &n.to_string()).expect("valid")
    }

    fn image(version: u64) -> Loaded<u64> {
        Loaded {
            state: version * 10,
            version,
        }
    }

    #[test]
    fn take_empties_the_slot_until_kept_again() {
        let cache = ImageCache::new(4);
        cache.keep(&stream(1), image(3));
        assert_eq!(cache.take(&stream(1)), Some(image(3)));
        assert_eq!(cache.take(&stream(1)), None, "taken out for the command");
        cache.keep(&stream(1), image(4));
        assert_eq!(cache.take(&stream(1)), Some(image(4)));
        assert_eq!(cache.take(&stream(2)), None);
    }

    #[test]
    fn an_older_image_never_replaces_a_newer_one() {
        let cache = ImageCache::new(4);
        cache.keep(&stream(1), image(5));
        cache.keep(&stream(1), image(4));
        cache.keep(&stream(1), image(5));
        assert_eq!(cache.take(&stream(1)), Some(image(5)));
        cache.keep(&stream(1), image(6));
        assert_eq!(cache.take(&stream(1)), Some(image(6)));
    }

    #[test]
    fn forget_drops_the_image() {
        let cache = ImageCache::new(4);
        cache.keep(&stream(1), image(5));
        cache.forget(&stream(1));
        cache.forget(&stream(2));
        assert_eq!(cache.take(&stream(1)), None);
    }

    #[test]
    fn eviction_is_bounded_and_spares_recently_used_entries() {
        let cache = ImageCache::new(3);
        for n in 1..=3 {
            cache.keep(&stream(n), image(u64::from(n)));
        }
        // Use 1 and 3: 2 is the one not referenced since the hand last passed.
        for n in [1, 3] {
            let hit = cache.take(&stream(n)).expect("cached");
            cache.keep(&stream(n), hit);
        }
        cache.keep(&stream(4), image(4));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.take(&stream(2)), None, "2 was evicted");
        for n in [1, 3, 4] {
            assert!(cache.take(&stream(n)).is_some(), "{n} is still cached");
        }
        // Many more streams than slots: the size stays bounded.
        for n in 10..1_000 {
            cache.keep(&stream(n), image(1));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.capacity(), 3);
    }
}
