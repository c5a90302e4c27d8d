//! The reliability suite (`tests/`): what must hold under racing writers, adversarial
//! commit order, database restarts, killed consumers, bad stored data and bad input, and
//! what the memory store and PostgreSQL must agree on. `docs/src/reliability.md` has the
//! table of every test, its size and its outcome.
//!
//! This library holds what the tests share: where the database is, a store in a fresh
//! schema, the lock that runs one PostgreSQL test at a time within a test binary, and
//! the read model of the failure tests ([`amounts`]).
//!
//! Why one at a time: PostgreSQL global reads only return events of transactions older
//! than every transaction still running in the cluster (that is how they never skip a
//! late committer). Tests running in parallel on one cluster would hold each other's
//! reads back. Test binaries already run one after the other.

pub mod amounts;
pub mod notebook;

use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use cqrs_postgres::sqlx::postgres::{PgConnectOptions, PgPool};
use cqrs_postgres::PgStore;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The database of `DATABASE_URL`; panics (the tests fail, never skip) when it is unset.
pub fn database_url() -> String {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "DATABASE_URL is not set. Run the reliability suite with `scripts/test` (it \
             starts a throwaway PostgreSQL cluster), or set DATABASE_URL to a database where \
             the tests may create schemas."
        ),
    }
}

/// Connection options for `DATABASE_URL`.
pub fn connect_options() -> PgConnectOptions {
    PgConnectOptions::from_str(&database_url())
        .expect("DATABASE_URL is not a valid PostgreSQL URL")
        .application_name("cqrs-reliability")
}

static ONE_AT_A_TIME: LazyLock<Arc<Mutex<()>>> = LazyLock::new(|| Arc::new(Mutex::new(())));

/// Waits for this test binary's other PostgreSQL tests to finish (see the crate docs).
pub async fn exclusive() -> OwnedMutexGuard<()> {
    ONE_AT_A_TIME.clone().lock_owned().await
}

/// A pool of `max_connections` on `DATABASE_URL`, with the recommended settings.
pub async fn pool(max_connections: u32) -> PgPool {
    PgStore::pool_options()
        .max_connections(max_connections)
        .connect_with(connect_options())
        .await
        .expect("cannot connect to DATABASE_URL")
}

/// A random schema name, unique to this call.
pub fn random_schema() -> String {
    format!("r_{}", uuid::Uuid::new_v4().simple())
}

/// A migrated store in a fresh schema, on a pool of `max_connections`.
pub async fn fresh_pg_store(max_connections: u32) -> PgStore {
    let store = PgStore::with_pool_and_schema(pool(max_connections).await, &random_schema())
        .expect("a valid schema name");
    store.migrate().await.expect("migrate");
    store
}

/// A well-mixed 64-bit number from `seed` (SplitMix64's finaliser): the tests' source of
/// "random" sizes, amounts and pauses, reproducible from run to run.
pub fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
