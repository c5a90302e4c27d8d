//! The typed traits that application code implements (or derives): events, commands,
//! aggregates and projections.

mod aggregate;
mod command;
mod event;
mod projection;
mod upcaster;

// Called by code that `#[derive(DomainEvent)]` generates for `#[event(flatten)]`,
// through `crate::__private`.
pub(crate) mod flatten;

pub use aggregate::Aggregate;
pub use command::Command;
pub use event::{DomainEvent, EventTypeInfo, PayloadError};
pub use projection::Projection;
pub use upcaster::Upcaster;
