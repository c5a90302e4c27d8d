//! Operators' requests to a bus consumer: retry its dead letters.
//!
//! A bus consumer keeps its dead letters in a checkpoint store like a subscription does,
//! so an operator asks for a retry the same way ([`CheckpointStore::request`]). It has
//! no lease (the broker shares its partitions out), so several processes may serve the
//! same listener: each request is claimed first (the one process whose
//! [`complete_request`](CheckpointStore::complete_request) removed it applies it), which
//! makes a retry at most once per request. A process that dies between the claim and the
//! retry leaves the letter parked, for the operator to ask again. Requests that only a
//! subscription can apply (moving a checkpoint, a rebuild) are left for it: a bus
//! consumer's position is the broker's.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use super::Receive;
use crate::subscription::DeliveryError;
use crate::{CheckpointStore, StoreError, SubscriptionRequest};

/// Serves the retry requests of `receiver`'s listener until `stopped` turns true: every
/// `interval`, each pending retry request is claimed, and its parked events are handed
/// to the listener again ([`Receive::redeliver`]), one at a time in global order; one
/// that takes effect leaves the dead letters, one that fails again stays parked with its
/// new error. A store that fails is logged and tried again at the next interval.
pub async fn serve_requests(
    receiver: Arc<dyn Receive>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow() {
        if let Err(error) = serve_once(receiver.as_ref()).await {
            tracing::warn!(%error, "bus consumer: serving operators' requests failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stopped.changed() => {}
        }
    }
}

/// One look at the pending requests.
async fn serve_once(receiver: &dyn Receive) -> Result<(), StoreError> {
    let store = receiver.dead_letters();
    let name = receiver.identity().name();
    for pending in store.requests(name).await? {
        let only = match pending.request {
            SubscriptionRequest::RetryDeadLetter(event_id) => Some(event_id),
            SubscriptionRequest::RetryDeadLetters => None,
            _ => continue,
        };
        if !store.complete_request(name, pending.id).await? {
            continue; // another process claimed it
        }
        tracing::info!(request = pending.request.kind(), id = %pending.id, "operator's request");
        retry(receiver, store, only).await?;
    }
    Ok(())
}

/// Hands the parked events (the one of `only`, or all) to the listener again.
async fn retry(
    receiver: &dyn Receive,
    store: &dyn CheckpointStore,
    only: Option<Uuid>,
) -> Result<(), StoreError> {
    let name = receiver.identity().name();
    let letters = store.parked(name).await?;
    let letters = letters
        .iter()
        .filter(|l| only.is_none_or(|id| id == l.event.event_id));
    for letter in letters {
        let event = Arc::clone(&letter.event);
        match crate::unwind::catch(receiver.redeliver(&event)).await {
            Ok(Ok(())) => {
                store.resolve(name, event.event_id).await?;
                tracing::info!(event_id = %event.event_id, "dead letter retried: handled");
            }
            Ok(Err(error @ DeliveryError::Event { .. })) => {
                let error = error.to_string();
                tracing::warn!(event_id = %event.event_id, %error, "dead letter retried: failed again");
                store.park(name, &event, &error).await?;
            }
            Err(panic) => {
                let error = panic.to_string();
                tracing::warn!(event_id = %event.event_id, %error, "dead letter retried: failed again");
                store.park(name, &event, &error).await?;
            }
            // The read model's store is down: the letter stays as it was; the request was
            // claimed, so the operator asks again.
            Ok(Err(DeliveryError::Store(error))) => return Err(error),
            Ok(Err(other)) => return Err(StoreError::Unavailable(Box::new(other))),
        }
    }
    Ok(())
}
