//! Why a subscription ended, or why waiting for it failed.

use std::time::Duration;

use super::{DeliveryError, SubscriptionState};

/// Why a subscription ended, or why waiting for it failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// An event still failed after its retries, and the failure policy is
    /// [`Stop`](super::FailurePolicy::Stop). The checkpoint is just before it.
    #[error("subscription {name} stopped: {source}")]
    Failed {
        /// The subscription.
        name: String,
        /// The failure.
        #[source]
        source: DeliveryError,
    },
    /// A wait for the subscription found it no longer running.
    #[error("subscription {name} is not running ({state:?}); last error: {}", last_error.as_deref().unwrap_or("none"))]
    NotRunning {
        /// The subscription.
        name: String,
        /// Its state.
        state: SubscriptionState,
        /// Its last error.
        last_error: Option<String>,
    },
    /// A wait for the subscription to catch up timed out.
    #[error("subscription {name} did not catch up within {waited:?} ({state:?}); last error: {}", last_error.as_deref().unwrap_or("none"))]
    Timeout {
        /// The subscription.
        name: String,
        /// How long the caller waited.
        waited: Duration,
        /// Its state at the end of the wait.
        state: SubscriptionState,
        /// Its last error.
        last_error: Option<String>,
    },
    /// The subscription's task panicked outside any handler (a panic in a handler is
    /// its event's failure, [`Failed`](Self::Failed) or parked), or was cancelled. The
    /// status says `Failed`, with this error as `last_error`.
    #[error("subscription {name} aborted: {message}")]
    Aborted {
        /// The subscription.
        name: String,
        /// The panic's message, if any.
        message: String,
    },
}
