//! The shared conformance suite of cqrs-core, on PostgreSQL: each test gets a fresh schema,
//! and the tests run one at a time (see `common`'s module docs for why).

mod common;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// With a key-encryption key of its own, for the tests of personal data.
async fn fresh_store() -> cqrs_postgres::PgStore {
    let store = common::fresh_pg_store()
        .await
        .with_key_encryption_key(cqrs_core::personal::StaticKek::generate());
    store.check().await.expect("the key is recorded");
    store
}

/// Held by each test, from before its runtime starts until after it is gone. A test that
/// failed poisons the lock; the next one still runs.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

cqrs_core::conformance_tests!(fresh_store, one_at_a_time);
