//! The relay's side: publishing to a Kafka topic with an idempotent producer.

use async_trait::async_trait;
use cqrs_core::bus::{Acknowledgement, BusMessage, HeaderNames, PublishError, Publisher};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::EventTopic;

/// Publishes a [`Relay`](cqrs_core::bus::Relay)'s messages into an [`EventTopic`], with
/// Kafka's idempotent producer (`enable.idempotence`, `acks=all`).
///
/// The idempotent producer keeps a retried send from being written twice, and keeps each
/// partition in send order, within one producer's life. A relay that restarts (a new
/// producer) publishes again what it had not checkpointed: Kafka stores those copies, and
/// each carries its event id (`ce_id`), by which a consumer recognises it. The consumers
/// of this crate do, per stream (see [`KafkaConsumer`](crate::KafkaConsumer)).
///
/// [`prepare`](Publisher::prepare) creates the topic, or adds partitions up to the
/// configured count.
pub struct KafkaPublisher {
    producer: FutureProducer,
    /// For the admin client of a `prepare` that creates or grows the topic.
    config: ClientConfig,
    topic: EventTopic,
}

impl KafkaPublisher {
    /// A publisher into `topic` on the brokers of `bootstrap` (`host:port,...`).
    pub fn new(bootstrap: &str, topic: EventTopic) -> Result<Self, KafkaError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", bootstrap);
        Self::with_config(config, topic)
    }

    /// A publisher with the client settings of `config` (security, timeouts, batching),
    /// on which it sets the idempotent producer's own (`enable.idempotence=true`,
    /// `acks=all`) and the partitioner (`murmur2_random`).
    pub fn with_config(mut config: ClientConfig, topic: EventTopic) -> Result<Self, KafkaError> {
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random");
        Ok(Self {
            producer: config.create()?,
            config,
            topic,
        })
    }

    /// The topic it publishes into.
    pub fn topic(&self) -> &EventTopic {
        &self.topic
    }
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// A refusal for what the broker will never take, an outage for the rest.
fn publish_error(error: KafkaError) -> PublishError {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize) => {
            PublishError::Refused(Box::new(error))
        }
        _ => PublishError::Unavailable(Box::new(error)),
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    fn header_names(&self) -> HeaderNames {
        HeaderNames::KAFKA
    }

    /// Looks the topic up with the producer's own client; creates or grows it with an
    /// admin client of its own each time, never one kept idle: `prepare` runs first and
    /// after an outage, and an admin client kept through a broker's restart was seen to
    /// time out on every request after it (tansu 0.6.0).
    async fn prepare(&self) -> Result<(), PublishError> {
        let producer = self.producer.clone();
        self.topic
            .ensure(
                move |name, timeout| producer.client().fetch_metadata(Some(name), timeout),
                &self.config,
            )
            .await
            .map_err(|e| PublishError::Unavailable(Box::new(e)))
    }

    async fn publish(&self, message: BusMessage) -> Result<Acknowledgement, PublishError> {
        let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
        for (name, value) in &message.headers {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_bytes()),
            });
        }
        let key = self.topic.key(&message.stream);
        let record = FutureRecord::to(self.topic.name())
            .key(&key)
            .payload(&message.payload)
            .headers(headers);
        let delivery = self
            .producer
            .send_result(record)
            .map_err(|(error, _)| publish_error(error))?;
        Ok(Box::pin(async move {
            match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(publish_error(error)),
                Err(canceled) => Err(PublishError::Unavailable(Box::new(canceled))),
            }
        }))
    }
}
