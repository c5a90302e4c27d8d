//! # cqrs-kafka
//!
//! Kafka for `cqrs-core`: the events of an application's store leave for Kafka topics,
//! and read models on other hosts are fed from them by consumer groups.
//!
//! - [`KafkaPublisher`]: the relay's producer (idempotent, `acks=all`). Run a
//!   [`Relay`](cqrs_core::bus::Relay) with it as a subscription of the event store: every
//!   event is published, in the global order, as a CloudEvents 1.0 message keyed by its
//!   stream, with the CloudEvents attributes as `ce_` headers; the relay's checkpoint
//!   moves only after the brokers acknowledged.
//! - [`KafkaConsumer`]: a consumer group member that feeds a
//!   [`Project`](cqrs_core::subscription::Project) or a
//!   [`React`](cqrs_core::subscription::React), committing each offset after the handler
//!   succeeded and parking what keeps failing in the dead letters.
//! - [`EventTopic`]: the topic both sides agree on (name, partitions, replication).
//!
//! The files: `topic.rs`, `publisher.rs` (the relay's side), `consumer.rs` (the
//! consumers' side), `error.rs`, and `testing.rs` (feature `testing`: a throwaway
//! Kafka-protocol broker, tansu).

#![warn(missing_docs)]

mod consumer;
mod error;
mod publisher;
#[cfg(feature = "testing")]
pub mod testing;
mod topic;

pub use consumer::{KafkaConsumer, KafkaConsumerHandle};
pub use error::{ConfigError, ConsumerError};
pub use publisher::KafkaPublisher;
pub use topic::EventTopic;

// Re-exported so that applications configure clients with the same rdkafka.
pub use rdkafka;
