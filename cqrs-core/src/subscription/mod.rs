//! Subscriptions: the read side, fed from the log.
//!
//! A [`Subscription`] reads the global log from its checkpoint, in commit order, and
//! feeds a [`Consumer`]: a [`Listener`](crate::Listener) through [`Feed`] (a
//! [projection](crate::Projection) as [`Project`], a [`ProcessManager`] as [`React`]), or
//! a backend's transactional projection.
//!
//! ```text
//! start ─▶ lease ─▶ checkpoint ─┬─ none / START: reset the read model (rebuild)
//!   ▲        │ held elsewhere:  │
//!   │        └─ standby, retry  ▼
//!   │                    read a batch after the checkpoint (filtered by the store)
//!   │                           │ empty: live, wait for new events (or poll)
//!   │                           ▼
//!   │                    deliver: apply + move the checkpoint
//!   │                           │ event fails: retry with backoff, then stop or park
//!   └── lease lost ◀────────────┘
//! ```
//!
//! Guarantees:
//! - **in order, never skipped**: the store's global read never skips an event that
//!   commits late, and the checkpoint only moves past events that took effect or that
//!   were parked in the dead-letter store;
//! - **at least once**: a crash between the effect and the checkpoint delivers again.
//!   Where the read model and the checkpoint commit in one transaction (the PostgreSQL
//!   backend's transactional projections), each event takes effect exactly once;
//! - **one active consumer**: several processes may start the same subscription; the
//!   store's lease lets one deliver, the others stand by and take over when it dies;
//! - **no silent skip**: a failing event is retried, then stops the subscription with
//!   the error in its status ([`FailurePolicy::Stop`], the default) or, when asked, is
//!   parked with its error ([`FailurePolicy::Park`]) and the subscription goes on. An
//!   event fails when it does not decode, when its handler fails or panics (the panic is
//!   caught, see [`crate::unwind`]), and when the store cannot read it
//!   ([`StoreError::Corrupt`](crate::StoreError::Corrupt) with the event);
//! - **no silent death**: if the runner's task ends any other way (a panic outside the
//!   handlers, or cancelled), the status says `Failed` with the reason at once, and
//!   [`SubscriptionHandle::caught_up`] returns that instead of waiting;
//! - **seen and steered from outside**: the active runner records its filter and how its
//!   run stands ([`CheckpointStore::record`](crate::CheckpointStore::record)), and
//!   applies operators' stored requests between two batches (retry a dead letter, move
//!   the checkpoint, rebuild: [`SubscriptionRequest`](crate::SubscriptionRequest)), so
//!   that another process (the `cqrs` command line) can see it with [`overview`] and
//!   change it without racing its deliveries.
//!
//! ```
//! # use cqrs_core::{Projection, EventStore, CheckpointStore};
//! # use cqrs_core::subscription::{Project, Subscription};
//! # async fn demo<P: Projection + Clone>(view: P, store: impl EventStore + CheckpointStore + Clone)
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let running = Subscription::new(store.clone(), Project::new(view.clone(), store)?).start();
//! // ... commands append events; the view follows ...
//! running.caught_up(std::time::Duration::from_secs(5)).await?; // read-your-writes in tests
//! running.shutdown().await?; // finishes the batch, saves the checkpoint
//! # Ok(()) }
//! ```

mod consumer;
mod error;
mod feed;
mod handle;
mod identity;
mod overview;
mod process;
mod runner;
mod status;

use std::sync::Arc;
use std::time::Duration;

pub use consumer::{Consumer, DeliveryError};
pub use error::SubscriptionError;
pub use feed::{decode, AsProcessManager, AsProjection, Feed, Kind, Project, React};
pub use handle::SubscriptionHandle;
pub use identity::Identity;
pub use overview::{overview, overview_one, Behind, OverviewState, SubscriptionOverview};
pub use process::ProcessManager;
pub use status::{SubscriptionState, SubscriptionStatus};

use crate::{EventLog, RetryPolicy};

/// What a subscription does with an event that still fails after its retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Stop the subscription, with the error in its status and in
    /// [`SubscriptionHandle::shutdown`]'s result. Nothing after the event is delivered
    /// until the cause is fixed and the subscription is started again.
    #[default]
    Stop,
    /// Park the event in the dead-letter store ([`CheckpointStore::park`](crate::CheckpointStore::park))
    /// with its error, move the checkpoint past it, and go on.
    Park,
}

