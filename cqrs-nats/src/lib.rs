//! # cqrs-nats
//!
//! NATS JetStream for `cqrs-core`.

#![warn(missing_docs)]

#[cfg(feature = "testing")]
pub mod testing;
