//! Derive macros for `cqrs-core`.
//!
//! Use them through `cqrs-core`, which re-exports them behind its default `derive` feature.
