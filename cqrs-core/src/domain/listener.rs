//! The base of every read-side trait: something fed events from the log.

use super::DomainEvent;

/// Something fed events from the log: a [projection](crate::Projection), a
/// [process manager](crate::ProcessManager), or a backend's transactional projection.
///
/// It says who it is and what it reads; the traits built on it say what it does with
/// each event. The framework keys everything it keeps for a listener (a subscription's
/// lease, checkpoint and dead letters) by [`NAME`](Self::NAME), and uses the two lists to
/// filter where the events are (in SQL on PostgreSQL) before anything is decoded.
///
/// A listener is not run directly: a subscription feeds it through a consumer
/// ([`Project`](crate::subscription::Project), [`React`](crate::subscription::React), or
/// a backend's), and an engine or a store can run a projection inline
/// ([`inline`](crate::inline)). The derives implement this trait together with the one
/// built on it.
pub trait Listener: Send + Sync + 'static {
    /// Stable name: the key of its subscription's lease, checkpoint and dead letters. It
    /// must be a valid identifier ([`ident`](crate::ident)), and so must its checkpoint's
    /// `NAME@vVERSION`: the derives check the name at compile time, the consumers both
    /// when they are built.
    const NAME: &'static str;

    /// The events it reads.
    type Event: DomainEvent;
    /// Why handling an event failed (a storage error, or a command's).
    type Error: std::error::Error + Send + Sync + 'static;

    /// The event types it consumes; by default all of [`Self::Event`].
    fn event_types() -> Vec<&'static str> {
        Self::Event::event_type_names()
    }

    /// The stream (aggregate) types it consumes; by default all of them. Restrict it when
    /// two aggregates use the same event type name for different data.
    fn stream_types() -> Vec<&'static str> {
        Vec::new()
    }
}
