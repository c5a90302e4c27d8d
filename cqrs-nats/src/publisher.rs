//! The relay's side: publishing to JetStream.

use async_nats::jetstream::context::{Context, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use std::borrow::Cow;

use async_nats::{HeaderMap, HeaderName};
use async_trait::async_trait;
use cqrs_core::bus::{Acknowledgement, BusMessage, HeaderNames, PublishError, Publisher};

use crate::EventStream;

/// Publishes a [`Relay`](cqrs_core::bus::Relay)'s messages into an [`EventStream`].
///
/// Each message goes to the subject of its stream, with the event id as `Nats-Msg-Id`, so
/// JetStream stores a republished event once within the stream's de-duplication window.
/// [`prepare`](Publisher::prepare) creates the stream, or updates its settings, from the
/// [`EventStream`].
///
/// ```no_run
/// # async fn demo(store: cqrs_memory::MemoryStore) -> Result<(), Box<dyn std::error::Error>> {
/// use cqrs_core::bus::Relay;
/// use cqrs_core::Subscription;
/// use cqrs_nats::{EventStream, JetStreamPublisher};
///
/// let client = async_nats::connect("nats://127.0.0.1:4222").await?;
/// let stream = EventStream::new("ORDERS", "orders")?.partitions(4)?;
/// let publisher = JetStreamPublisher::new(async_nats::jetstream::new(client), stream);
/// let relay = Subscription::new(store.clone(), Relay::new("orders_outbox", publisher, store)?)
///     .start();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct JetStreamPublisher {
    jetstream: Context,
    stream: EventStream,
}

impl JetStreamPublisher {
    /// A publisher into `stream` through `jetstream`.
    pub fn new(jetstream: Context, stream: EventStream) -> Self {
        Self { jetstream, stream }
    }

    /// The stream it publishes into.
    pub fn stream(&self) -> &EventStream {
        &self.stream
    }
}

/// A refusal for what the broker will never take, an outage for the rest.
fn publish_error(error: async_nats::jetstream::context::PublishError) -> PublishError {
    match error.kind() {
        PublishErrorKind::MaxPayloadExceeded => PublishError::Refused(Box::new(error)),
        _ => PublishError::Unavailable(Box::new(error)),
    }
}

#[async_trait]
impl Publisher for JetStreamPublisher {
    fn header_names(&self) -> HeaderNames {
        HeaderNames::NATS
    }

    async fn prepare(&self) -> Result<(), PublishError> {
        self.jetstream
            .create_or_update_stream(self.stream.config())
            .await
            .map_err(|e| PublishError::Unavailable(Box::new(e)))?;
        Ok(())
    }

    async fn publish(&self, message: BusMessage) -> Result<Acknowledgement, PublishError> {
        let mut headers = HeaderMap::new();
        for (name, value) in message.headers {
            // The framework's own names are static: taken as they are, not parsed.
            let name = match name {
                Cow::Borrowed(name) => HeaderName::from_static(name),
                Cow::Owned(name) => match name.parse() {
                    Ok(name) => name,
                    // A free metadata key that is no NATS header name is left out, as
                    // CloudEvents leaves out one that is no attribute name.
                    Err(_) => continue,
                },
            };
            headers.insert(name, value);
        }
        let publish = PublishMessage::build()
            .payload(message.payload.into())
            .headers(headers)
            .message_id(message.id.to_string());
        let ack = self
            .jetstream
            .send_publish(self.stream.subject(&message.stream), publish)
            .await
            .map_err(publish_error)?;
        Ok(Box::pin(async move {
            ack.await.map(|_| ()).map_err(publish_error)
        }))
    }
}
