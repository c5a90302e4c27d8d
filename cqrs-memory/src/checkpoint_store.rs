//! What subscriptions keep in the memory store: checkpoints, leases, dead letters,
//! operators' requests and the runners' records.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_core::{
    CheckpointStore, DeadLetter, Discarded, Lease, LeaseHolder, ParkedCount, PendingRequest,
    Position, RecordedState, SavedCheckpoint, StoreError, StoredEvent, SubscriptionName,
    SubscriptionRecord, SubscriptionRequest,
};
use uuid::Uuid;

use crate::store::lock;
use crate::MemoryStore;

/// The subscriptions' state of one store.
#[derive(Default)]
pub(crate) struct Subscriptions {
    checkpoints: Mutex<HashMap<SubscriptionName, (Position, DateTime<Utc>)>>,
    /// Names whose lease is held, with since when: a lease is an entry here, removed
    /// when dropped.
    leases: Leases,
    /// Parked and discarded, in global order per subscription.
    pub(crate) dead_letters: Mutex<HashMap<SubscriptionName, Vec<DeadLetter>>>,
    /// Operators' requests not yet applied, oldest first per subscription.
    requests: Mutex<HashMap<SubscriptionName, Vec<PendingRequest>>>,
    /// The runners' records, by checkpoint key.
    records: Mutex<HashMap<SubscriptionName, SubscriptionRecord>>,
}

type Leases = Arc<Mutex<HashMap<SubscriptionName, DateTime<Utc>>>>;

/// A lease on a subscription of a [`MemoryStore`]: held until dropped.
#[derive(Debug)]
struct MemoryLease {
    name: SubscriptionName,
    leases: Leases,
}

#[async_trait]
impl Lease for MemoryLease {
    /// A memory lease cannot be taken away: it lives in the same process as its holder.
    async fn is_held(&self) -> bool {
        true
    }
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        self.leases
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.name);
    }
}

