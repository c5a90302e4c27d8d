//! The errors of this crate.

/// A setting refused where it is given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not a Kafka topic name.
    #[error("invalid Kafka topic name {0:?}: use 1 to 249 ASCII letters, digits, `.`, `_` or `-`")]
    TopicName(String),
    /// Partitions out of range.
    #[error("{0} partitions: use 1 to 10,000")]
    Partitions(i32),
    /// Replication out of range.
    #[error("replication factor {0}: use 1 to 16")]
    Replication(i32),
}

/// Why a bus consumer could not start, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The Kafka client refused a setting, or the broker a request.
    #[error("Kafka {what}: {source}")]
    Kafka {
        /// What was asked.
        what: String,
        /// The client's error.
        #[source]
        source: rdkafka::error::KafkaError,
    },
    /// Emptying the read model before a replay failed.
    #[error("resetting the read model failed: {0}")]
    Reset(#[source] cqrs_core::subscription::DeliveryError),
    /// The consumer task ended by a panic or was cancelled.
    #[error("the consumer task ended: {0}")]
    Task(String),
    /// `caught_up` gave up waiting.
    #[error("not caught up after {0:?}")]
    NotCaughtUp(std::time::Duration),
}

impl ConsumerError {
    pub(crate) fn kafka(
        what: impl Into<String>,
    ) -> impl FnOnce(rdkafka::error::KafkaError) -> Self {
        let what = what.into();
        move |source| Self::Kafka { what, source }
    }
}
