//! The typed traits that application code implements (or derives): events, commands,
//! aggregates, and the listeners fed from the log (projections; process managers are in
//! [`subscription`](crate::subscription)).

mod aggregate;
mod command;
mod event;
mod listener;
mod projection;
mod upcaster;

// Called by code that `#[derive(DomainEvent)]` generates for `#[event(flatten)]`,
// through `crate::__private`.
pub(crate) mod flatten;

pub use aggregate::Aggregate;
pub use command::Command;
pub use event::{DomainEvent, EventTypeInfo, PayloadError};
pub use listener::Listener;
pub use projection::Projection;
pub use upcaster::Upcaster;
