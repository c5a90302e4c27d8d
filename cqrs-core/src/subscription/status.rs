//! What a running subscription reports about itself.

use std::time::Instant;

use crate::Position;

/// What a subscription is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Starting: acquiring the lease, loading the checkpoint.
    Starting,
    /// Another holder has the lease (another process runs this subscription); this one
    /// tries again periodically and takes over when the other stops or dies.
    Standby,
    /// Emptying the read model before a replay from the start.
    Rebuilding,
    /// Reading full batches: behind the head of the log.
    CatchingUp,
    /// Caught up; woken by new events.
    Live,
    /// A delivery or a read failed; trying again after a pause. See `last_error`.
    Retrying,
    /// Shut down on request, after its last batch and checkpoint.
    Stopped,
    /// Stopped by an event its failure policy did not let it skip (a handler's error or
    /// panic), or its task ended any other way (a panic outside the handlers, or
    /// cancelled). See `last_error`.
    Failed,
}

/// A snapshot of a subscription's progress, from
/// [`SubscriptionHandle::status`](super::SubscriptionHandle::status).
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionStatus {
    /// The subscription's name.
    pub name: String,
    /// Its consumer's version.
    pub version: u32,
    /// What it is doing.
    pub state: SubscriptionState,
    /// Its checkpoint: every event up to here took effect (`None` before it is loaded).
    pub position: Option<Position>,
    /// Events delivered by this runner since it started.
    pub delivered: u64,
    /// Events this runner parked in the dead-letter store.
    pub parked: u64,
    /// The last error seen (kept after recovery; `state` says whether it is current).
    pub last_error: Option<String>,
    /// When the last read that found no more events started: every event committed
    /// before this instant has taken effect.
    pub caught_up_at: Option<Instant>,
}
