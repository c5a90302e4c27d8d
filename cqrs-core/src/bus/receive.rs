//! What a bus consumer does with each message: the part every broker shares.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;

use super::message::decode;
use super::HeaderNames;
use crate::envelope::CloudEventError;
use crate::ident::IdentifierError;
use crate::subscription::{DeliveryError, Feed, Identity, Kind};
use crate::{
    CheckpointStore, Listener, Metadata, Position, RetryPolicy, StoreError, StoredEvent, StreamId,
};

/// One message as a broker's consumer received it.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// Where it came from (a subject, a topic and partition): kept with a foreign message
    /// in the dead letters.
    pub origin: &'a str,
    /// Its headers.
    pub headers: &'a [(String, String)],
    /// Its body.
    pub payload: &'a [u8],
    /// How many times the broker has delivered it, this time included (1 the first
    /// time): more than 1 after a consumer died before acknowledging it.
    pub delivered: u64,
}

/// How a bus consumer treats failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivePolicy {
    /// Attempts at a failing event in place, before it is parked. Retrying in place
    /// rather than asking the broker to redeliver later keeps the stream's order: no
    /// later event of the stream is handled while it waits.
    pub retry: RetryPolicy,
    /// Deliveries by the broker after which an event is parked at once, without another
    /// attempt: an event that killed its consumer that many times (or that no consumer
    /// acknowledged in time) would otherwise stop its partition for ever.
    pub delivery_limit: u64,
    /// The broker's header names.
    pub header_names: HeaderNames,
}

impl ReceivePolicy {
    /// 5 attempts (pauses from 100 ms) and a delivery limit of 5, with `header_names`.
    pub fn new(header_names: HeaderNames) -> Self {
        Self {
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: std::time::Duration::from_millis(100),
            },
            delivery_limit: 5,
            header_names,
        }
    }
}

/// What became of a message. Acknowledge it in every case: it took effect, or it is not
/// for this listener, or it is parked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settled {
    /// The listener handled it.
    Handled,
    /// Not an event the listener reads (its event or stream type is not listed).
    Skipped,
    /// Parked in the dead letters, with this error.
    Parked(String),
    /// Applied before (a redelivery, a republished copy): the consumer recognised it and
    /// applied nothing.
    AlreadyApplied,
}

/// What a bus consumer did so far: the figures its handle reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReceiveStatus {
    /// Events the listener handled.
    pub handled: u64,
    /// Messages it does not read (other event or stream types), and redeliveries the
    /// listener recognised as applied before.
    pub skipped: u64,
    /// Messages parked in the dead letters.
    pub parked: u64,
    /// The last failure of the bus or of the consumer's store, if any since the last
    /// message that went through.
    pub last_error: Option<String>,
}

impl ReceiveStatus {
    /// Counts a message that went through.
    pub fn settled(&mut self, settled: &Settled) {
        match settled {
            Settled::Handled => self.handled += 1,
            Settled::Parked(_) => self.parked += 1,
            Settled::Skipped | Settled::AlreadyApplied => self.skipped += 1,
        }
        self.last_error = None;
    }
}

/// A typed listener fed from a bus. Implemented by [`Feed`] (so by
/// [`Project`](crate::subscription::Project) and [`React`](crate::subscription::React)):
/// the consumer a subscription runs is the one a bus consumer runs.
#[async_trait]
pub trait Receive: Send + Sync + 'static {
    /// The listener's name, version and filter; the name keys its dead letters.
    fn identity(&self) -> &Identity;

    /// Handles one message: decodes it (either content mode), hands it to the listener if
    /// it reads it, retries a failure in place as `policy` says, and parks it in the
    /// listener's dead letters with the error when the retries are spent, when the broker
    /// delivered it `delivery_limit` times already, or when it is not an event this
    /// framework wrote (a foreign publisher, a body that is not JSON) or not one the code
    /// can decode (an unknown version).
    ///
    /// `Err` when the consumer's own store failed (it could not park, or the read
    /// model's database is down): then the message must not be acknowledged, and comes
    /// again later.
    async fn receive(
        &self,
        message: Received<'_>,
        policy: &ReceivePolicy,
    ) -> Result<Settled, StoreError>;

    /// Empties the listener's read model, before the bus replays it from the start (a
    /// new consumer, a new version).
    async fn reset(&self) -> Result<(), DeliveryError>;

    /// Where its dead letters are kept, and the operators' requests to retry them.
    fn dead_letters(&self) -> &dyn CheckpointStore;

    /// Hands a parked event to the listener again, once, at an operator's request (see
    /// [`serve_requests`](super::serve_requests)): no retries in place, and no check that
    /// it was applied before, since it was parked instead.
    async fn redeliver(&self, event: &Arc<StoredEvent>) -> Result<(), DeliveryError>;
}

#[async_trait]
impl<L: Listener, K: Kind<L>> Receive for Feed<L, K> {
    fn identity(&self) -> &Identity {
        crate::subscription::Consumer::identity(self)
    }

