//! The memory store's write side: appends, checked and stored under one lock, and
//! per-stream reads.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_core::personal::Subject;
use cqrs_core::store::check_append;
use cqrs_core::store::personal_data::{self, SealedBatch, StoredKey};
use cqrs_core::{
    ExpectedVersion, Metadata, NewEvent, StoreError, StoredEvent, StreamId, StreamStore,
};

use crate::store::{lock, position_of, Log, MemoryStore};

#[async_trait]
impl StreamStore for MemoryStore {
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
        let mut events = events;
        if self.inner.inline.is_empty() {
            let mut log = self.write_log();
            let sealed = self.seal(&mut events)?;
            let stored = prepare(&log, stream, expected, events)?;
            self.keep_keys(&sealed);
            let stored = self.commit(&mut log, stored);
            return Ok(sealed.plain(stored));
        }
        // With inline projections, appends take turns at the gate: the checks made under
        // the read lock stay true while the projections run, and no reader sees the
        // events before the projections have taken them in.
        let _turn = self.inner.inline.gate().await;
        let sealed = self.seal(&mut events)?;
        let stored = prepare(&self.read_log(), stream, expected, events)?;
        let plain = sealed.plain(stored.clone());
        self.inner.inline.run(stream, &plain).await?;
        self.keep_keys(&sealed);
        self.commit(&mut self.write_log(), stored);
        Ok(plain)
    }

    async fn delete_stream(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: Metadata,
    ) -> Result<Arc<StoredEvent>, StoreError> {
        // Inline projections are not run for a tombstone, but appends that run them hold
        // the gate across their checks: taking it keeps this delete out of their way.
        let _turn = self.inline_turn().await;
        let mut log = self.write_log();
        let stored = prepare(&log, stream, expected, vec![NewEvent::tombstone(metadata)])?;
        let tombstone = self.commit(&mut log, stored).pop();
        log.deleted.insert(stream.clone());
        tombstone.ok_or_else(|| StoreError::Backend("the tombstone was not stored".into()))
    }

    async fn purge_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let removed: Vec<Arc<StoredEvent>> = {
            let mut log = self.write_log();
            log.check_not_archived(stream)?;
            if !log.deleted.contains(stream) {
                return Err(StoreError::NotDeleted {
                    stream: stream.clone(),
                });
            }
            let Some(events) = log.streams.get_mut(stream) else {
                return Ok(0);
            };
            let tombstone = events.pop();
            let removed = std::mem::replace(events, tombstone.into_iter().collect());
            log.remove(&removed);
            removed
        };
        self.forget_snapshot(stream);
        self.forget_dead_letters(&removed.iter().map(|e| e.event_id).collect());
        Ok(removed.len() as u64)
    }

    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        self.read_log().check_not_archived(stream)?;
        let snapshot = self.snapshot_version(stream);
        if snapshot.is_none_or(|v| v.saturating_add(1) < before) {
            return Err(StoreError::NotCovered {
                stream: stream.clone(),
                before,
                snapshot,
            });
        }
        let removed: Vec<Arc<StoredEvent>> = {
            let mut log = self.write_log();
            log.check_not_archived(stream)?;
            let Some(events) = log.streams.get_mut(stream) else {
                return Ok(0);
            };
            // The last event always stays: a stream that has events keeps one.
            let cut = events
                .partition_point(|e| e.stream_version < before)
                .min(events.len().saturating_sub(1));
            let removed: Vec<_> = events.drain(..cut).collect();
            if let Some(first) = events
                .first()
                .map(|e| e.stream_version)
                .filter(|_| !removed.is_empty())
            {
                let kept = log.truncated.entry(stream.clone()).or_insert(first);
                *kept = (*kept).max(first);
            }
            log.remove(&removed);
            removed
        };
        self.forget_dead_letters(&removed.iter().map(|e| e.event_id).collect());
        Ok(removed.len() as u64)
    }

    async fn archive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        // As a delete: out of the way of appends that run inline projections.
        let _turn = self.inline_turn().await;
        let mut log = self.write_log();
        if log.archived.contains_key(stream) {
            return Ok(0);
        }
        let Some(events) = log.streams.remove(stream) else {
            return Ok(0);
        };
        let moved = events.len() as u64;
        log.archived.insert(stream.clone(), events);
        Ok(moved)
    }

    async fn unarchive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let mut log = self.write_log();
        let Some(events) = log.archived.remove(stream) else {
            return Ok(0);
        };
        let moved = events.len() as u64;
        log.streams.insert(stream.clone(), events);
        Ok(moved)
    }

    async fn read_archived_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let events = {
            let log = self.read_log();
            let Some(events) = log.archived.get(stream) else {
                return Ok(Vec::new());
            };
            let start = events.partition_point(|e| e.stream_version < from_version);
            events[start..].iter().take(max_count).cloned().collect()
        };
        self.open(events, false)
    }

    async fn forget_subject(&self, subject: &Subject) -> Result<Vec<StreamId>, StoreError> {
        let streams = {
            let log = self.write_log();
            lock(&self.inner.keys)
                .subjects
                .insert(subject.clone(), StoredKey::Forgotten);
            let archived = log.archived.values().flatten();
            let mut streams: Vec<StreamId> = Vec::new();
            for event in log.all.iter().flatten().chain(archived) {
                if personal_data::holds_subject(event, subject) && !streams.contains(&event.stream)
                {
                    streams.push(event.stream.clone());
                }
            }
            streams
        };
        for stream in &streams {
            self.forget_snapshot(stream);
        }
        Ok(streams)
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let events = {
            let log = self.read_log();
            log.check_not_archived(stream)?;
            let Some(events) = log.streams.get(stream) else {
                return Ok(Vec::new());
            };
            if let Some(&before) = log.truncated.get(stream) {
                if from_version < before {
                    return Err(StoreError::Truncated {
                        stream: stream.clone(),
                        before,
                    });
                }
            }
            // By version, not by index: a purged or truncated stream has lost its first
            // ones.
            let start = events.partition_point(|e| e.stream_version < from_version);
            events[start..].iter().take(max_count).cloned().collect()
        };
        self.open(events, false)
    }

    async fn read_stream_backwards(
        &self,
        stream: &StreamId,
        to_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        let events = {
            let log = self.read_log();
            log.check_not_archived(stream)?;
            let Some(events) = log.streams.get(stream) else {
                return Ok(Vec::new());
            };
            let end = events.partition_point(|e| e.stream_version <= to_version);
            events[..end]
                .iter()
                .rev()
                .take(max_count)
                .cloned()
                .collect()
        };
        self.open(events, false)
    }
}

