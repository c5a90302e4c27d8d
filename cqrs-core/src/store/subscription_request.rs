//! What an operator asks of a running subscription from another process: retry its dead
//! letters, move its checkpoint, rebuild its read model.
//!
//! Why requests are stored rather than applied by the operator's tool: only the process
//! that runs the subscription has its handlers (to hand a dead letter again) and its read
//! model (to empty it), and only the lease holder may move the checkpoint without racing
//! its own deliveries. So the tool stores a request next to the checkpoint, and the
//! runner that holds the lease applies it between two batches; a subscription that is not
//! running applies it when it next starts.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Position;

/// A request to a subscription, stored by [`CheckpointStore::request`](super::CheckpointStore::request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionRequest {
    /// Hand the parked event with this id to the handler again: on success it leaves the
    /// dead letters, on failure it stays parked with the new error.
    RetryDeadLetter(Uuid),
    /// The same for every parked event of the subscription, in global order.
    RetryDeadLetters,
    /// Move the checkpoint to this position without touching the read model: forward
    /// skips the events in between, backward delivers them again (the read model must
    /// then be idempotent). A position past the head of the log skips events not yet
    /// written: take it from a listing, or from [`read_horizon`](crate::EventLog::read_horizon).
    ResetTo(Position),
    /// Empty the read model and replay the log (from where the subscription's
    /// [`StartFrom`](crate::StartFrom) says).
    Rebuild,
}

impl SubscriptionRequest {
    /// A short name for its kind, as stored and shown: `retry`, `retry-all`, `reset`,
    /// `rebuild`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RetryDeadLetter(_) => "retry",
            Self::RetryDeadLetters => "retry-all",
            Self::ResetTo(_) => "reset",
            Self::Rebuild => "rebuild",
        }
    }
}

/// A stored [`SubscriptionRequest`] that its subscription has not applied yet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingRequest {
    /// Its id, to [`complete`](super::CheckpointStore::complete_request) it.
    pub id: Uuid,
    /// What is asked.
    pub request: SubscriptionRequest,
    /// When it was stored.
    pub requested_at: DateTime<Utc>,
}

impl PendingRequest {
    /// Request `id` for `request`, stored at `requested_at`.
    pub fn new(id: Uuid, request: SubscriptionRequest, requested_at: DateTime<Utc>) -> Self {
        Self {
            id,
            request,
            requested_at,
        }
    }
}
