//! Runnable applications built on `cqrs-core`: see the `[[example]]` targets.
//! Each uses only the public API; run one with `cargo run --example <name>`.
//!
//! This library holds what every example shares: picking the backend from the
//! environment (on PostgreSQL, with the key-encryption key that seals personal data:
//! `CQRS_KEK`, or a fixed demo key).

use std::sync::Arc;

use cqrs_core::personal::StaticKek;
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

    /// PostgreSQL at `url`, migrated, in `schema`, sealing personal data with the
    /// key-encryption key in `CQRS_KEK` (or, without it, the examples' demo key).
    pub async fn postgres(url: &str, schema: &str) -> Result<Self, Box<dyn std::error::Error>> {
        let kek = if std::env::var_os(KEK_VAR).is_some() {
            StaticKek::from_env(KEK_VAR)?
        } else {
            // For the examples only: a fixed key, so that a second run against the same
            // schema passes the store's start-up check (a random key per run would be
            // refused: the data keys stored by the first run are wrapped with its key).
            // Anyone who reads this file can open data sealed with it.
            eprintln!(
                "Note: personal data is sealed with the examples' demo key; production must \
                 supply its own in {KEK_VAR} (made with `head -c 32 /dev/urandom | base64`)."
            );
            StaticKek::from_bytes(*DEMO_KEK)
        };
        let store = cqrs_postgres::PgStore::connect(url)
            .await?
            .with_schema(schema)?
            .with_key_encryption_key(kek);
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

/// The environment variable that holds the key-encryption key: the standard base64 of
/// 32 bytes.
const KEK_VAR: &str = "CQRS_KEK";

/// The examples' key-encryption key when `CQRS_KEK` is not set. Not a secret: never use it
/// for real data.
const DEMO_KEK: &[u8; 32] = b"cqrs-examples-demo-key-not-real!";

/// A short suffix unique to this run, so that examples can run again and again on a
/// persistent database without finding last run's accounts already open.
pub fn run_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()[24..].to_owned()
}
