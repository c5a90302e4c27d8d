//! Runnable applications built on `cqrs-core`: see the `[[example]]` targets.
//! Each uses only the public API; run one with `cargo run --example <name>`.
//!
//! This library holds what every example shares: picking the backend from the
//! environment.

use std::sync::Arc;

use cqrs_core::{CheckpointStore, EventStore, SnapshotStore, StoreHealth};

/// The stores an example runs on: in memory by default, PostgreSQL when `DATABASE_URL`
/// is set. This is the "one line" that picks a backend, made switchable at run time.
#[derive(Clone)]
pub struct Backend {
    /// Where events go.
    pub events: Arc<dyn EventStore>,
    /// Where snapshots go.
    pub snapshots: Arc<dyn SnapshotStore>,
    /// Where subscriptions keep their positions.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// What the store says of its own health (for `/status`).
    pub health: Arc<dyn StoreHealth>,
    /// A description for people (never the connection string: it may hold a password).
    pub description: String,
}

impl Backend {
    /// The in-memory store, or PostgreSQL (migrated, in `schema`) when `DATABASE_URL` is set.
    pub async fn from_env(schema: &str) -> Result<Self, Box<dyn std::error::Error>> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => {
                let mut backend = Self::postgres(&url, schema).await?;
                backend.description = format!("PostgreSQL (schema {schema}, from DATABASE_URL)");
                Ok(backend)
            }
            _ => {
                let store = Arc::new(cqrs_memory::MemoryStore::new());
                Ok(Self {
                    events: store.clone(),
                    snapshots: store.clone(),
                    checkpoints: store.clone(),
                    health: store,
                    description: "the in-memory store (set DATABASE_URL to use PostgreSQL)".into(),
                })
            }
        }
    }

    /// PostgreSQL at `url`, migrated, in `schema`.
    pub async fn postgres(url: &str, schema: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let store = cqrs_postgres::PgStore::connect(url)
            .await?
            .with_schema(schema)?;
        store.migrate().await?;
        let store = Arc::new(store);
        Ok(Self {
            events: store.clone(),
            snapshots: store.clone(),
            checkpoints: store.clone(),
            health: store,
            description: format!("PostgreSQL (schema {schema})"),
        })
    }
}

/// A short suffix unique to this run, so that examples can run again and again on a
/// persistent database without finding last run's accounts already open.
pub fn run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()[24..].to_owned()
}
