//! The subscription's task: lease, checkpoint, read, deliver, retry, park.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};
use tracing::Instrument;
use uuid::Uuid;

use super::{
    DeliveryError, FailurePolicy, StartFrom, Subscription, SubscriptionError, SubscriptionState,
    SubscriptionStatus,
};
use crate::observe::metrics;
use crate::unwind::{self, Panicked};
use crate::{
    EventFilter, EventLog, Lease, PendingRequest, Position, RecordedState, StoreError, StoredEvent,
    SubscriptionRecord, SubscriptionRequest,
};

/// The longest pause between two tries after a failure.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// How often an active runner looks for operators' requests (or its idle wait, if
/// shorter): a round trip that a runner delivering batch after batch should not pay each
/// time, and a wait an operator at a terminal hardly notices.
const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// Where counting the lag stops, so that a count during a long catch-up stays a short
/// query: the gauge then says "at least this many".
const LAG_COUNT_LIMIT: u64 = 100_000;

/// What the runner and the handle share.
pub(super) struct Shared {
    pub(super) status: watch::Sender<SubscriptionStatus>,
    pub(super) stop: watch::Sender<bool>,
    /// Wakes an idle runner before its wait is over (a waiter wants a fresh read).
    pub(super) wake: Notify,
    pub(super) rebuild: AtomicBool,
    pub(super) events: Arc<dyn EventLog>,
    pub(super) filter: EventFilter,
}

impl Shared {
    /// The shared part of a subscription about to start: state `Starting`, no checkpoint.
    pub(super) fn new(subscription: &Subscription) -> Self {
        let consumer = &subscription.consumer;
        let status = SubscriptionStatus {
            name: consumer.identity().name().to_string(),
            version: consumer.identity().version(),
            state: SubscriptionState::Starting,
            position: None,
            delivered: 0,
            parked: 0,
            last_error: None,
            caught_up_at: None,
        };
        Self {
            status: watch::Sender::new(status),
            stop: watch::Sender::new(false),
            wake: Notify::new(),
            rebuild: AtomicBool::new(false),
            events: Arc::clone(&subscription.events),
            filter: subscription.filter(),
        }
    }
}

/// The failure of an event that a read could not return: the store found it corrupt
/// but could still build it (see [`StoreError::Corrupt`]). Any other read error is the
/// store's, and is retried as such.
fn unreadable(error: StoreError) -> Result<DeliveryError, StoreError> {
    let event = match &error {
        StoreError::Corrupt {
            event: Some(event), ..
        } => Arc::clone(event),
        _ => return Err(error),
    };
    Ok(DeliveryError::Event {
        event,
        source: Box::new(error),
    })
}

/// Runs `subscription` until it is stopped or fails; its status goes to `shared`.
///
/// However the task ends, the status says so: `Stopped` or `Failed` when this returns
/// (a panic outside any handler included, as [`SubscriptionError::Aborted`]), and
/// `Failed` from [`Ended`] when the future is dropped before (the task cancelled).
pub(super) async fn run(
    subscription: Subscription,
    shared: Arc<Shared>,
) -> Result<(), SubscriptionError> {
    let name = subscription.consumer.identity().name().to_string();
    let span = tracing::info_span!("cqrs.subscription", cqrs.subscription.name = %name);
    let stop = shared.stop.subscribe();
    let mut ended = Ended {
        shared: Arc::clone(&shared),
        done: false,
    };
    let mut runner = Runner {
        sub: subscription,
        shared,
        stop,
        troubles: 0,
        holding: false,
    };
    // Handlers' panics are caught where they are called; this catches the rest (the
    // runner's own code, a store), so that the status never outlives the task.
    let result = match unwind::catch(runner.run().instrument(span)).await {
        Ok(result) => result,
        Err(panic) => {
            tracing::error!(subscription = %name, error = %panic, "subscription task panicked");
            Err(SubscriptionError::Aborted {
                name,
                message: panic.message,
            })
        }
    };
    let aborted = matches!(result, Err(SubscriptionError::Aborted { .. }));
    let message = result.as_ref().err().map(ToString::to_string);
    // Only the lease holder's end is news: a standby that stops must not cover up how
    // the active one stands.
    if runner.holding {
        runner
            .record(match &message {
                None => RecordedState::Stopped,
                Some(error) => RecordedState::Failed {
                    error: error.clone(),
                },
            })
            .await;
    }
    runner.set(|s| {
        s.state = match message {
            None => SubscriptionState::Stopped,
            Some(_) => SubscriptionState::Failed,
        };
        // An event's failure is already there, naming the event; an abort is news.
        if aborted {
            s.last_error = message;
        }
    });
    ended.done = true;
    result
}

