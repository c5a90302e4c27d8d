//! Testing helpers (feature `testing`): given/when/then for aggregates, and the
//! conformance suite every backend runs.
//!
//! Enable it in dev-dependencies only:
//!
//! ```toml
//! [dev-dependencies]
//! cqrs-core = { version = "0.1", features = ["testing"] }
//! ```

pub mod conformance;
mod given;

pub use given::{AggregateTest, Outcome};
