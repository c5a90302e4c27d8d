//! The subscription's task: lease, checkpoint, read, deliver, retry, park.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use super::handle::Shared;
use super::{
    DeliveryError, FailurePolicy, Subscription, SubscriptionError, SubscriptionState,
    SubscriptionStatus,
};
use crate::{Lease, Position, StoreError, StoredEvent};

/// The longest pause between two tries after a failure.
const MAX_PAUSE: Duration = Duration::from_secs(5);

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
pub(super) async fn run(
    subscription: Subscription,
    shared: Arc<Shared>,
) -> Result<(), SubscriptionError> {
    let span = tracing::info_span!("cqrs.subscription", name = subscription.consumer.name());
    let stop = shared.stop.subscribe();
    let mut runner = Runner {
        sub: subscription,
        shared,
        stop,
        troubles: 0,
    };
    let result = runner.run().instrument(span).await;
    let state = match &result {
        Ok(()) => SubscriptionState::Stopped,
        Err(_) => SubscriptionState::Failed,
    };
    runner.set(|s| s.state = state);
    result
}

/// Why the active part ended without an error.
enum Exit {
    Stopped,
    LeaseLost,
}

struct Runner {
    sub: Subscription,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    /// Consecutive store failures, for the backoff.
    troubles: u32,
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

