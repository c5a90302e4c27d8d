//! An event store: the write side and the log, together.

use super::{EventLog, StreamStore};

/// A store that has both halves: [`StreamStore`], what the engine writes and loads
/// aggregates with, and [`EventLog`], what subscriptions read in global order.
///
/// Nothing to implement: every type that implements both is an `EventStore`. A backend
/// implements the two halves; code that needs only one asks for only that one, so a
/// wrapper (a test probe, a counting store) implements only the half it changes.
///
/// ```
/// use cqrs_core::{EventLog, EventStore, StreamStore};
/// fn engine_side(_: &dyn StreamStore) {}
/// fn log_side(_: &dyn EventLog) {}
/// fn both(store: &dyn EventStore) {
///     engine_side(store);
///     log_side(store);
/// }
/// ```
pub trait EventStore: StreamStore + EventLog {}

impl<S: StreamStore + EventLog + ?Sized> EventStore for S {}
