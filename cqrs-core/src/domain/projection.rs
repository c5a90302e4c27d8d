//! The projection (read model) trait.

use std::future::Future;

use super::DomainEvent;
use crate::Envelope;

/// A read model: a view of events shaped for queries.
///
/// A projection has a stable name (the key of its checkpoint) and a version: bump the
/// version when the view's shape or logic changes, and the view is rebuilt from the start
/// of history. It lists the event types it consumes, so that a store can filter before
/// decoding. `handle` takes `&self`: the projection owns its storage (a lock around a
/// map, a database pool), which lets the application query it while events flow in.
///
/// Delivery is at-least-once, in commit order: a handler should be idempotent, for
/// example by ignoring events at or below the stream version it has already seen.
///
/// `reset` empties the view: a subscription calls it before replaying history into the
/// view, when the view is new, when its version changed, or when a rebuild is asked
/// for.
pub trait Projection: Send + Sync + 'static {
    /// Stable name of the view. It must be a valid identifier, and so must its
    /// checkpoint's `NAME@vVERSION` ([`ident`](crate::ident)): the derive checks the name
    /// at compile time, [`Project::new`](crate::subscription::Project::new) both.
    const NAME: &'static str;
    /// Version of the view's logic; a change means rebuild.
    const VERSION: u32 = 1;

    /// The events it reads.
    type Event: DomainEvent;
    /// Why handling an event failed (a storage error, usually).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The event types it consumes; by default all of [`Self::Event`].
    fn event_types() -> Vec<&'static str> {
        Self::Event::event_type_names()
    }

    /// Updates the view with one event.
    fn handle(
        &self,
        event: &Envelope<Self::Event>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Empties the view, before it is built again from the first event.
    fn reset(&self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