impl Log {
    /// Takes `removed` out of the log: their slots emptied (the others keep their
    /// positions) and their ids forgotten, as the database's unique index forgets a
    /// removed row's id.
    fn remove(&mut self, removed: &[Arc<StoredEvent>]) {
        for event in removed {
            let index = usize::try_from(event.position.sequence()).unwrap_or(usize::MAX);
            if let Some(slot) = index.checked_sub(1).and_then(|i| self.all.get_mut(i)) {
                *slot = None;
            }
            self.event_ids.remove(&event.event_id);
        }
    }
}

impl MemoryStore {
    /// Seals the personal values of `events` with their subjects' keys, making those
    /// that are missing (kept by [`keep_keys`](Self::keep_keys) once the append stands).
    fn seal(&self, events: &mut [NewEvent]) -> Result<SealedBatch, StoreError> {
        if events.iter().all(|e| e.personal().is_empty()) {
            return Ok(SealedBatch::default());
        }
        let keys = lock(&self.inner.keys);
        let found: HashMap<Subject, StoredKey> = personal_data::subjects_to_seal(events)
            .into_iter()
            .filter_map(|s| Some((s.clone(), keys.subjects.get(&s)?.clone())))
            .collect();
        personal_data::seal_batch(Some(&keys.kek), events, &found)
    }

    /// Keeps the keys an append made. A subject forgotten meanwhile stays forgotten: the
    /// append's fields about it are then unreadable, as forgotten fields are.
    fn keep_keys(&self, sealed: &SealedBatch) {
        if sealed.new_keys().is_empty() {
            return;
        }
        let mut keys = lock(&self.inner.keys);
        for (subject, wrapped) in sealed.new_keys() {
            keys.subjects
                .entry(subject.clone())
                .or_insert_with(|| StoredKey::Wrapped(wrapped.clone()));
        }
    }