    async fn run(&mut self) -> Result<(), SubscriptionError> {
        let name = self.sub.consumer.name().to_owned();
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
            let exit = self.active(lease.as_ref()).await?;
            drop(lease);
            match exit {
                Exit::Stopped => return Ok(()),
                Exit::LeaseLost => {
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

    /// Delivers while holding `lease`.
    async fn active(&mut self, lease: &dyn Lease) -> Result<Exit, SubscriptionError> {
        let consumer = Arc::clone(&self.sub.consumer);
        let key = consumer.checkpoint_name();
        let loaded = loop {
            match consumer.checkpoints().load_checkpoint(&key).await {
                Ok(position) => break position,
                Err(e) => {
                    if !self.trouble("loading the checkpoint", &e).await {
                        return Ok(Exit::Stopped);
                    }
                }
            }
        };
        self.set(|s| s.position = loaded);
        // No checkpoint (a new consumer or a new version), or one at the start (a rebuild
        // that was interrupted): the read model is emptied before the replay.
        let mut reset = loaded.is_none_or(|p| p == Position::START);
        // `position` is the checkpoint; `scanned` is how far reads have looked, which
        // runs ahead of it when the log holds events this subscription does not consume.
        let mut position = loaded.unwrap_or(Position::START);
        let mut scanned = position;
        let mut failing: Option<(Uuid, u32)> = None;
        loop {
            if self.stopping() {
                return Ok(Exit::Stopped);
            }
            // Taken before the rebuild check: an empty read proves "caught up" only for
            // callers that came before it, and a `rebuild()` after this instant is seen
            // by this check or the next, before any later read can count.
            let started = Instant::now();
            reset |= self.shared.rebuild.swap(false, Ordering::SeqCst);
            if reset {
                self.set(|s| s.state = SubscriptionState::Rebuilding);
                tracing::info!("resetting the read model");
                if let Err(e) = consumer.reset().await {
                    // Still to do: the flag stays up.
                    self.shared.rebuild.store(true, Ordering::SeqCst);
                    if !self.trouble("resetting", &e).await {
                        return Ok(Exit::Stopped);
                    }
                    continue;
                }
                reset = false;
                position = Position::START;
                scanned = position;
                self.set(|s| s.position = Some(Position::START));
            }
            if !lease.is_held().await {
                return Ok(Exit::LeaseLost);
            }
            let (batch, delivered) = match self.read(scanned).await {
                Ok((batch, horizon)) => {
                    let Some(last) = batch.last().map(|e| e.position) else {
                        if let Some(horizon) = horizon {
                            scanned = scanned.max(horizon);
                        }
                        self.troubles = 0;
                        self.set(|s| {
                            s.state = SubscriptionState::Live;
                            s.caught_up_at = Some(started);
                        });
                        if !self.idle(scanned).await {
                            return Ok(Exit::Stopped);
                        }
                        continue;
                    };
                    let delivered = consumer.deliver(position, &batch, last).await;
                    (batch, delivered)
                }
                Err(e) => match unreadable(e) {
                    // An event the store cannot read fails like one the consumer cannot
                    // take: retried, then stopped on or parked.
                    Ok(failure) => (Vec::new(), Err(failure)),
                    Err(e) => {
                        if !self.trouble("reading events", &e).await {
                            return Ok(Exit::Stopped);
                        }
                        continue;
                    }
                },
            };
            match delivered {
                Ok(()) => {
                    // What was delivered: never empty here.
                    let last = batch.last().map_or(position, |e| e.position);
                    let state = if batch.len() == self.sub.batch_size {
                        SubscriptionState::CatchingUp
                    } else {
                        SubscriptionState::Live
                    };
                    position = last;
                    scanned = last;
                    failing = None;
                    self.troubles = 0;
                    self.set(|s| {
                        s.state = state;
                        s.position = Some(last);
                        s.delivered += batch.len() as u64;
                    });
                    tracing::debug!(events = batch.len(), "delivered");
                }
                Err(error @ DeliveryError::Event { .. }) => {
                    let DeliveryError::Event { event, .. } = &error else {
                        continue;
                    };
                    let event = Arc::clone(event);
                    let attempts = match &mut failing {
                        Some((id, n)) if *id == event.event_id => {
                            *n += 1;
                            *n
                        }
                        _ => {
                            failing = Some((event.event_id, 1));
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
                            return Ok(Exit::Stopped);
                        }
                        continue;
                    }
                    // Out of retries. The events before it in the batch did not fail:
                    // they are delivered first, so that the checkpoint ends right before
                    // it. (If that fails, the next round starts over from the checkpoint.)
                    let before = batch
                        .iter()
                        .position(|e| e.event_id == event.event_id)
                        .unwrap_or(0);
                    if before > 0 {
                        let Some(to) = self.deliver_prefix(&batch[..before], position).await else {
                            continue;
                        };
                        position = to;
                        scanned = to;
                    }
                    match self.sub.on_failure {
                        FailurePolicy::Stop => {
                            tracing::error!(error = %message, attempts, "event failed; stopping");
                            return Err(SubscriptionError::Failed {
                                name: consumer.name().to_owned(),
                                source: error,
                            });
                        }
                        FailurePolicy::Park => {
                            if let Some(moved) = self.park(position, &event, &message).await {
                                position = moved;
                                scanned = moved;
                                failing = None;
                            }
                        }
                    }
                }
                Err(e @ DeliveryError::CheckpointMoved { .. }) => {
                    tracing::warn!(error = %e, "another process delivered; standing by");
                    self.set(|s| s.last_error = Some(e.to_string()));
                    return Ok(Exit::LeaseLost);
                }
                Err(e @ (DeliveryError::Store(_) | DeliveryError::Reset(_))) => {
                    if !self.trouble("delivering", &e).await {
                        return Ok(Exit::Stopped);
                    }
                }
            }
        }
    }

    /// Reads the next batch after `scanned`. When there is none, also returns the store's
    /// read horizon, checked by a second read: the horizon is taken after the first read
    /// found nothing, and an event at or below it that became readable in between would
    /// otherwise be passed over. So the horizon costs a round trip only when idle.
    async fn read(
        &self,
        scanned: Position,
    ) -> Result<(Vec<Arc<StoredEvent>>, Option<Position>), StoreError> {
        let events = &self.sub.events;
        let filter = self.sub.consumer.filter();
        let batch = events
            .read_all(scanned, self.sub.batch_size, filter)
            .await?;
        if !batch.is_empty() {
            return Ok((batch, None));
        }
        let horizon = events.read_horizon().await?;
        let batch = events
            .read_all(scanned, self.sub.batch_size, filter)
            .await?;
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
        match self.sub.consumer.deliver(from, prefix, to).await {
            Ok(()) => {
                self.set(|s| {
                    s.position = Some(to);
                    s.delivered += prefix.len() as u64;
                });
                Some(to)
            }
            Err(e) => {
                self.trouble("delivering before a failing event", &e).await;
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
            .park(consumer.name(), event, error)
            .await
        {
            self.trouble("parking an event", &e).await;
            return None;
        }
        match consumer.deliver(from, &[], event.position).await {
            Ok(()) => {
                self.set(|s| {
                    s.position = Some(event.position);
                    s.parked += 1;
                });
                Some(event.position)
            }
            Err(e) => {
                self.trouble("moving past a parked event", &e).await;
                None
            }
        }
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
