//! The shared conformance suite of cqrs-core, on PostgreSQL: each test gets a fresh schema.

mod common;

async fn fresh_store() -> common::TestStore {
    common::TestStore::new().await
}

cqrs_core::conformance_tests!(fresh_store);
