//! The handle of a running subscription: status, lag, waiting, rebuild, shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::{runner, DeliveryError, Subscription, SubscriptionState, SubscriptionStatus};
use crate::{EventFilter, EventLog, Position, StoreError};

/// Controls a subscription started with [`Subscription::start`].
///
/// Dropping the handle asks the subscription to stop after its current batch, without
/// waiting for it; [`shutdown`](Self::shutdown) waits and returns how it ended.
pub struct SubscriptionHandle {
    shared: Arc<Shared>,
    task: Option<JoinHandle<Result<(), SubscriptionError>>>,
}

/// What the runner and the handle share.
pub(super) struct Shared {
    pub(super) status: watch::Sender<SubscriptionStatus>,
    pub(super) stop: watch::Sender<bool>,
    /// Wakes an idle runner before its wait is over (a waiter wants a fresh read).
    pub(super) wake: Notify,
    pub(super) rebuild: AtomicBool,
    events: Arc<dyn EventLog>,
    filter: EventFilter,
}

/// Why a subscription ended, or why waiting for it failed.
#[derive(Debug, thiserror::Error)]
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

impl SubscriptionHandle {
    pub(super) fn spawn(subscription: Subscription) -> Self {
        let consumer = &subscription.consumer;
        let status = SubscriptionStatus {
            name: consumer.name().to_owned(),
            version: consumer.version(),
            state: SubscriptionState::Starting,
            position: None,
            delivered: 0,
            parked: 0,
            last_error: None,
            caught_up_at: None,
        };
        let shared = Arc::new(Shared {
            status: watch::Sender::new(status),
            stop: watch::Sender::new(false),
            wake: Notify::new(),
            rebuild: AtomicBool::new(false),
            events: Arc::clone(&subscription.events),
            filter: consumer.filter().clone(),
        });
        let task = tokio::spawn(runner::run(subscription, Arc::clone(&shared)));
        Self {
            shared,
            task: Some(task),
        }
    }

    /// The subscription's progress now.
    pub fn status(&self) -> SubscriptionStatus {
        self.shared.status.borrow().clone()
    }

    /// How many events that the subscription consumes are stored after its checkpoint
    /// (counted by the store, up to 10,000,000).
    pub async fn lag(&self) -> Result<u64, StoreError> {
        self.lag_after(self.status().position).await
    }

    async fn lag_after(&self, position: Option<Position>) -> Result<u64, StoreError> {
        self.shared
            .events
            .count_after(
                position.unwrap_or(Position::START),
                &self.shared.filter,
                10_000_000,
            )
            .await
    }

    /// Waits until every event committed before this call has taken effect: until a read
    /// that started after this call found nothing more to deliver, and the store counts
    /// no event after the checkpoint.
    ///
    /// The count matters on stores whose global read holds back events committed after
    /// an older transaction that is still open (PostgreSQL): a read may find nothing
    /// while such events exist. Under a steady flow of new events the wait lasts until a
    /// pause in the flow.
    ///
    /// This is how a test or a demo gets read-your-writes from an eventually consistent
    /// read model. Fails after `timeout`, or at once when the subscription stops or fails
    /// ([`SubscriptionError::NotRunning`] with its state and last error): an event whose
    /// handler failed or panicked under [`FailurePolicy::Stop`](super::FailurePolicy::Stop),
    /// or a task that ended any other way.
    pub async fn caught_up(&self, timeout: Duration) -> Result<(), SubscriptionError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut since = Instant::now();
        let mut status = self.shared.status.subscribe();
        loop {
            self.shared.wake.notify_one();
            let done = |s: &SubscriptionStatus| {
                s.caught_up_at.is_some_and(|at| at >= since)
                    || matches!(
                        s.state,
                        SubscriptionState::Failed | SubscriptionState::Stopped
                    )
            };
            // The `Ref` that `wait_for` returns holds the channel's read lock: drop it at
            // once, or the runner's next status update (a write) waits for this task,
            // which waits for its next read, behind the writer.
            let waited = tokio::time::timeout_at(deadline, async {
                status.wait_for(done).await.map(|_| ())
            })
            .await;
            let now = self.status();
            match waited {
                Ok(Ok(_)) if now.caught_up_at.is_some_and(|at| at >= since) => {}
                Ok(_) => {
                    return Err(SubscriptionError::NotRunning {
                        name: now.name,
                        state: now.state,
                        last_error: now.last_error,
                    })
                }
                Err(_) => {
                    return Err(SubscriptionError::Timeout {
                        name: now.name,
                        waited: timeout,
                        state: now.state,
                        last_error: now.last_error,
                    })
                }
            }
            // A failed count is no proof of lag: the read found nothing, so take it.
            if self.lag_after(now.position).await.unwrap_or(0) == 0 {
                return Ok(());
            }
            // Events held back: wait for a later read, a little later.
            tokio::time::sleep(Duration::from_millis(5)).await;
            since = Instant::now();
        }
    }

    /// Asks for a rebuild: at its next batch boundary, the subscription resets its read
    /// model and checkpoint and replays the log from the start. Other subscriptions are
    /// not affected.
    pub fn rebuild(&self) {
        self.shared.rebuild.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }

    /// Waits until the subscription ends by itself, without asking it to stop: under
    /// [`FailurePolicy::Stop`](super::FailurePolicy::Stop), when an event keeps failing.
    pub async fn join(mut self) -> Result<(), SubscriptionError> {
        let name = self.status().name;
        match self.task.take() {
            None => Ok(()),
            Some(task) => finish(name, task.await),
        }
    }

    /// Stops the subscription after its current batch (whose checkpoint is saved) and
    /// returns how it ended: `Ok` after a clean stop, the failure that stopped it
    /// otherwise.
    pub async fn shutdown(mut self) -> Result<(), SubscriptionError> {
        self.shared.stop.send_replace(true);
        self.shared.wake.notify_one();
        let name = self.status().name;
        match self.task.take() {
            None => Ok(()),
            Some(task) => finish(name, task.await),
        }
    }
}

fn finish(
    name: String,
    joined: Result<Result<(), SubscriptionError>, tokio::task::JoinError>,
) -> Result<(), SubscriptionError> {
    match joined {
        Ok(result) => result,
        Err(join) => Err(SubscriptionError::Aborted {
            name,
            message: panic_message(join),
        }),
    }
}

impl Drop for SubscriptionHandle {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
        self.shared.wake.notify_one();
    }
}

impl std::fmt::Debug for SubscriptionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionHandle")
            .field("status", &*self.shared.status.borrow())
            .finish_non_exhaustive()
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    if join.is_cancelled() {
        return "cancelled".to_owned();
    }
    crate::unwind::Panicked::from_payload(join.into_panic().as_ref()).message
}
