//! The relay: a subscription consumer that publishes the log to a bus.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Instrument;

use super::{BusMessage, ContentMode, HeaderNames};
use crate::ident::IdentifierError;
use crate::observe::trace;
use crate::store::BoxError;
use crate::subscription::{Consumer, DeliveryError, Identity};
use crate::{CheckpointStore, EventFilter, Position, StoredEvent, SubscriptionName};

/// The broker's acknowledgement of one published message: resolves once the broker has
/// stored it (or refused it).
pub type Acknowledgement = BoxFuture<'static, Result<(), PublishError>>;

/// A broker's producer, as a [`Relay`] uses it.
///
/// `publish` hands a message to the client and returns without waiting for the broker:
/// the relay keeps several acknowledgements in flight and awaits them in order, so
/// publishing is pipelined rather than one round trip per event.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// How this broker's CloudEvents binding names headers.
    fn header_names(&self) -> HeaderNames;

    /// Creates or updates what the relay publishes into (a JetStream stream, a Kafka
    /// topic) from the publisher's configuration. The relay calls it before its first
    /// batch, and again after a failure.
    async fn prepare(&self) -> Result<(), PublishError>;

    /// Sends `message`, keyed by its stream so that the stream's events stay in order on
    /// the bus, with its id as the broker's de-duplication id.
    async fn publish(&self, message: BusMessage) -> Result<Acknowledgement, PublishError>;
}

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The broker could not be reached, or did not acknowledge in time: the relay retries
    /// the batch with backoff, without limit, and publishes again (the copies are
    /// de-duplicated by message id).
    #[error("bus unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// The broker refused this message (too large, say): the event's failure, which the
    /// subscription's failure policy stops on or parks.
    #[error("message refused by the bus: {0}")]
    Refused(#[source] BoxError),
}

/// Publishes every event of the log that its filter lets through, in the global order, to
/// a bus: the transactional outbox, read from the log.
///
/// Run it as any consumer, with [`Subscription::new`](crate::Subscription::new): the
/// runner keeps its lease (one relay active across processes), its checkpoint, its
/// retries and its status. For each batch it publishes every message, at most
/// [`max_in_flight`](Self::max_in_flight) awaiting their acknowledgement at once, then
/// awaits the rest, and only then saves the checkpoint at the batch's end. A crash or an
/// outage before that publishes the batch again: the broker drops the copies it still
/// remembers (its de-duplication window), so keep the window longer than an outage you
/// want to ride out without duplicates reaching consumers.
///
/// A [rebuild](crate::subscription::SubscriptionHandle::rebuild) (or a new name)
/// publishes the whole log again.
///
/// ```no_run
/// # use cqrs_core::bus::{Publisher, Relay};
/// # use cqrs_core::{EventStore, CheckpointStore, Subscription};
/// # async fn demo(store: impl EventStore + CheckpointStore + Clone, bus: impl Publisher)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// let relay = Relay::new("outbox", bus, store.clone())?;
/// let running = Subscription::new(store, relay).start();
/// # Ok(()) }
/// ```
pub struct Relay<P> {
    publisher: P,
    checkpoints: Arc<dyn CheckpointStore>,
    identity: Identity,
    mode: ContentMode,
    in_flight: usize,
    /// Whether `prepare` succeeded since the last failure.
    prepared: AtomicBool,
}

impl<P: Publisher> Relay<P> {
    /// A relay named `name` (the key of its lease and checkpoint) that publishes every
    /// event through `publisher`, keeping its checkpoint in `checkpoints` (the event
    /// store's, usually). Refuses a name that is not a valid identifier.
    pub fn new(
        name: &str,
        publisher: P,
        checkpoints: impl CheckpointStore,
    ) -> Result<Self, IdentifierError> {
        Ok(Self {
            identity: Identity::new(SubscriptionName::new(name)?, 1, EventFilter::all())?,
            publisher,
            checkpoints: Arc::new(checkpoints),
            mode: ContentMode::Binary,
            in_flight: 256,
            prepared: AtomicBool::new(false),
        })
    }