/// Marks the status `Failed` if the runner's future is dropped before it returns: the
/// task was cancelled (its runtime shut down, or it was aborted), or it unwound past
/// [`run`]'s own catch.
struct Ended {
    shared: Arc<Shared>,
    done: bool,
}

impl Drop for Ended {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let reason = if std::thread::panicking() {
            "the subscription's task panicked"
        } else {
            "the subscription's task was cancelled (its runtime shut down, or it was aborted)"
        };
        self.shared.status.send_modify(|s| {
            s.state = SubscriptionState::Failed;
            s.last_error = Some(reason.to_owned());
        });
    }
}

/// Why the active part ended without an error.
enum Exit {
    Stopped,
    LeaseLost,
}

/// How a round of the active loop ended.
enum Flow {
    /// Go on with the next round.
    Next,
    /// Leave the active loop.
    Exit(Exit),
}

/// What the read step found.
enum Read {
    /// Events to deliver (not empty), read in a batch of at most `size`.
    Batch {
        events: Vec<Arc<StoredEvent>>,
        size: usize,
    },
    /// An event the store cannot read: its failure.
    Unreadable(DeliveryError),
}

/// Where the active loop is.
struct Cursor {
    /// The read model is to be emptied and the log replayed from the start.
    reset: bool,
    /// The checkpoint.
    position: Position,
    /// How far reads have looked: ahead of the checkpoint when the log holds events this
    /// subscription does not consume.
    scanned: Position,
    /// The event that fails now, and its attempts so far.
    failing: Option<(Uuid, u32)>,
    /// The last event of a batch whose delivery panicked without naming the event at
    /// fault (a consumer that does not catch its handlers' panics): up to it, batches of
    /// one event, so that the panic, if it comes again, names its event.
    narrow: Option<Position>,
    /// When operators' requests were last looked for (`None`: not yet, look now).
    requests_checked: Option<Instant>,
    /// When the lag was last counted while catching up, or the cursor was loaded.
    lag_counted: Instant,
}

struct Runner {
    sub: Subscription,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    /// Consecutive store failures, for the backoff.
    troubles: u32,
    /// Whether it holds the lease (it is the active consumer).
    holding: bool,
}

impl Runner {
    fn set(&self, change: impl FnOnce(&mut SubscriptionStatus)) {
        self.shared.status.send_modify(change);
    }

    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `pause`, or less if asked to stop; returns whether to go on.
    async fn pause(&mut self, pause: Duration) -> bool {
        let stopped = tokio::select! {
            _ = tokio::time::sleep(pause) => false,
            _ = self.stop.wait_for(|stop| *stop) => true,
        };
        !stopped && !self.stopping()
    }

    fn backoff(&self, attempt: u32) -> Duration {
        (self.sub.retry.base_delay + self.sub.retry.pause(attempt)).min(MAX_PAUSE)
    }

