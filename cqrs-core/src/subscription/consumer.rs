//! The untyped interface between the runner and what it feeds.

use std::sync::Arc;

use async_trait::async_trait;

use super::Identity;
use crate::store::BoxError;
use crate::{CheckpointStore, Position, StoreError, StoredEvent};

/// What a [`Subscription`](super::Subscription) feeds: a read model, a process manager,
/// or a backend's transactional projection.
///
/// The runner reads events in global order with the consumer's
/// [`filter`](Identity::filter) (applied by the store), hands them over in batches with [`deliver`](Self::deliver),
/// and keeps the lease, the retries and the status. A consumer decides how its effects
/// and its checkpoint are written: one after the other (at-least-once), or in one
/// transaction (exactly-once effect).
///
/// Application code rarely implements this: [`Feed`](super::Feed) adapts any
/// [`Listener`](crate::Listener) kind of the core ([`Project`](super::Project) a
/// [`Projection`](crate::Projection), [`React`](super::React) a
/// [`ProcessManager`](super::ProcessManager)), and backends adapt their own transactional
/// projections. Its [`Identity`] is validated when the consumer is built, before any I/O.
#[async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// Its name, version, checkpoint key and filter.
    fn identity(&self) -> &Identity;

    /// Where its checkpoint, lease and dead letters are kept.
    fn checkpoints(&self) -> &dyn CheckpointStore;

    /// Applies `events` (in global order, all after `from`) and moves the checkpoint from
    /// `from` to `to` (the position of the last event, or beyond).
    ///
    /// On `Ok`, every event took effect and the checkpoint is `to`. On `Err`, the
    /// checkpoint is still `from`: a transactional consumer rolled everything back; any
    /// other may have applied some of the events, which will be delivered again
    /// (at-least-once). A transactional consumer that finds the checkpoint is no longer
    /// `from` (another process moved it) applies nothing and returns
    /// [`DeliveryError::CheckpointMoved`].
    ///
    /// One exception to "all after `from`": a dead letter retried at an operator's
    /// request ([`SubscriptionRequest`](crate::SubscriptionRequest)) comes alone, at or
    /// before `from`, with `to` equal to `from`: it is applied, and the checkpoint stays.
    /// A consumer that skips events at or before its checkpoint must not skip it.
    async fn deliver(
        &self,
        from: Position,
        events: &[Arc<StoredEvent>],
        to: Position,
    ) -> Result<(), DeliveryError>;

    /// Empties the read model and sets the checkpoint to [`Position::START`], for a
    /// rebuild. A transactional consumer does both in one transaction; any other saves the
    /// checkpoint first, so that a crash in between leaves `START`, which makes the runner
    /// reset again when it starts.
    async fn reset(&self) -> Result<(), DeliveryError>;
}

/// Why a [`Consumer`] could not take a batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// This event could not be handled: it does not decode, or the handler failed. The
    /// runner retries, then stops or parks it, as its [`FailurePolicy`](super::FailurePolicy)
    /// says.
    #[error(
        "event {} at {} version {} ({} v{}) failed: {source}",
        event.event_id, event.stream, event.stream_version, event.event_type, event.event_version
    )]
    Event {
        /// The event.
        event: Arc<StoredEvent>,
        /// The codec's or the handler's error.
        #[source]
        source: BoxError,
    },
    /// The checkpoint was not where the runner left it: another process delivered in the
    /// meantime. Nothing was applied; the runner reloads the checkpoint.
    #[error("checkpoint of {name} moved: expected {expected:?}, found {actual:?}")]
    CheckpointMoved {
        /// The checkpoint's key.
        name: String,
        /// Where the runner expected it.
        expected: Position,
        /// Where it was.
        actual: Option<Position>,
    },
    /// Emptying the read model for a rebuild failed; retried with backoff.
    #[error("reset failed: {0}")]
    Reset(#[source] BoxError),
    /// The read model's or the checkpoint's store failed; retried with backoff.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the consumer sends its events to failed (a message bus that did not
    /// acknowledge); retried with backoff, as a store failure is.
    #[error("downstream unavailable: {0}")]
    Downstream(#[source] BoxError),
}