    /// A turn at the inline projections' gate, when there are any: appends that run them
    /// hold it across their checks, so a change to a stream made under it (a delete, an
    /// archiving) cannot slip between an append's checks and its commit.
    async fn inline_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if self.inner.inline.is_empty() {
            None
        } else {
            Some(self.inner.inline.gate().await)
        }
    }

    /// Stores events checked by [`prepare`] (under the same lock, or under the inline
    /// projections' gate) and wakes waiting readers.
    fn commit(&self, log: &mut Log, stored: Vec<Arc<StoredEvent>>) -> Vec<Arc<StoredEvent>> {
        let Some(first) = stored.first() else {
            return stored;
        };
        log.event_ids.extend(stored.iter().map(|e| e.event_id));
        log.all.extend(stored.iter().cloned().map(Some));
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
    let actual = log
        .streams
        .get(stream)
        .and_then(|events| events.last())
        .map_or(0, |e| e.stream_version);
    log.check_not_archived(stream)?;
    if log.deleted.contains(stream) {
        return Err(StoreError::StreamDeleted {
            stream: stream.clone(),
            version: actual,
        });
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cqrs_core::personal::{PersonalValue, Subject};
    use cqrs_core::{
        CheckpointStore, ExpectedVersion, Metadata, NewEvent, Snapshot, SnapshotStore, StoreError,
        StoredEvent, StreamId, StreamStore, SubscriptionName,
    };
    use serde_json::json;

    use crate::MemoryStore;

    /// Found nowhere in the store once its subject is forgotten.
    const MARKER: &str = "Grace-Hopper-7f3a";

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn joined(subject: &str, name: &str) -> NewEvent {
        NewEvent::new(
            "Joined",
            1,
            json!({ "member_id": subject }),
            Metadata::default(),
        )
        .expect("valid")
        .with_personal(PersonalValue::new(
            Subject::new(subject).expect("valid"),
            "name",
            json!(name),
            json!("[forgotten]"),
        ))
    }

    async fn append(store: &MemoryStore, stream: &StreamId, event: NewEvent) -> Arc<StoredEvent> {
        let mut stored = store
            .append(stream, ExpectedVersion::Any, vec![event])
            .await
            .expect("append");
        stored.pop().expect("one event")
    }

    /// Everything the store keeps of events, snapshots and dead letters, as text.
    fn everything(store: &MemoryStore) -> String {
        let log = store.read_log();
        let events = log
            .all
            .iter()
            .flatten()
            .chain(log.archived.values().flatten());
        let mut text: Vec<String> = events.map(|e| format!("{e:?}")).collect();
        drop(log);
        let snapshots = store.inner.snapshots.lock().expect("snapshots");
        text.extend(snapshots.values().map(|s| format!("{s:?}")));
        drop(snapshots);
        let letters = store
            .inner
            .subscriptions
            .dead_letters
            .lock()
            .expect("letters");
        text.extend(letters.values().flatten().map(|l| format!("{:?}", l.event)));
        text.join("\n")
    }

    #[test]
    fn personal_values_are_kept_sealed_and_gone_once_forgotten() {
        block_on(async {
            let store = MemoryStore::new();
            let stream = StreamId::new("member", "m-1").expect("valid");
            let returned = append(&store, &stream, joined("m-1", MARKER)).await;
            assert_eq!(
                returned.data["name"], MARKER,
                "the append hands back plaintext"
            );
            let snapshot = Snapshot {
                stream_version: 1,
                schema_version: 1,
                state: json!({ "name": MARKER }),
            };
            store.save_snapshot(&stream, snapshot).await.expect("save");
            let letters = SubscriptionName::new("members").expect("valid");
            store
                .park(&letters, &returned, "failed")
                .await
                .expect("park");
            // Sealed where it is kept: only the snapshot, state derived from it, holds it.
            let kept = everything(&store);
            assert_eq!(kept.matches(MARKER).count(), 1, "{kept}");

            let subject = Subject::new("m-1").expect("valid");
            assert_eq!(
                store.forget_subject(&subject).await.expect("forget"),
                std::slice::from_ref(&stream)
            );
            let kept = everything(&store);
            assert!(!kept.contains(MARKER), "{kept}");
            let read = store.read_stream(&stream, 1, 10).await.expect("read");
            assert_eq!(read[0].data["name"], "[forgotten]");
            let parked = store.parked(&letters).await.expect("parked");
            assert_eq!(parked[0].event.data["name"], "[forgotten]");
            let again = store
                .append(&stream, ExpectedVersion::Any, vec![joined("m-1", "again")])
                .await;
            assert!(
                matches!(&again, Err(StoreError::Forgotten { subject: s }) if *s == subject),
                "{again:?}"
            );
        });
    }

    #[test]
    fn a_changed_or_moved_ciphertext_is_a_typed_error_naming_the_event() {
        block_on(async {
            let store = MemoryStore::new();
            let (a, b) = (
                StreamId::new("member", "a").expect("valid"),
                StreamId::new("member", "b").expect("valid"),
            );
            append(&store, &a, joined("same", "first")).await;
            append(&store, &b, joined("same", "second")).await;
            let edit = |stream: &StreamId, edit: &dyn Fn(&mut serde_json::Value)| {
                let mut log = store.write_log();
                let events = log.streams.get_mut(stream).expect("stream");
                let mut event = (*events[0]).clone();
                edit(&mut event.data);
                let event = Arc::new(event);
                events[0] = Arc::clone(&event);
                let slot = event.position.sequence() as usize - 1;
                log.all[slot] = Some(event);
            };
            let sealed_b = store.read_log().streams[&b][0].data["$personal"].clone();
            edit(&a, &|data| data["$personal"] = sealed_b.clone());
            let moved = store.read_stream(&a, 1, 10).await;
            assert!(
                matches!(&moved, Err(StoreError::Corrupt { stream, stream_version: 1, .. }) if *stream == a),
                "{moved:?}"
            );
            edit(&b, &|data| {
                let sealed = data["$personal"][0]["sealed"]
                    .as_str()
                    .expect("sealed")
                    .to_owned();
                let flipped = if sealed.starts_with('A') { "B" } else { "A" };
                data["$personal"][0]["sealed"] = json!(format!("{flipped}{}", &sealed[1..]));
            });
            let changed = store.read_stream(&b, 1, 10).await;
            assert!(
                matches!(&changed, Err(StoreError::Corrupt { stream, stream_version: 1, .. }) if *stream == b),
                "{changed:?}"
            );
        });
    }
}
