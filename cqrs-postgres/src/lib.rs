//! PostgreSQL stores for `cqrs-core` (in progress: see the PostgreSQL issue).
