//! Runnable applications built on `cqrs-core`: see the `[[example]]` targets.
//! Each uses only the public API; run one with `cargo run --example <name>`.

/// The README's code, compiled and run as a doc-test so that it cannot drift.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The guide's quickstart, compiled and run as a doc-test.
#[doc = include_str!("../docs/src/quickstart.md")]
#[cfg(doctest)]
pub struct QuickstartDoctests;
