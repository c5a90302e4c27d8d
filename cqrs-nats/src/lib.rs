//! # cqrs-nats
//!
//! NATS JetStream for `cqrs-core`: the events of an application's store leave for a bus,
//! and read models on other hosts are fed from it.
//!
//! - [`JetStreamPublisher`]: the relay's producer. Run a
//!   [`Relay`](cqrs_core::bus::Relay) with it as a subscription of the event store: every
//!   event is published, in the global order, as a CloudEvents 1.0 message on its
//!   stream's subject, with the event id as `Nats-Msg-Id`; the relay's checkpoint moves
//!   only after JetStream acknowledged.
//! - [`JetStreamConsumer`]: durable pull consumers that feed a
//!   [`Project`](cqrs_core::subscription::Project) or a
//!   [`React`](cqrs_core::subscription::React), in per-stream order, acknowledging after
//!   the handler succeeded and parking what keeps failing in the dead letters.
//! - [`EventStream`]: the JetStream stream both sides agree on (name, subjects,
//!   partitions, replicas, retention, de-duplication window).
//!
//! The files: `stream.rs` (the stream and its subjects), `publisher.rs` (the relay's
//! side), `consumer.rs` (the consumers' side), `error.rs`, and `testing.rs` (feature
//! `testing`: throwaway `nats-server` processes).

#![warn(missing_docs)]

mod consumer;
mod error;
mod publisher;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;

pub use consumer::{ConsumerHandle, JetStreamConsumer};
pub use error::{ConfigError, ConsumerError};
pub use publisher::JetStreamPublisher;
pub use stream::EventStream;

// Re-exported so that applications connect with the same client.
pub use async_nats;
