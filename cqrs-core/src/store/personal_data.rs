//! What every store does with [personal data](crate::personal), so that each backend only
//! keeps the keys: seal an append's personal values with its subjects' keys (making the
//! keys it lacks), and open what it reads.

use std::collections::HashMap;
use std::sync::Arc;

use super::StoreError;
use crate::personal::{self, DataKey, KeyEncryptionKey, KeyState, Subject, PERSONAL_KEY};
use crate::{NewEvent, StoredEvent};

/// A subject's key as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredKey {
    /// Its data key, wrapped by the key-encryption key.
    Wrapped(Vec<u8>),
    /// Forgotten: its key was destroyed.
    Forgotten,
}

/// The distinct subjects of the personal values of `events`: whose keys an append needs.
pub fn subjects_to_seal(events: &[NewEvent]) -> Vec<Subject> {
    let mut subjects: Vec<Subject> = Vec::new();
    for value in events.iter().flat_map(NewEvent::personal) {
        if !subjects.contains(&value.subject) {
            subjects.push(value.subject.clone());
        }
    }
    subjects
}

/// An append's events sealed ([`seal_batch`]): the keys made for subjects that had none,
/// and each event's data in plaintext, for what the append hands back.
#[derive(Debug, Default)]
pub struct SealedBatch {
    new_keys: Vec<(Subject, Vec<u8>)>,
    plain: Vec<Option<serde_json::Value>>,
}

impl SealedBatch {
    /// The keys made for subjects that had none, wrapped: for the store to write with the
    /// events, atomically (a store that finds one written meanwhile by a racing append
    /// seals again with that one).
    pub fn new_keys(&self) -> &[(Subject, Vec<u8>)] {
        &self.new_keys
    }

    /// The stored events `stored` (of this batch, in order) as the append hands them back:
    /// in plaintext, a copy of each that holds personal data.
    pub fn plain(&self, stored: Vec<Arc<StoredEvent>>) -> Vec<Arc<StoredEvent>> {
        if self.plain.iter().all(Option::is_none) {
            return stored;
        }
        stored
            .into_iter()
            .zip(self.plain.iter().chain(std::iter::repeat(&None)))
            .map(|(event, plain)| match plain {
                None => event,
                Some(data) => Arc::new(StoredEvent {
                    data: data.clone(),
                    ..(*event).clone()
                }),
            })
            .collect()
    }
}

/// Seals the personal values of `events` into their data, with the keys of their
/// subjects, given what the store `found` of them: a forgotten subject is
/// [`StoreError::Forgotten`]; one with no key gets a new one, wrapped by `kek`. Without
/// personal values it does nothing (and needs no key-encryption key). Data that cannot
/// take them (not an object, or holding a field of the same name) is
/// [`StoreError::Personal`].
pub fn seal_batch(
    kek: Option<&dyn KeyEncryptionKey>,
    events: &mut [NewEvent],
    found: &HashMap<Subject, StoredKey>,
) -> Result<SealedBatch, StoreError> {
    let subjects = subjects_to_seal(events);
    if subjects.is_empty() {
        return Ok(SealedBatch::default());
    }
    let kek = kek.ok_or(StoreError::NoKeyEncryptionKey)?;
    let mut keys = HashMap::with_capacity(subjects.len());
    let mut new_keys = Vec::new();
    for subject in subjects {
        let key = match found.get(&subject) {
            Some(StoredKey::Forgotten) => return Err(StoreError::Forgotten { subject }),
            Some(StoredKey::Wrapped(wrapped)) => kek.unwrap(&subject, wrapped)?,
            None => {
                let key = DataKey::generate();
                new_keys.push((subject.clone(), kek.wrap(&subject, &key)?));
                key
            }
        };
        keys.insert(subject, key);
    }
    let mut plain = Vec::with_capacity(events.len());
    for event in events.iter_mut() {
        if event.personal().is_empty() {
            plain.push(None);
            continue;
        }
        let mut data = event.data().clone();
        if let serde_json::Value::Object(map) = &mut data {
            for value in event.personal() {
                map.insert(value.field.clone(), value.value.clone());
            }
        }
        event.seal(|subject| keys.get(subject))?;
        plain.push(Some(data));
    }
    Ok(SealedBatch { new_keys, plain })
}

/// Whether a stored event holds sealed personal fields (one map lookup).
pub fn is_sealed(event: &StoredEvent) -> bool {
    event.data.get(PERSONAL_KEY).is_some()
}

/// The distinct subjects whose keys opening `events` needs; empty (and cheap) when none
/// holds personal data. A block that does not read is [`StoreError::Corrupt`] naming the
/// event.
pub fn subjects_to_open(events: &[Arc<StoredEvent>]) -> Result<Vec<Subject>, StoreError> {
    let mut subjects: Vec<Subject> = Vec::new();
    for event in events.iter().filter(|e| is_sealed(e)) {
        for subject in personal::sealed_subjects(&event.data).map_err(|e| corrupt(event, e))? {
            if !subjects.contains(&subject) {
                subjects.push(subject);
            }
        }
    }
    Ok(subjects)
}

/// Opens the sealed personal fields of `events` with the keys the store `found` for their
/// subjects (a subject not found, or forgotten, reads as its placeholders: a key is never
/// missing while its subject's events exist, since it is written with the first of them).
///
/// An event that does not open (a ciphertext changed, or moved from another event) is
/// [`StoreError::Corrupt`] naming its stream and version, with the event as stored, so
/// that a subscription can park it; with `prefix`, the events before it are returned
/// instead when there are any (the next read, starting at it, fails), as a global read
/// does. A key that does not unwrap is [`StoreError::Personal`].
pub fn open_events(
    kek: Option<&dyn KeyEncryptionKey>,
    events: Vec<Arc<StoredEvent>>,
    found: &HashMap<Subject, StoredKey>,
    prefix: bool,
) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
    if !events.iter().any(|e| is_sealed(e)) {
        return Ok(events);
    }
    let kek = kek.ok_or(StoreError::NoKeyEncryptionKey)?;
    let mut keys: HashMap<&Subject, DataKey> = HashMap::new();
    for (subject, key) in found {
        if let StoredKey::Wrapped(wrapped) = key {
            keys.insert(subject, kek.unwrap(subject, wrapped)?);
        }
    }
    let mut opened = Vec::with_capacity(events.len());
    for event in events {
        let data = personal::open(event.event_id, &event.data, |subject| {
            keys.get(subject)
                .map_or(KeyState::Forgotten, KeyState::Present)
        });
        match data {
            Ok(None) => opened.push(event),
            Ok(Some(data)) => opened.push(Arc::new(StoredEvent {
                data,
                ..(*event).clone()
            })),
            Err(_) if prefix && !opened.is_empty() => return Ok(opened),
            Err(e) => return Err(corrupt(&event, e)),
        }
    }
    Ok(opened)
}

/// Whether any sealed field of `event` is about `subject`: which streams forgetting it
/// touches.
pub fn holds_subject(event: &StoredEvent, subject: &Subject) -> bool {
    is_sealed(event)
        && personal::sealed_subjects(&event.data).is_ok_and(|subjects| subjects.contains(subject))
}

fn corrupt(event: &Arc<StoredEvent>, error: personal::PersonalError) -> StoreError {
    StoreError::Corrupt {
        stream: event.stream.clone(),
        stream_version: event.stream_version,
        reason: format!("event type {:?}: {error}", event.event_type),
        event: Some(Arc::clone(event)),
    }
}
