//! Kafka for `cqrs-core`: an outbox relay that publishes the event log to Kafka topics,
//! and consumers in consumer groups that commit their offsets only after handling.

#![warn(missing_docs)]

#[cfg(feature = "testing")]
pub mod testing;
