//! # cqrs-postgres
//!
//! The event, snapshot and checkpoint stores of `cqrs-core` on PostgreSQL 13 or later,
//! through sqlx, with embedded migrations.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use cqrs_postgres::PgStore;
//! let store = PgStore::connect(&std::env::var("DATABASE_URL")?).await?;
//! store.migrate().await?;
//! // `store` is an EventStore + SnapshotStore + CheckpointStore: hand it to the engine.
//! # Ok(()) }
//! ```
//!
//! On the read side it provides leases (one active subscription runner across processes,
//! as session advisory locks), dead letters, lag counted in SQL, and [`PgProjection`]s:
//! read models in the same database, run either by a subscription with exactly-once
//! effect ([`PgStore::transactional`]) or inside each append
//! ([`PgStore::with_inline_projection`]).
//!
//! What it guarantees and how (one round trip per append, a global order that never
//! skips a late committer, the horizon and its monitoring, the dump/restore guard, pool
//! settings, polling) is in the PostgreSQL chapter of the guide, `docs/src/postgres.md`.

#![warn(missing_docs)]

mod error;
mod event_store;
mod held;
mod inline;
mod lease;
mod projection;
mod schema;
mod sql;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{NoConnection, SetupError, CONNECTION_PROBE_TIMEOUT, MIN_SERVER_VERSION_NUM};
pub use lease::LEASE_APPLICATION_NAME;
pub use projection::{PgProjection, Transactional};
pub use schema::{InvalidSchemaName, SchemaName};
pub use store::{HorizonHolder, HorizonLag, PgStore, PollInterval};

// Re-exported so that applications build pools with the same sqlx.
pub use sqlx;
