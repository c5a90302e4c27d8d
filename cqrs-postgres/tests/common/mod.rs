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
use std::time::Duration;

use async_trait::async_trait;
use cqrs_core::{
    CheckpointStore, DeadLetter, EventFilter, EventStore, ExpectedVersion, Lease, NewEvent,
    Position, Snapshot, SnapshotStore, StoreError, StoredEvent, StreamId,
};
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

/// A [`PgStore`] that holds the one-test-at-a-time lock while any clone of it lives.
#[derive(Clone)]
pub struct TestStore {
    pub inner: PgStore,
    _exclusive: Arc<OwnedMutexGuard<()>>,
}

impl TestStore {
    pub async fn new() -> Self {
        let exclusive = Arc::new(exclusive().await);
        Self {
            inner: fresh_pg_store().await,
            _exclusive: exclusive,
        }
    }
}

#[async_trait]
impl EventStore for TestStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner
            .read_stream(stream, from_version, max_count)
            .await
    }
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.read_all(after, max_count, filter).await
    }
    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.wait_for_events(after, timeout).await
    }
    async fn read_horizon(&self) -> Result<Position, StoreError> {
        self.inner.read_horizon().await
    }
    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: uuid::Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.read_by_command(stream, command_id).await
    }
    async fn count_after(
        &self,
        after: Position,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.inner.count_after(after, filter, limit).await
    }
}

#[async_trait]
impl SnapshotStore for TestStore {
    async fn load_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream).await
    }
    async fn save_snapshot(&self, stream: &StreamId, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(stream, snapshot).await
    }
}

#[async_trait]
impl CheckpointStore for TestStore {
    async fn load_checkpoint(&self, name: &str) -> Result<Option<Position>, StoreError> {
        self.inner.load_checkpoint(name).await
    }
    async fn save_checkpoint(&self, name: &str, position: Position) -> Result<(), StoreError> {
        self.inner.save_checkpoint(name, position).await
    }
    async fn acquire_lease(&self, name: &str) -> Result<Option<Box<dyn Lease>>, StoreError> {
        self.inner.acquire_lease(name).await
    }
    async fn park(&self, name: &str, event: &StoredEvent, error: &str) -> Result<(), StoreError> {
        self.inner.park(name, event, error).await
    }
    async fn parked(&self, name: &str) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.parked(name).await
    }
}
