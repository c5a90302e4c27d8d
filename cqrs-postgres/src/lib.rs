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
//! The source is laid out like `cqrs-core`'s store: one file per trait (`stream_store.rs`,
//! the append path and stream reads; `event_log.rs`, the global reads, horizon, lag and
//! waiting; `snapshot_store.rs`; `checkpoint_store.rs`, with subscription leases in
//! `lease.rs`), the rows they read in `row.rs`, the SQL text in `sql.rs`, the connections
//! the store keeps between operations in `connection.rs`, construction and migrations in
//! `store.rs`, and the projections in `projection.rs` (transactional) and `inline.rs`.
//!
//! What it guarantees and how (one round trip per append, a global order that never
//! skips a late committer, the horizon and its monitoring, the dump/restore guard, pool
//! settings, polling) is in the PostgreSQL chapter of the guide, `docs/src/postgres.md`.

#![warn(missing_docs)]

mod checkpoint_store;
mod connection;
mod error;
mod event_log;
mod inline;
mod lease;
mod personal_data;
mod projection;
mod receive;
mod row;
mod schema;
mod snapshot_store;
mod sql;
mod store;
mod store_health;
mod stream_store;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{NoConnection, SetupError, CONNECTION_PROBE_TIMEOUT, MIN_SERVER_VERSION_NUM};
pub use lease::LEASE_APPLICATION_NAME;
pub use projection::{PgProjection, Transactional};
pub use schema::{InvalidSchemaName, SchemaName};
pub use store::{HorizonHolder, HorizonLag, PgStore, PollInterval};

// Re-exported so that applications build pools with the same sqlx.
pub use sqlx;

/// `#[derive(PgProjection)]` (feature `derive`, on by default), re-exported from
/// `cqrs-derive`: writes the [`Listener`](cqrs_core::Listener) and [`PgProjection`]
/// impls from inherent `async fn handle(&self, tx, event)` and `async fn reset(&self,
/// tx)`. See the [`cqrs_derive`] crate documentation for its attributes.
#[cfg(feature = "derive")]
pub use cqrs_derive::PgProjection;

/// What the code that `#[derive(PgProjection)]` generates needs: not public API, no
/// stability promise. Generated code reaches it by absolute path, so the application
/// names neither crate itself.
#[doc(hidden)]
pub mod __private {
    pub use cqrs_core;
    pub use sqlx::PgConnection;
}
