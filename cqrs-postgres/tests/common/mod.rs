//! Shared set-up of the PostgreSQL tests: a fresh schema per store, and one test at a time
//! per test binary.
//!
//! Why one at a time: global reads only return events of transactions older than every
//! transaction still running in the whole cluster (that is how they never skip a late
//! committer). Tests running in parallel on one cluster would hold each other's reads
//! back, so a test that appends and then reads everything could see nothing yet. That is
//! the intended behaviour of the store, not a bug; tests are serialised to be
//! deterministic. (Test binaries already run one after the other.)

#![allow(dead_code)] // each test binary uses part of this module

use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use cqrs_postgres::sqlx::postgres::{PgConnectOptions, PgPool};
use cqrs_postgres::PgStore;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The database of `DATABASE_URL`; fails (never skips) when it is unset.
pub fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set. Run the PostgreSQL tests with `scripts/test` (it starts \
             a throwaway PostgreSQL cluster), or set DATABASE_URL to a database where the \
             tests may create schemas."
        ),
    }
}

pub fn connect_options() -> PgConnectOptions {
    PgConnectOptions::from_str(&database_url())
        .expect("DATABASE_URL is not a valid PostgreSQL URL")
        .application_name("cqrs-postgres-tests")
}

static ONE_AT_A_TIME: LazyLock<Arc<Mutex<()>>> = LazyLock::new(|| Arc::new(Mutex::new(())));

/// Waits for this binary's other tests to finish (see the module docs).
pub async fn exclusive() -> OwnedMutexGuard<()> {
    ONE_AT_A_TIME.clone().lock_owned().await
}

/// A pool on `DATABASE_URL` with the recommended settings.
pub async fn pool() -> PgPool {
    PgStore::pool_options()
        .max_connections(8)
        .connect_with(connect_options())
        .await
        .expect("cannot connect to DATABASE_URL")
}

/// A random schema name, unique to this call.
pub fn random_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}

/// A migrated store in a fresh schema.
pub async fn fresh_pg_store() -> PgStore {
    let store =
        PgStore::with_pool_and_schema(pool().await, &random_schema()).expect("a valid schema name");
    store.migrate().await.expect("migrate");
    store
}

/// The one event type of the store-level tests (a hand-written `DomainEvent`, so that
/// these tests depend on no derive).
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Bank {
    Deposited { amount: u64 },
}

impl cqrs_core::DomainEvent for Bank {
    const EVENT_TYPES: &'static [cqrs_core::EventTypeInfo] = &[cqrs_core::EventTypeInfo {
        name: "Deposited",
        version: 1,
    }];
    fn event_type(&self) -> &'static str {
        "Deposited"
    }
    fn encode(&self) -> Result<serde_json::Value, cqrs_core::codec::JsonError> {
        cqrs_core::codec::serde_enum::encode(self)
    }
    fn decode(event_type: &str, data: &serde_json::Value) -> Result<Self, cqrs_core::PayloadError> {
        cqrs_core::codec::serde_enum::decode(event_type, data)
    }
}

/// A two-thread runtime for the tests that hold the binary-wide lock across awaits.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
