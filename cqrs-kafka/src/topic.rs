//! The Kafka topic the relay publishes into, and how events are keyed.

use std::time::Duration;

use cqrs_core::StreamId;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use crate::error::ConfigError;

/// How long an admin or metadata request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The Kafka topic of an application's events, as both sides see it: the relay creates
/// it (or adds partitions up to [`partitions`](Self::partitions)) from this value,
/// consumer groups read from it.
///
/// Each event's message key is its stream (`TYPE/ID`), so Kafka puts all events of a
/// stream in one partition, in order; a partition is the unit a consumer group shares out
/// among its members. The producer uses librdkafka's `murmur2_random` partitioner, the
/// Java client's default, so other Kafka clients agree on where a stream's events are.
///
/// ```
/// use cqrs_kafka::EventTopic;
/// let topic = EventTopic::new("orders")?.partitions(6)?;
/// assert_eq!(topic.key(&cqrs_core::StreamId::new("order", "o-1")?), "order/o-1");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTopic {
    name: String,
    partitions: i32,
    replication: i32,
}

impl EventTopic {
    /// The topic `name` (1 to 249 ASCII letters, digits, `.`, `_`, `-`; not `.` or
    /// `..`), with one partition and one replica.
    pub fn new(name: &str) -> Result<Self, ConfigError> {
        let valid = !name.is_empty()
            && name.len() <= 249
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !valid {
            return Err(ConfigError::TopicName(name.to_owned()));
        }
        Ok(Self {
            name: name.to_owned(),
            partitions: 1,
            replication: 1,
        })
    }

    /// Spreads streams over `partitions` (1 to 10,000). Kafka can add partitions but not
    /// remove them, and adding moves streams to other partitions: drain consumers first.
    pub fn partitions(mut self, partitions: i32) -> Result<Self, ConfigError> {
        if !(1..=10_000).contains(&partitions) {
            return Err(ConfigError::Partitions(partitions));
        }
        self.partitions = partitions;
        Ok(self)
    }

    /// Copies of each partition in a cluster (1 to 16).
    pub fn replication(mut self, replicas: i32) -> Result<Self, ConfigError> {
        if !(1..=16).contains(&replicas) {
            return Err(ConfigError::Replication(replicas));
        }
        self.replication = replicas;
        Ok(self)
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.partitions
    }

    /// The replication factor.
    pub fn replication_factor(&self) -> i32 {
        self.replication
    }

    /// The message key of `stream`'s events.
    pub fn key(&self, stream: &StreamId) -> String {
        format!("{}/{}", stream.stream_type(), stream.id())
    }

    /// Creates the topic, or adds partitions up to the configured count: what the relay
    /// does before publishing, and a consumer before subscribing (whichever starts
    /// first).
    ///
    /// The topic is looked up with `metadata`, a request on the caller's own client
    /// (its producer or consumer, which needs the topic's metadata anyway), run off the
    /// runtime's threads because librdkafka's metadata call blocks. An admin client is
    /// created only when the topic must be created or grown: a fresh client costs a
    /// connection and a metadata round trip, and its destruction waits for its thread.
    pub(crate) async fn ensure<F>(
        &self,
        metadata: F,
        config: &ClientConfig,
    ) -> Result<(), KafkaError>
    where
        F: FnOnce(&str, Duration) -> Result<Metadata, KafkaError> + Send + 'static,
    {
        let name = self.name.clone();
        let metadata = tokio::task::spawn_blocking(move || metadata(&name, ADMIN_TIMEOUT))
            .await
            // Only a panic in librdkafka's call (or the runtime shutting down) gets here.
            .map_err(|_| KafkaError::MetadataFetch(RDKafkaErrorCode::Fail))??;
        // Metadata first: a topic that exists is not created again (tansu answers a
        // second creation after a restart with an unknown error, not "already exists").
        let existing = metadata
            .topics()
            .first()
            .filter(|t| t.error().is_none())
            .map_or(0, |t| t.partitions().len() as i32);
        if existing >= self.partitions {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = config.create()?;
        let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        if existing == 0 {
            let topic = NewTopic::new(
                &self.name,
                self.partitions,
                TopicReplication::Fixed(self.replication),
            );
            for result in admin.create_topics([&topic], &options).await? {
                match result {
                    // Created meanwhile by the other side: as good.
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((_, code)) => return Err(KafkaError::AdminOp(code)),
                }
            }
        } else {
            let more = NewPartitions::new(&self.name, self.partitions as usize);
            for result in admin.create_partitions([&more], &options).await? {
                result.map_err(|(_, code)| KafkaError::AdminOp(code))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_are_refused_where_they_are_given() {
        assert!(EventTopic::new("").is_err());
        assert!(EventTopic::new("..").is_err());
        assert!(EventTopic::new("a b").is_err());
        assert!(EventTopic::new(&"x".repeat(250)).is_err());
        let topic = EventTopic::new("orders.v1").expect("valid");
        assert!(topic.clone().partitions(0).is_err());
        assert!(topic.replication(0).is_err());
    }
}