    async fn receive(
        &self,
        message: Received<'_>,
        policy: &ReceivePolicy,
    ) -> Result<Settled, StoreError> {
        let dead_letters = crate::subscription::Consumer::checkpoints(self);
        receive_with(
            message,
            policy,
            Receive::identity(self),
            dead_letters,
            |event| async move { self.handle(&event).await.map(|()| Settled::Handled) },
        )
        .await
    }

    async fn reset(&self) -> Result<(), DeliveryError> {
        self.reset_listener().await
    }

    fn dead_letters(&self) -> &dyn CheckpointStore {
        crate::subscription::Consumer::checkpoints(self)
    }

    async fn redeliver(&self, event: &Arc<StoredEvent>) -> Result<(), DeliveryError> {
        self.handle(event).await
    }
}

/// The steps every [`Receive`] takes around its own handling, for consumers that apply
/// events their own way (a backend's transactional projection):
///
/// 1. decode the message; one that is not an event is parked (as stream `bus/<origin>`,
///    event type `foreign`, with its headers and body in the data);
/// 2. skip an event that `identity`'s filter does not let through;
/// 3. park an event the broker delivered more than `delivery_limit` times;
/// 4. call `handle`, retrying an event failure ([`DeliveryError::Event`]) in place as
///    `policy.retry` says, then parking it with the error; any other failure (the read
///    model's store is down) is returned, so the message is not acknowledged and comes
///    again later, never parked for it.
///
/// `handle` returns [`Settled::Handled`], or [`Settled::AlreadyApplied`] when it finds it
/// applied the event before.
pub async fn receive_with<F, Fut>(
    message: Received<'_>,
    policy: &ReceivePolicy,
    identity: &Identity,
    dead_letters: &dyn CheckpointStore,
    handle: F,
) -> Result<Settled, StoreError>
where
    F: Fn(Arc<StoredEvent>) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<Settled, DeliveryError>> + Send,
{
    let name = identity.name();
    let event = match decode(message.headers, message.payload, policy.header_names) {
        Ok(event) => Arc::new(event),
        Err(foreign) => {
            let event = foreign_event(&message, &foreign)?;
            let error = format!("not an event of this framework: {foreign}");
            return park(dead_letters, name, &event, error).await;
        }
    };
    if !identity
        .filter()
        .accepts(event.stream.stream_type(), &event.event_type)
    {
        return Ok(Settled::Skipped);
    }
    if message.delivered > policy.delivery_limit {
        let error = format!(
            "delivered {} times without an acknowledgement (limit {}): its consumer died \
             or timed out handling it",
            message.delivered, policy.delivery_limit
        );
        return park(dead_letters, name, &event, error).await;
    }
    let mut attempt = 1;
    loop {
        match handle(Arc::clone(&event)).await {
            Ok(settled) => return Ok(settled),
            Err(error @ DeliveryError::Event { .. })
                if attempt >= policy.retry.max_attempts.max(1) =>
            {
                return park(dead_letters, name, &event, error.to_string()).await;
            }
            Err(error @ DeliveryError::Event { .. }) => {
                tracing::warn!(subscription = %name, %error, attempt, "retrying in place");
                tokio::time::sleep(policy.retry.pause(attempt)).await;
                attempt += 1;
            }
            Err(DeliveryError::Store(error)) => return Err(error),
            Err(other) => return Err(StoreError::Unavailable(Box::new(other))),
        }
    }
}

/// Parks `event` with `error`, and says so.
async fn park(
    dead_letters: &dyn CheckpointStore,
    name: &crate::SubscriptionName,
    event: &StoredEvent,
    error: String,
) -> Result<Settled, StoreError> {
    tracing::warn!(subscription = %name, event_id = %event.event_id, %error, "parked");
    dead_letters.park(name, event, &error).await?;
    crate::observe::metrics::parked(name);
    Ok(Settled::Parked(error))
}

/// A foreign message as a dead letter: stream `bus/<origin>`, event type `foreign`, the
/// headers and the body (as text, lossily, NULs replaced: no store can hold them) in the
/// data, so that an operator sees what arrived.
fn foreign_event(
    message: &Received<'_>,
    error: &CloudEventError,
) -> Result<StoredEvent, IdentifierError> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace('\0', "\u{fffd}");
    let stream = StreamId::new("bus", &text(message.origin.as_bytes()))
        .or_else(|_| StreamId::new("bus", "unknown"))?;
    let headers: Vec<(String, String)> = message
        .headers
        .iter()
        .map(|(name, value)| (text(name.as_bytes()), text(value.as_bytes())))
        .collect();
    Ok(StoredEvent {
        event_id: uuid::Uuid::now_v7(),
        stream,
        stream_version: 0,
        position: Position::START,
        event_type: "foreign".to_owned(),
        event_version: 0,
        recorded_at: chrono::Utc::now(),
        metadata: Metadata::default(),
        data: json!({
            "error": error.to_string(),
            "headers": headers,
            "body": text(message.payload),
        }),
    })
}