/// Where a subscription starts when it has nothing to resume from: at its first start,
/// after a new version of its consumer, and after a
/// [rebuild](SubscriptionHandle::rebuild).
///
/// Its read model is emptied in each case ([`Consumer::reset`]) before the start is
/// recorded as its checkpoint; from then on it resumes from its checkpoint like any
/// other subscription. So a rebuild of a subscription that starts [`Now`](Self::Now)
/// starts again from the head of the log at the rebuild, not from where it first started:
/// to replay from an earlier point, set the checkpoint with
/// [`CheckpointStore::save_checkpoint`](crate::CheckpointStore::save_checkpoint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartFrom {
    /// The first event of the log: the read model holds the whole history.
    #[default]
    Beginning,
    /// The head of the log at the start (the store's [read
    /// horizon](crate::EventLog::read_horizon): every event at or before it is skipped,
    /// every later one delivered). For consumers that act on what happens from now on
    /// (notifications, a relay to a bus that starts empty) and must not act on history.
    Now,
    /// After this position: events at or before it are skipped.
    After(crate::Position),
}

/// A subscription to the log, configured and ready to [`start`](Subscription::start).
pub struct Subscription {
    pub(crate) events: Arc<dyn EventLog>,
    pub(crate) consumer: Arc<dyn Consumer>,
    pub(crate) batch_size: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) on_failure: FailurePolicy,
    pub(crate) idle_wait: Duration,
    pub(crate) standby_interval: Duration,
    pub(crate) start_from: StartFrom,
    pub(crate) including_archived: bool,
}

impl Subscription {
    /// A subscription reading `events` and feeding `consumer`, with the defaults: batches
    /// of 500, 5 attempts per failing event (pauses from 100 ms), [`FailurePolicy::Stop`],
    /// a fresh look at the log at least every second when idle, and a standby that tries
    /// for the lease every second.
    pub fn new(events: impl EventLog, consumer: impl Consumer) -> Self {
        Self {
            events: Arc::new(events),
            consumer: Arc::new(consumer),
            batch_size: 500,
            retry: RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(100),
            },
            on_failure: FailurePolicy::Stop,
            idle_wait: Duration::from_secs(1),
            standby_interval: Duration::from_secs(1),
            start_from: StartFrom::Beginning,
            including_archived: false,
        }
    }

    /// Events per read and per delivery (at least 1). Larger batches mean fewer round
    /// trips and checkpoint writes, and more events delivered again after a crash.
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// How often a failing event (or a failing store) is tried, and the pauses between.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// What to do with an event that still fails after its retries.
    pub fn on_failure(mut self, policy: FailurePolicy) -> Self {
        self.on_failure = policy;
        self
    }

    /// The longest an idle subscription waits before reading again even if the store
    /// did not signal new events: the polling fallback.
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// How often a standby tries to take the lease over: the longest a subscription stays
    /// without an active consumer after that consumer died (plus the backend's own
    /// detection time).
    pub fn standby_interval(mut self, interval: Duration) -> Self {
        self.standby_interval = interval;
        self
    }

    /// Where to start when there is no checkpoint to resume from (see [`StartFrom`]);
    /// [`StartFrom::Beginning`] by default.
    pub fn start_from(mut self, start: StartFrom) -> Self {
        self.start_from = start;
        self
    }

    /// Also reads the events of archived streams
    /// ([`StreamStore::archive_stream`](crate::StreamStore::archive_stream)), which a
    /// subscription skips by default: for a read model that must hold the whole history,
    /// archive included (see [`EventFilter::including_archived`](crate::EventFilter::including_archived)).
    pub fn including_archived(mut self) -> Self {
        self.including_archived = true;
        self
    }

    /// The filter its reads use: its consumer's, with the archive if asked.
    pub(crate) fn filter(&self) -> crate::EventFilter {
        let filter = self.consumer.identity().filter().clone();
        if self.including_archived {
            filter.including_archived()
        } else {
            filter
        }
    }

    /// Starts the subscription on the current tokio runtime.
    pub fn start(self) -> SubscriptionHandle {
        SubscriptionHandle::spawn(self)
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("consumer", self.consumer.identity())
            .field("batch_size", &self.batch_size)
            .field("retry", &self.retry)
            .field("on_failure", &self.on_failure)
            .finish_non_exhaustive()
    }
}
