//! What the Kafka bus tests share (as cqrs-nats's do): an event type, a read model that records what it saw, and
//! helpers to append events and to run a relay and a consumer.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cqrs_core::bus::Relay;
use cqrs_core::subscription::{Project, SubscriptionHandle};
use cqrs_core::{
    codec, DomainEvent, Envelope, ExpectedVersion, Metadata, RetryPolicy, StreamId, StreamStore,
    Subscription,
};
use cqrs_kafka::{EventTopic, KafkaConsumer, KafkaConsumerHandle, KafkaPublisher};
use cqrs_memory::MemoryStore;
use serde::{Deserialize, Serialize};

pub const WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, Deserialize, DomainEvent)]
pub enum Ledger {
    Booked { amount: u64 },
}

/// What the ledger view saw: per event id how often, per stream the versions in order.
#[derive(Debug, Default)]
pub struct Seen {
    pub applied: HashMap<uuid::Uuid, u32>,
    pub versions: HashMap<StreamId, Vec<u64>>,
    pub resets: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("amount {0} is poison")]
pub struct Poison(pub u64);

/// A view of the ledger that fails on its `poison` amount until `cured`.
#[derive(Clone, Default, cqrs_core::Projection)]
#[projection(event = Ledger, error = Poison, name = "ledger_view")]
pub struct LedgerView {
    pub seen: Arc<Mutex<Seen>>,
    pub poison: Option<u64>,
    /// Set when the fix is deployed: the poison amount is handled from then on.
    pub cured: Arc<AtomicBool>,
}

impl LedgerView {
    async fn handle(&self, event: &Envelope<Ledger>) -> Result<(), Poison> {
        let Ledger::Booked { amount } = event.data;
        if self.poison == Some(amount) && !self.cured.load(Ordering::SeqCst) {
            return Err(Poison(amount));
        }
        let mut seen = self.seen.lock().expect("lock");
        *seen.applied.entry(event.event_id).or_default() += 1;
        seen.versions
            .entry(event.stream.clone())
            .or_default()
            .push(event.stream_version);
        Ok(())
    }

    async fn reset(&self) -> Result<(), Poison> {
        let mut seen = self.seen.lock().expect("lock");
        seen.applied.clear();
        seen.versions.clear();
        seen.resets += 1;
        Ok(())
    }

    pub fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.seen.lock().expect("lock"))
    }

    /// Asserts that the view applied each of `events` exactly once, and every stream's
    /// versions in order.
    pub fn assert_exactly_once(&self, events: &[uuid::Uuid]) {
        self.seen(|seen| {
            for id in events {
                assert_eq!(seen.applied.get(id), Some(&1), "event {id}");
            }
            assert_eq!(seen.applied.len(), events.len(), "no other event");
            for (stream, versions) in &seen.versions {
                assert!(
                    versions.windows(2).all(|w| w[0] < w[1]),
                    "{stream}: {versions:?}"
                );
            }
        });
    }
}

/// Appends `count` events to `stream`; returns their ids.
pub async fn book(
    store: &MemoryStore,
    stream: &StreamId,
    amounts: impl IntoIterator<Item = u64>,
) -> Vec<uuid::Uuid> {
    let events: Vec<_> = amounts
        .into_iter()
        .map(|amount| {
            codec::encode(&Ledger::Booked { amount }, Metadata::default()).expect("encode")
        })
        .collect();
    store
        .append(stream, ExpectedVersion::Any, events)
        .await
        .expect("append")
        .iter()
        .map(|e| e.event_id)
        .collect()
}

pub fn stream(id: &str) -> StreamId {
    StreamId::new("ledger", id).expect("valid")
}

pub fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(5),
    }
}

pub fn topic() -> EventTopic {
    EventTopic::new("ledger")
        .expect("valid")
        .partitions(3)
        .expect("valid")
}

/// A relay of `store` into `topic` on `bootstrap`, started.
pub fn relay(store: &MemoryStore, bootstrap: &str, topic: EventTopic) -> SubscriptionHandle {
    let publisher = KafkaPublisher::new(bootstrap, topic).expect("producer");
    Subscription::new(
        store.clone(),
        Relay::new("ledger_outbox", publisher, store.clone()).expect("valid"),
    )
    .retry(quick())
    .idle_wait(Duration::from_millis(50))
    .start()
}

/// A group member of `topic` feeding `view`, its dead letters in `dead_letters`, started.
pub async fn consumer(
    bootstrap: &str,
    topic: EventTopic,
    view: &LedgerView,
    dead_letters: &MemoryStore,
) -> KafkaConsumerHandle {
    KafkaConsumer::new(
        bootstrap,
        topic,
        Project::new(view.clone(), dead_letters.clone()).expect("valid"),
    )
    .retry(quick())
    .start()
    .await
    .expect("consumer starts")
}

/// The operator's retry of a bus consumer's dead letter `poisoned`, through the store
/// the consumer keeps them in, as `cqrs dead-letters retry` does: while `view` still
/// fails it stays parked with its error renewed; after the fix it takes effect once and
/// leaves the dead letters (a retry of all of them is asked, so any other letter is
/// tried too, and stays parked if it fails again).
pub async fn retried_after_the_fix(dead: &MemoryStore, view: &LedgerView, poisoned: uuid::Uuid) {
    use cqrs_core::{CheckpointStore, SubscriptionRequest};
    let name = cqrs_core::SubscriptionName::new("ledger_view").expect("valid");
    let before = letter_until(dead, poisoned, "parked", |l| l.is_some())
        .await
        .expect("parked");
    dead.request(&name, SubscriptionRequest::RetryDeadLetter(poisoned))
        .await
        .expect("request");
    let again = letter_until(dead, poisoned, "parked again", |l| {
        l.is_some_and(|l| l.parked_at > before.parked_at)
    })
    .await
    .expect("still parked");
    assert!(again.error.contains("is poison"), "{}", again.error);
    assert_eq!(view.seen(|s| s.applied.get(&poisoned).copied()), None);

    view.cured.store(true, Ordering::SeqCst);
    dead.request(&name, SubscriptionRequest::RetryDeadLetters)
        .await
        .expect("request");
    letter_until(dead, poisoned, "handled: it left the dead letters", |l| {
        l.is_none()
    })
    .await;
    assert_eq!(view.seen(|s| s.applied.get(&poisoned).copied()), Some(1));
    assert!(dead.requests(&name).await.expect("requests").is_empty());
}

/// The dead letter of `event` once `done` says so; panics after [`WAIT`]. A consumer
/// claims a request, then retries: the test waits for the retry's effect.
async fn letter_until(
    dead: &MemoryStore,
    event: uuid::Uuid,
    what: &str,
    done: impl Fn(Option<&cqrs_core::DeadLetter>) -> bool,
) -> Option<cqrs_core::DeadLetter> {
    use cqrs_core::CheckpointStore;
    let name = cqrs_core::SubscriptionName::new("ledger_view").expect("valid");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let parked = dead.parked(&name).await.expect("parked");
        let letter = parked.iter().find(|l| l.event.event_id == event);
        if done(letter) {
            return letter.cloned();
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