    /// Publishes only the events `filter` lets through (by stream type, by event type).
    pub fn filter(mut self, filter: EventFilter) -> Self {
        self.identity = self.identity.with_filter(filter);
        self
    }

    /// How messages carry their CloudEvent: [`ContentMode::Binary`] (the default) or
    /// [`ContentMode::Structured`].
    pub fn content_mode(mut self, mode: ContentMode) -> Self {
        self.mode = mode;
        self
    }

    /// The most messages awaiting the broker's acknowledgement at once (at least 1;
    /// 256 by default).
    pub fn max_in_flight(mut self, messages: usize) -> Self {
        self.in_flight = messages.max(1);
        self
    }

    /// The publisher it publishes through.
    pub fn publisher(&self) -> &P {
        &self.publisher
    }
}

/// An acknowledgement being awaited, with its event (for the error).
type Awaited<'a> = BoxFuture<'a, (&'a Arc<StoredEvent>, Result<(), PublishError>)>;

/// What a failed publish means for the batch.
fn failed(event: &Arc<StoredEvent>, error: PublishError) -> DeliveryError {
    match error {
        PublishError::Refused(_) => DeliveryError::Event {
            event: Arc::clone(event),
            source: Box::new(error),
        },
        other => DeliveryError::Downstream(Box::new(other)),
    }
}

#[async_trait]
impl<P: Publisher> Consumer for Relay<P> {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn checkpoints(&self) -> &dyn CheckpointStore {
        self.checkpoints.as_ref()
    }

    async fn deliver(
        &self,
        _from: Position,
        events: &[Arc<StoredEvent>],
        to: Position,
    ) -> Result<(), DeliveryError> {
        let published = self.publish(events).await;
        if published.is_err() {
            // The bus may have lost what it publishes into: prepare again next time.
            self.prepared.store(false, Ordering::Relaxed);
        }
        published?;
        self.checkpoints
            .save_checkpoint(self.identity.checkpoint(), to)
            .await?;
        Ok(())
    }

    /// Moves the checkpoint to the start: everything is published again.
    async fn reset(&self) -> Result<(), DeliveryError> {
        self.checkpoints
            .save_checkpoint(self.identity.checkpoint(), Position::START)
            .await?;
        Ok(())
    }
}

impl<P: Publisher> Relay<P> {
    /// Publishes `events` and awaits every acknowledgement.
    async fn publish(&self, events: &[Arc<StoredEvent>]) -> Result<(), DeliveryError> {
        if !self.prepared.load(Ordering::Relaxed) {
            self.publisher
                .prepare()
                .await
                .map_err(|e| DeliveryError::Downstream(Box::new(e)))?;
            self.prepared.store(true, Ordering::Relaxed);
        }
        let names = self.publisher.header_names();
        // Acknowledgements in publish order, each with its event for the error.
        let mut pending: FuturesOrdered<Awaited<'_>> = FuturesOrdered::new();
        for event in events {
            if pending.len() >= self.in_flight {
                if let Some((event, acked)) = pending.next().await {
                    acked.map_err(|e| failed(event, e))?;
                }
            }
            // One span per event, in the event's trace, open until the broker acknowledges.
            let span = trace::publish_span(self.identity.name().as_str(), event);
            let message = BusMessage::encode(event, self.mode, names);
            let ack = self
                .publisher
                .publish(message)
                .instrument(span.clone())
                .await
                .map_err(|e| failed(event, e))?;
            pending.push_back(Box::pin(async move { (event, ack.await) }.instrument(span)));
        }
        while let Some((event, acked)) = pending.next().await {
            acked.map_err(|e| failed(event, e))?;
        }
        Ok(())
    }
}

impl<P> std::fmt::Debug for Relay<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("identity", &self.identity)
            .field("mode", &self.mode)
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}
