//! The shared conformance suite, on the memory store.

async fn fresh_store() -> cqrs_memory::MemoryStore {
    cqrs_memory::MemoryStore::new()
}

cqrs_core::conformance_tests!(fresh_store);
