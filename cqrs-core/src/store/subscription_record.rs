//! What a store knows of a subscription beyond its checkpoint, for operators in another
//! process: what it reads, whether it last ran, stopped or failed, and who holds its lease.

use chrono::{DateTime, Utc};

use crate::{EventFilter, SubscriptionName};

/// What the runner of a subscription last recorded about itself
/// ([`CheckpointStore::record`](super::CheckpointStore::record)): its filter, so that
/// its lag can be counted by someone who does not have its code, and how its last run
/// went, so that a subscription stopped by a failing event can be told from one whose
/// process is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriptionRecord {
    /// Its checkpoint's key (`name@vVERSION` for listeners).
    pub checkpoint: SubscriptionName,
    /// What it reads.
    pub filter: EventFilter,
    /// How its last run stands.
    pub state: RecordedState,
    /// When that was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl SubscriptionRecord {
    /// The record of checkpoint `checkpoint`, reading `filter`, in `state`, now.
    pub fn new(checkpoint: SubscriptionName, filter: EventFilter, state: RecordedState) -> Self {
        Self {
            checkpoint,
            filter,
            state,
            recorded_at: Utc::now(),
        }
    }

    /// The same record, as recorded at `at` (for stores that read it back).
    pub fn recorded_at(mut self, at: DateTime<Utc>) -> Self {
        self.recorded_at = at;
        self
    }
}

/// How a subscription's last run stands, as its runner recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordedState {
    /// It became the active consumer (it holds the lease). If its process died without
    /// stopping it, this stays: the lease, which the store releases, says whether it
    /// still runs.
    Running,
    /// It was stopped (the application shut it down).
    Stopped,
    /// It stopped on an error: an event that kept failing under
    /// [`FailurePolicy::Stop`](crate::subscription::FailurePolicy::Stop).
    Failed {
        /// The error, as text.
        error: String,
    },
}

impl RecordedState {
    /// `running`, `stopped` or `failed`, as stored and shown.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Failed { .. } => "failed",
        }
    }
}

/// Who holds a subscription's lease now
/// ([`CheckpointStore::lease_holder`](super::CheckpointStore::lease_holder)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseHolder {
    /// The holder, as the backend can name it (on PostgreSQL: the server process id, the
    /// client's address and application name of the lease's connection).
    pub holder: String,
    /// Since when, if known.
    pub since: Option<DateTime<Utc>>,
}

impl LeaseHolder {
    /// Holder `holder`, since `since`.
    pub fn new(holder: String, since: Option<DateTime<Utc>>) -> Self {
        Self { holder, since }
    }
}
