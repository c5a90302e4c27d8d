//! The projection (read model) trait.

use std::future::Future;

use super::Listener;
use crate::{Envelope, StreamId};

/// A read model: a view of events shaped for queries.
///
/// A projection is a [`Listener`] (a stable name, the events it reads) with a version:
/// bump the version when the view's shape or logic changes, and the view is rebuilt from
/// the start of history. `handle` takes `&self`: the projection owns its storage (a lock
/// around a map, a database pool), which lets the application query it while events
/// flow in.
///
/// Delivery is at-least-once, in commit order: a handler should be idempotent, for
/// example by ignoring events at or below the stream version it has already seen.
///
/// `reset` empties the view: a subscription calls it before replaying history into the
/// view, when the view is new, when its version changed, or when a rebuild is asked
/// for.
pub trait Projection: Listener {
    /// Version of the view's logic; a change means rebuild. With the
    /// [`NAME`](Listener::NAME), it makes the checkpoint's key `NAME@vVERSION`.
    const VERSION: u32 = 1;

    /// Updates the view with one event.
    fn handle(
        &self,
        event: &Envelope<Self::Event>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Empties the view, before it is built again from the first event.
    fn reset(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stream `stream`, of a type the view reads, was deleted
    /// ([`StreamStore::delete_stream`](crate::StreamStore::delete_stream)): the view may
    /// drop what it keeps of it. Called once, when the subscription reaches the stream's
    /// tombstone, in the global order with the events. By default the view keeps what it
    /// has (the derive's `#[projection(on_delete)]` forwards to an inherent
    /// `async fn stream_deleted`).
    fn stream_deleted(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = stream;
        std::future::ready(Ok(()))
    }
}