#[async_trait]
impl CheckpointStore for MemoryStore {
    async fn load_checkpoint(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Position>, StoreError> {
        Ok(lock(&self.inner.subscriptions.checkpoints)
            .get(name)
            .map(|(position, _)| *position))
    }

    async fn save_checkpoint(
        &self,
        name: &SubscriptionName,
        position: Position,
    ) -> Result<(), StoreError> {
        lock(&self.inner.subscriptions.checkpoints).insert(name.clone(), (position, Utc::now()));
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<SavedCheckpoint>, StoreError> {
        let mut saved: Vec<_> = lock(&self.inner.subscriptions.checkpoints)
            .iter()
            .map(|(name, (position, at))| SavedCheckpoint::new(name.clone(), *position, *at))
            .collect();
        saved.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(saved)
    }

    async fn acquire_lease(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Box<dyn Lease>>, StoreError> {
        let leases = &self.inner.subscriptions.leases;
        {
            let mut held = lock(leases);
            if held.contains_key(name) {
                return Ok(None);
            }
            held.insert(name.clone(), Utc::now());
        }
        Ok(Some(Box::new(MemoryLease {
            name: name.clone(),
            leases: Arc::clone(leases),
        })))
    }

    async fn park(
        &self,
        name: &SubscriptionName,
        event: &StoredEvent,
        error: &str,
    ) -> Result<(), StoreError> {
        // The log's own copy when it has the event: sealed, as it is stored, and never a
        // plaintext copy of personal data that forgetting its subject would leave behind.
        let stored = self.stored_copy(event);
        let letter = DeadLetter {
            event: stored.unwrap_or_else(|| Arc::new(event.clone())),
            error: error.to_owned(),
            parked_at: chrono::Utc::now(),
            discarded: None,
        };
        let mut dead_letters = lock(&self.inner.subscriptions.dead_letters);
        let parked = dead_letters.entry(name.clone()).or_default();
        match parked
            .iter_mut()
            .find(|p| p.event.event_id == event.event_id)
        {
            Some(existing) => *existing = letter,
            None => {
                parked.push(letter);
                parked.sort_by_key(|p| p.event.position);
            }
        }
        Ok(())
    }

    async fn parked(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError> {
        self.letters(name, false)
    }

    async fn discard(
        &self,
        name: &SubscriptionName,
        event_id: Uuid,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let mut dead_letters = lock(&self.inner.subscriptions.dead_letters);
        let letter = dead_letters.get_mut(name).and_then(|letters| {
            letters
                .iter_mut()
                .find(|l| l.event.event_id == event_id && l.discarded.is_none())
        });
        let Some(letter) = letter else {
            return Ok(false);
        };
        letter.discarded = Some(Discarded {
            reason: reason.to_owned(),
            at: chrono::Utc::now(),
        });
        Ok(true)
    }

    async fn discarded(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError> {
        self.letters(name, true)
    }

    async fn resolve(&self, name: &SubscriptionName, event_id: Uuid) -> Result<bool, StoreError> {
        let mut dead_letters = lock(&self.inner.subscriptions.dead_letters);
        let Some(letters) = dead_letters.get_mut(name) else {
            return Ok(false);
        };
        let before = letters.len();
        letters.retain(|l| l.event.event_id != event_id || l.discarded.is_some());
        Ok(letters.len() < before)
    }

    async fn request(
        &self,
        name: &SubscriptionName,
        request: SubscriptionRequest,
    ) -> Result<PendingRequest, StoreError> {
        let pending = PendingRequest::new(Uuid::now_v7(), request, Utc::now());
        lock(&self.inner.subscriptions.requests)
            .entry(name.clone())
            .or_default()
            .push(pending.clone());
        Ok(pending)
    }

    async fn requests(&self, name: &SubscriptionName) -> Result<Vec<PendingRequest>, StoreError> {
        Ok(lock(&self.inner.subscriptions.requests)
            .get(name)
            .cloned()
            .unwrap_or_default())
    }

    async fn complete_request(
        &self,
        name: &SubscriptionName,
        id: Uuid,
    ) -> Result<bool, StoreError> {
        let mut requests = lock(&self.inner.subscriptions.requests);
        let Some(pending) = requests.get_mut(name) else {
            return Ok(false);
        };
        let before = pending.len();
        pending.retain(|p| p.id != id);
        Ok(pending.len() < before)
    }

    async fn record(&self, record: &SubscriptionRecord) -> Result<(), StoreError> {
        lock(&self.inner.subscriptions.records).insert(record.checkpoint.clone(), record.clone());
        Ok(())
    }

    async fn records(&self) -> Result<Vec<SubscriptionRecord>, StoreError> {
        let mut records: Vec<_> = lock(&self.inner.subscriptions.records)
            .values()
            .cloned()
            .collect();
        records.sort_by(|a, b| a.checkpoint.cmp(&b.checkpoint));
        Ok(records)
    }

    /// The holder is always this process: a memory store is not shared with others.
    async fn lease_holder(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<LeaseHolder>, StoreError> {
        Ok(lock(&self.inner.subscriptions.leases)
            .get(name)
            .map(|since| {
                LeaseHolder::new(
                    format!("this process (pid {})", std::process::id()),
                    Some(*since),
                )
            }))
    }
}

impl MemoryStore {
    /// Per subscription with any, its dead letters that are not discarded, by name.
    pub(crate) fn parked_counts(&self) -> Vec<ParkedCount> {
        let dead_letters = lock(&self.inner.subscriptions.dead_letters);
        let mut counts: Vec<_> = dead_letters
            .iter()
            .map(|(name, letters)| {
                let parked = letters.iter().filter(|l| l.discarded.is_none()).count();
                ParkedCount::new(name.as_str(), parked as u64)
            })
            .filter(|count| count.letters > 0)
            .collect();
        counts.sort_by(|a, b| a.subscription.cmp(&b.subscription));
        counts
    }

    /// Drops every subscription's dead letters of these events (purged events leave no
    /// copy behind).
    pub(crate) fn forget_dead_letters(&self, events: &std::collections::HashSet<Uuid>) {
        for letters in lock(&self.inner.subscriptions.dead_letters).values_mut() {
            letters.retain(|l| !events.contains(&l.event.event_id));
        }
    }

    /// The records of runners that stopped on an error, by checkpoint.
    pub(crate) fn failed_records(&self) -> Vec<SubscriptionRecord> {
        let mut failed: Vec<_> = lock(&self.inner.subscriptions.records)
            .values()
            .filter(|r| matches!(r.state, RecordedState::Failed { .. }))
            .cloned()
            .collect();
        failed.sort_by(|a, b| a.checkpoint.cmp(&b.checkpoint));
        failed
    }

    /// The dead letters of `name`, discarded or not.
    /// The letters of `name`, discarded or not, their events opened as reads open them.
    fn letters(
        &self,
        name: &SubscriptionName,
        discarded: bool,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let mut letters: Vec<DeadLetter> = lock(&self.inner.subscriptions.dead_letters)
            .get(name)
            .map(|letters| {
                letters
                    .iter()
                    .filter(|l| l.discarded.is_some() == discarded)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let events = letters.iter().map(|l| Arc::clone(&l.event)).collect();
        for (letter, event) in letters.iter_mut().zip(self.open(events, false)?) {
            letter.event = event;
        }
        Ok(letters)
    }

    /// The log's copy of `event`, if it holds it.
    fn stored_copy(&self, event: &StoredEvent) -> Option<Arc<StoredEvent>> {
        let index = usize::try_from(event.position.sequence())
            .ok()?
            .checked_sub(1)?;
        let log = self.read_log();
        let stored = log.all.get(index)?.as_ref()?;
        (stored.event_id == event.event_id).then(|| Arc::clone(stored))
    }
}
