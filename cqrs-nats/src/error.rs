//! The errors of this crate.

/// A setting refused where it is given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not a JetStream name this crate accepts: 1 to 64 ASCII letters, digits, `-`, `_`.
    #[error("invalid JetStream stream name {0:?}: use 1 to 64 ASCII letters, digits, `-` or `_`")]
    StreamName(String),
    /// Not a subject prefix: dot-separated tokens of ASCII letters, digits, `-`, `_`.
    #[error("invalid subject prefix {0:?}: use dot-separated tokens of ASCII letters, digits, `-` or `_`")]
    SubjectPrefix(String),
    /// Partitions out of range.
    #[error("{0} partitions: use 1 to 1024")]
    Partitions(u32),
    /// Replicas out of range.
    #[error("{0} replicas: use 1 to 5")]
    Replicas(usize),
}

/// Why a bus consumer could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// JetStream refused or did not answer a request (the stream is missing, the server
    /// is down).
    #[error("JetStream {what}: {source}")]
    JetStream {
        /// What was asked.
        what: String,
        /// The client's error.
        #[source]
        source: async_nats::Error,
    },
    /// Emptying the read model before a replay failed.
    #[error("resetting the read model failed: {0}")]
    Reset(#[source] cqrs_core::subscription::DeliveryError),
    /// A consumer task ended by a panic or was cancelled.
    #[error("a consumer task ended: {0}")]
    Task(String),
    /// `caught_up` gave up waiting.
    #[error("not caught up after {0:?}")]
    NotCaughtUp(std::time::Duration),
}