    /// Records a failure of the store (or of a reset) and sleeps before the next try;
    /// returns whether to go on. Store failures never stop a subscription: a database
    /// that went away comes back.
    async fn trouble(&mut self, what: &str, error: &(dyn std::fmt::Display + Sync)) -> bool {
        self.troubles += 1;
        let message = format!("{what}: {error}");
        tracing::warn!(error = %message, attempt = self.troubles, "subscription retrying");
        self.set(|s| {
            s.state = SubscriptionState::Retrying;
            s.last_error = Some(message);
        });
        let pause = self.backoff(self.troubles);
        self.pause(pause).await
    }

    /// [`trouble`](Self::trouble), as the round's flow: the next round, or the exit when
    /// asked to stop during the pause.
    async fn retry_later(&mut self, what: &str, error: &(dyn std::fmt::Display + Sync)) -> Flow {
        if self.trouble(what, error).await {
            Flow::Next
        } else {
            Flow::Exit(Exit::Stopped)
        }
    }

    async fn run(&mut self) -> Result<(), SubscriptionError> {
        let name = self.sub.consumer.identity().name().clone();
        loop {
            if self.stopping() {
                return Ok(());
            }
            let consumer = Arc::clone(&self.sub.consumer);
            let lease = match consumer.checkpoints().acquire_lease(&name).await {
                Ok(Some(lease)) => lease,
                Ok(None) => {
                    self.set(|s| s.state = SubscriptionState::Standby);
                    if !self.pause(self.sub.standby_interval).await {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => {
                    if !self.trouble("acquiring the lease", &e).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            tracing::info!("active");
            self.holding = true;
            let exit = self.active(lease.as_ref()).await?;
            drop(lease);
            match exit {
                Exit::Stopped => return Ok(()),
                Exit::LeaseLost => {
                    self.holding = false;
                    tracing::warn!("lease lost; standing by");
                    self.set(|s| {
                        s.state = SubscriptionState::Standby;
                        s.last_error = Some("lease lost: another process may deliver".into());
                    });
                    // Give the standbys their turn rather than taking the lease straight
                    // back: the connection that lost it may be the unhealthy part.
                    if !self.pause(self.sub.standby_interval).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Delivers while holding `lease`: round after round, reset if due, read, deliver,
    /// and settle what the delivery did.
    async fn active(&mut self, lease: &dyn Lease) -> Result<Exit, SubscriptionError> {
        let Some(mut at) = self.load().await else {
            return Ok(Exit::Stopped);
        };
        self.record(RecordedState::Running).await;
        loop {
            if self.stopping() {
                return Ok(Exit::Stopped);
            }
            // Taken before the rebuild check: an empty read proves "caught up" only for
            // callers that came before it, and a `rebuild()` after this instant is seen
            // by this check or the next, before any later read can count.
            let started = Instant::now();
            let flow = match self.serve_requests(&mut at).await {
                Some(flow) => flow,
                None => match self.reset_if_due(&mut at).await {
                    Some(flow) => flow,
                    None if !lease.is_held().await => Flow::Exit(Exit::LeaseLost),
                    None => match self.read_next(&mut at, started).await {
                        Ok(Read::Batch { events, size }) => {
                            match self.deliver_batch(&mut at, &events).await {
                                Ok(delivered) => {
                                    self.settle(&mut at, &events, size, delivered).await?
                                }
                                Err(flow) => flow,
                            }
                        }
                        // An event the store cannot read fails like one the consumer cannot
                        // take: retried, then stopped on or parked.
                        Ok(Read::Unreadable(failure)) => {
                            self.settle(&mut at, &[], 0, Err(failure)).await?
                        }
                        Err(flow) => flow,
                    },
                },
            };
            if let Flow::Exit(exit) = flow {
                return Ok(exit);
            }
        }
    }

    /// Keeps `state` (with the filter) in the store for operators. Only a report: a
    /// store that cannot take it now does not stop the subscription, and is logged.
    async fn record(&self, state: RecordedState) {
        let identity = self.sub.consumer.identity();
        let record = SubscriptionRecord::new(
            identity.checkpoint().clone(),
            identity.filter().clone(),
            state,
        );
        if let Err(e) = self.sub.consumer.checkpoints().record(&record).await {
            tracing::warn!(error = %e, "could not record the subscription's state");
        }
    }

    /// The requests step: at most every [`REQUEST_INTERVAL`], applies the operators'
    /// stored requests, oldest first, each completed once applied. `None` when the round
    /// goes on.
    async fn serve_requests(&mut self, at: &mut Cursor) -> Option<Flow> {
        let interval = REQUEST_INTERVAL.min(self.sub.idle_wait);
        if at.requests_checked.is_some_and(|t| t.elapsed() < interval) {
            return None;
        }
        at.requests_checked = Some(Instant::now());
        let consumer = Arc::clone(&self.sub.consumer);
        let name = consumer.identity().name();
        let pending = match consumer.checkpoints().requests(name).await {
            Ok(pending) => pending,
            Err(e) => {
                return Some(self.retry_later("reading operators' requests", &e).await);
            }
        };
        for pending in pending {
            if let Some(flow) = self.apply_request(at, &pending).await {
                // Not applied (or not wholly): it stays stored, and is tried again.
                at.requests_checked = None;
                return Some(flow);
            }
            if let Err(e) = consumer
                .checkpoints()
                .complete_request(name, pending.id)
                .await
            {
                // Applied but still stored: applying it again is harmless (a retried
                // letter is gone, a reset lands where it is, a rebuild is redone).
                at.requests_checked = None;
                return Some(
                    self.retry_later("completing an operator's request", &e)
                        .await,
                );
            }
        }
        None
    }

    /// Applies one request; `None` when it is done and the round goes on.
    async fn apply_request(&mut self, at: &mut Cursor, pending: &PendingRequest) -> Option<Flow> {
        tracing::info!(request = pending.request.kind(), id = %pending.id, "operator's request");
        match pending.request {
            SubscriptionRequest::Rebuild => {
                at.reset = true;
                let flow = self.reset_if_due(at).await;
                // The reset may have failed: then it is still due, and the request stays.
                if at.reset {
                    return Some(flow.unwrap_or(Flow::Next));
                }
                flow
            }
            SubscriptionRequest::ResetTo(position) => {
                let consumer = Arc::clone(&self.sub.consumer);
                let key = consumer.identity().checkpoint();
                if let Err(e) = consumer.checkpoints().save_checkpoint(key, position).await {
                    return Some(self.retry_later("moving the checkpoint", &e).await);
                }
                tracing::info!(position = %position, "checkpoint moved by an operator");
                at.position = position;
                at.scanned = position;
                at.failing = None;
                at.narrow = None;
                self.set(|s| s.position = Some(position));
                None
            }
            SubscriptionRequest::RetryDeadLetter(event_id) => {
                self.retry_letters(at, Some(event_id)).await
            }
            SubscriptionRequest::RetryDeadLetters => self.retry_letters(at, None).await,
        }
    }

    /// Hands the parked events (the one of `only`, or all, in global order) to the
    /// consumer again, one at a time and without moving the checkpoint (`from` = `to` =
    /// the checkpoint): one that takes effect leaves the dead letters; one that fails
    /// again stays parked with its new error. `None` when all were tried.
    async fn retry_letters(&mut self, at: &mut Cursor, only: Option<Uuid>) -> Option<Flow> {
        let consumer = Arc::clone(&self.sub.consumer);
        let name = consumer.identity().name();
        let letters = match consumer.checkpoints().parked(name).await {
            Ok(letters) => letters,
            Err(e) => {
                return Some(self.retry_later("reading dead letters", &e).await);
            }
        };
        let letters = letters
            .into_iter()
            .filter(|l| only.is_none_or(|id| id == l.event.event_id));
        for letter in letters {
            let event = &letter.event;
            let failure = match self
                .deliver(at.position, std::slice::from_ref(event), at.position)
                .await
            {
                Ok(Ok(())) => None,
                Ok(Err(error @ DeliveryError::Event { .. })) => Some(error.to_string()),
                Err(panic) => Some(panic.to_string()),
                Ok(Err(e @ DeliveryError::CheckpointMoved { .. })) => {
                    tracing::warn!(error = %e, "another process delivered; standing by");
                    return Some(Flow::Exit(Exit::LeaseLost));
                }
                Ok(Err(e)) => {
                    return Some(self.retry_later("retrying a dead letter", &e).await);
                }
            };
            let settled = match &failure {
                None => consumer
                    .checkpoints()
                    .resolve(name, event.event_id)
                    .await
                    .map(drop),
                Some(error) => consumer.checkpoints().park(name, event, error).await,
            };
            if let Err(e) = settled {
                return Some(self.retry_later("settling a retried dead letter", &e).await);
            }
            match failure {
                None => tracing::info!(event_id = %event.event_id, "dead letter retried: handled"),
                Some(error) => {
                    tracing::warn!(event_id = %event.event_id, %error, "dead letter retried: failed again")
                }
            }
        }
        None
    }

    /// Loads the checkpoint, retrying the store; `None` if asked to stop meanwhile.
    async fn load(&mut self) -> Option<Cursor> {
        let consumer = Arc::clone(&self.sub.consumer);
        let key = consumer.identity().checkpoint();
        let loaded = loop {
            match consumer.checkpoints().load_checkpoint(key).await {
                Ok(position) => break position,
                Err(e) => {
                    if !self.trouble("loading the checkpoint", &e).await {
                        return None;
                    }
                }
            }
        };
        self.set(|s| s.position = loaded);
        let position = loaded.unwrap_or(Position::START);
        Some(Cursor {
            // No checkpoint (a new consumer or a new version), or one at the start (a
            // rebuild that was interrupted): the read model is emptied before the replay.
            reset: loaded.is_none_or(|p| p == Position::START),
            position,
            scanned: position,
            failing: None,
            narrow: None,
            requests_checked: None,
            // The first count waits a round of the interval: a catch-up shorter than that
            // never pays one (a count reads what the catch-up is about to read).
            lag_counted: Instant::now(),
        })
    }

    /// The reset step: empties the read model and goes back to the start when a reset is
    /// due (or asked for by [`rebuild`](super::SubscriptionHandle::rebuild)). `None`
    /// when the round goes on.
    async fn reset_if_due(&mut self, at: &mut Cursor) -> Option<Flow> {
        at.reset |= self.shared.rebuild.swap(false, Ordering::SeqCst);
        if !at.reset {
            return None;
        }
        self.set(|s| s.state = SubscriptionState::Rebuilding);
        tracing::info!("resetting the read model");
        if let Err(e) = self.reset().await {
            // Still to do: the flag stays up.
            self.shared.rebuild.store(true, Ordering::SeqCst);
            return Some(self.retry_later("resetting", &e).await);
        }
        let start = match self.start().await {
            Ok(start) => start,
            Err(e) => {
                // The read model is empty and the checkpoint at the start: the reset is
                // done again next round, then the start.
                self.shared.rebuild.store(true, Ordering::SeqCst);
                return Some(self.retry_later("recording where to start", &e).await);
            }
        };
        at.reset = false;
        at.narrow = None;
        at.position = start;
        at.scanned = start;
        self.set(|s| s.position = Some(start));
        None
    }

    /// Where a subscription that was just reset starts ([`StartFrom`]), recorded as its
    /// checkpoint unless that is the start of the log.
    async fn start(&self) -> Result<Position, StoreError> {
        let start = match self.sub.start_from {
            StartFrom::Beginning => return Ok(Position::START),
            StartFrom::Now => self.sub.events.read_horizon().await?,
            StartFrom::After(position) => position,
        };
        if start != Position::START {
            let consumer = &self.sub.consumer;
            let key = consumer.identity().checkpoint();
            consumer.checkpoints().save_checkpoint(key, start).await?;
            tracing::info!(position = %start, "starting after the history");
        }
        Ok(start)
    }

    /// The read step: the next batch after `at.scanned`, or, when there is none, idles
    /// (the subscription is live) and ends the round.
    async fn read_next(&mut self, at: &mut Cursor, started: Instant) -> Result<Read, Flow> {
        let scanned = at.scanned;
        at.narrow = at.narrow.filter(|&end| scanned < end);
        let size = if at.narrow.is_some() {
            1
        } else {
            self.sub.batch_size
        };
        let (events, horizon) = match self.read(at.scanned, size).await {
            Ok(read) => read,
            Err(e) => match unreadable(e) {
                Ok(failure) => return Ok(Read::Unreadable(failure)),
                Err(e) => {
                    return Err(self.retry_later("reading events", &e).await);
                }
            },
        };
        if !events.is_empty() {
            return Ok(Read::Batch { events, size });
        }
        if let Some(horizon) = horizon {
            at.scanned = at.scanned.max(horizon);
        }
        self.troubles = 0;
        self.set(|s| {
            s.state = SubscriptionState::Live;
            s.caught_up_at = Some(started);
        });
        metrics::lag(self.sub.consumer.identity().name(), 0);
        if !self.idle(at.scanned).await {
            return Err(Flow::Exit(Exit::Stopped));
        }
        Err(Flow::Next)
    }

    /// The deliver step: hands `events` (not empty) to the consumer. A panic that names
    /// no event is the failure of the only event, or, in a larger batch, starts
    /// narrowing (batches of one event up to its end) and ends the round.
    async fn deliver_batch(
        &mut self,
        at: &mut Cursor,
        events: &[Arc<StoredEvent>],
    ) -> Result<Result<(), DeliveryError>, Flow> {
        let last = events.last().map_or(at.position, |e| e.position);
        let panic = match self.deliver(at.position, events, last).await {
            Ok(delivered) => return Ok(delivered),
            Err(panic) => panic,
        };
        if let [event] = events {
            return Ok(Err(DeliveryError::Event {
                event: Arc::clone(event),
                source: Box::new(panic),
            }));
        }
        let message = format!(
            "delivering a batch: {panic}; trying its events one at a time to find the one \
             at fault"
        );
        tracing::warn!(error = %message, "consumer panicked");
        self.set(|s| {
            s.state = SubscriptionState::Retrying;
            s.last_error = Some(message);
        });
        at.narrow = Some(last);
        Err(Flow::Next)
    }

    /// Acts on how the delivery of `events` (read with `size`) went.
    async fn settle(
        &mut self,
        at: &mut Cursor,
        events: &[Arc<StoredEvent>],
        size: usize,
        delivered: Result<(), DeliveryError>,
    ) -> Result<Flow, SubscriptionError> {
        match delivered {
            Ok(()) => {
                // What was delivered: never empty here.
                let last = events.last().map_or(at.position, |e| e.position);
                let state = if events.len() == size {
                    SubscriptionState::CatchingUp
                } else {
                    SubscriptionState::Live
                };
                at.position = last;
                at.scanned = last;
                at.failing = None;
                self.troubles = 0;
                self.set(|s| {
                    s.state = state;
                    s.position = Some(last);
                    s.delivered += events.len() as u64;
                });
                tracing::debug!(events = events.len(), "delivered");
                let name = self.sub.consumer.identity().name();
                metrics::handled(name, events.len());
                if state == SubscriptionState::CatchingUp {
                    self.count_lag(at).await;
                } else {
                    // A batch that was not full read everything there was.
                    metrics::lag(name, 0);
                }
                Ok(Flow::Next)
            }
            Err(error @ DeliveryError::Event { .. }) => self.on_failure(at, events, error).await,
            Err(e @ DeliveryError::CheckpointMoved { .. }) => {
                tracing::warn!(error = %e, "another process delivered; standing by");
                self.set(|s| s.last_error = Some(e.to_string()));
                Ok(Flow::Exit(Exit::LeaseLost))
            }
            Err(
                e @ (DeliveryError::Store(_)
                | DeliveryError::Reset(_)
                | DeliveryError::Downstream(_)),
            ) => Ok(self.retry_later("delivering", &e).await),
        }
    }

    /// The on-failure step, for an event of `events` that failed: retried after a pause,
    /// then, out of retries, stopped on or parked by the failure policy.
    async fn on_failure(
        &mut self,
        at: &mut Cursor,
        events: &[Arc<StoredEvent>],
        error: DeliveryError,
    ) -> Result<Flow, SubscriptionError> {
        let DeliveryError::Event { event, .. } = &error else {
            return Ok(Flow::Next);
        };
        let event = Arc::clone(event);
        let attempts = match &mut at.failing {
            Some((id, n)) if *id == event.event_id => {
                *n += 1;
                *n
            }
            _ => {
                at.failing = Some((event.event_id, 1));
                1
            }
        };
        let message = error.to_string();
        self.set(|s| s.last_error = Some(message.clone()));
        if attempts < self.sub.retry.max_attempts {
            tracing::warn!(error = %message, attempts, "event failed; retrying");
            self.set(|s| s.state = SubscriptionState::Retrying);
            let pause = self.backoff(attempts);
            if !self.pause(pause).await {
                return Ok(Flow::Exit(Exit::Stopped));
            }
            return Ok(Flow::Next);
        }
        // Out of retries. The events before it in the batch did not fail: they are
        // delivered first, so that the checkpoint ends right before it. (If that fails,
        // the next round starts over from the checkpoint.)
        let before = events
            .iter()
            .position(|e| e.event_id == event.event_id)
            .unwrap_or(0);
        if before > 0 {
            let Some(to) = self.deliver_prefix(&events[..before], at.position).await else {
                return Ok(Flow::Next);
            };
            at.position = to;
            at.scanned = to;
        }
        match self.sub.on_failure {
            FailurePolicy::Stop => {
                tracing::error!(error = %message, attempts, "event failed; stopping");
                Err(SubscriptionError::Failed {
                    name: self.sub.consumer.identity().name().to_string(),
                    source: error,
                })
            }
            FailurePolicy::Park => {
                if let Some(moved) = self.park(at.position, &event, &message).await {
                    at.position = moved;
                    at.scanned = moved;
                    at.failing = None;
                }
                Ok(Flow::Next)
            }
        }
    }

    /// Reads the next batch (of at most `size` events) after `scanned`. When there is
    /// none, also returns the store's read horizon, checked by a second read: the horizon
    /// is taken after the first read found nothing, and an event at or below it that
    /// became readable in between would otherwise be passed over. So the horizon costs a
    /// round trip only when idle.
    async fn read(
        &self,
        scanned: Position,
        size: usize,
    ) -> Result<(Vec<Arc<StoredEvent>>, Option<Position>), StoreError> {
        let events = &self.sub.events;
        let filter = &self.shared.filter;
        let batch = events.read_all(scanned, size, filter).await?;
        if !batch.is_empty() {
            return Ok((batch, None));
        }
        let horizon = events.read_horizon().await?;
        let batch = events.read_all(scanned, size, filter).await?;
        if !batch.is_empty() {
            return Ok((batch, None));
        }
        Ok((batch, Some(horizon)))
    }

    /// Delivers `prefix`, the events of a batch before one that keeps failing; returns
    /// the new checkpoint, or `None` if that failed too (the next round tries again).
    async fn deliver_prefix(
        &mut self,
        prefix: &[Arc<StoredEvent>],
        from: Position,
    ) -> Option<Position> {
        let to = prefix.last()?.position;
        match self.deliver(from, prefix, to).await {
            Ok(Ok(())) => {
                self.set(|s| {
                    s.position = Some(to);
                    s.delivered += prefix.len() as u64;
                });
                metrics::handled(self.sub.consumer.identity().name(), prefix.len());
                Some(to)
            }
            Ok(Err(e)) => {
                self.trouble("delivering before a failing event", &e).await;
                None
            }
            Err(panic) => {
                self.trouble("delivering before a failing event", &panic)
                    .await;
                None
            }
        }
    }

    /// Sets `event` aside: parks it with `error` and moves the checkpoint past it.
    /// Returns the new checkpoint, or `None` if a step failed (the next round tries
    /// again).
    async fn park(
        &mut self,
        from: Position,
        event: &Arc<StoredEvent>,
        error: &str,
    ) -> Option<Position> {
        let consumer = Arc::clone(&self.sub.consumer);
        tracing::error!(error, event_id = %event.event_id, "event parked");
        if let Err(e) = consumer
            .checkpoints()
            .park(consumer.identity().name(), event, error)
            .await
        {
            self.trouble("parking an event", &e).await;
            return None;
        }
        match self.deliver(from, &[], event.position).await {
            Ok(Ok(())) => {
                self.set(|s| {
                    s.position = Some(event.position);
                    s.parked += 1;
                });
                metrics::parked(consumer.identity().name());
                Some(event.position)
            }
            Ok(Err(e)) => {
                self.trouble("moving past a parked event", &e).await;
                None
            }
            Err(panic) => {
                self.trouble("moving past a parked event", &panic).await;
                None
            }
        }
    }

    /// Counts the events still to handle for the lag gauge, at most every
    /// [`REQUEST_INTERVAL`] (a count is a query, not worth paying per batch); a failure
    /// leaves the gauge as it was, since the next read will meet the store's trouble.
    async fn count_lag(&self, at: &mut Cursor) {
        if at.lag_counted.elapsed() < REQUEST_INTERVAL {
            return;
        }
        at.lag_counted = Instant::now();
        let counted = self
            .sub
            .events
            .count_after(at.scanned, &self.shared.filter, LAG_COUNT_LIMIT)
            .await;
        match counted {
            Ok(events) => metrics::lag(self.sub.consumer.identity().name(), events),
            Err(e) => tracing::debug!(error = %e, "lag not counted"),
        }
    }

    /// The consumer's `deliver`, with a panic in it caught. The consumers of this crate
    /// and of the backends catch their handlers' panics themselves, naming the event;
    /// this is for any other consumer, and for their own code around the handlers.
    async fn deliver(
        &self,
        from: Position,
        events: &[Arc<StoredEvent>],
        to: Position,
    ) -> Result<Result<(), DeliveryError>, Panicked> {
        unwind::catch(self.sub.consumer.deliver(from, events, to)).await
    }

    /// The consumer's `reset`, with a panic in it taken for its failure (retried).
    async fn reset(&self) -> Result<(), DeliveryError> {
        unwind::catch(self.sub.consumer.reset())
            .await
            .unwrap_or_else(|panic| Err(DeliveryError::Reset(Box::new(panic))))
    }

    /// Waits for new events after `position`, a wake-up, or the polling interval;
    /// returns whether to go on.
    async fn idle(&mut self, position: Position) -> bool {
        let events = Arc::clone(&self.sub.events);
        let shared = Arc::clone(&self.shared);
        let waited = tokio::select! {
            waited = events.wait_for_events(position, self.sub.idle_wait) => waited,
            _ = shared.wake.notified() => Ok(true),
            _ = self.stop.wait_for(|stop| *stop) => return false,
        };
        match waited {
            Ok(_) => true,
            Err(e) => self.trouble("waiting for events", &e).await,
        }
    }
}
