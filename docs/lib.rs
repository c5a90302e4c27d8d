//! The guide (`docs/src/*.md`, an mdBook) and the README, compiled and run as doc-tests:
//! every chapter is the documentation of one item below, so `cargo test -p cqrs-guide
//! --doc` builds and runs each of its Rust code blocks. A block the reader should not run
//! is marked `no_run` (compiled only) or `ignore` (with a reason next to it).

/// The README.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct Readme;

/// `docs/src/why.md`.
#[doc = include_str!("src/why.md")]
#[cfg(doctest)]
pub struct Why;

/// `docs/src/quickstart.md`.
#[doc = include_str!("src/quickstart.md")]
#[cfg(doctest)]
pub struct Quickstart;

/// `docs/src/events.md`.
#[doc = include_str!("src/events.md")]
#[cfg(doctest)]
pub struct Events;

/// `docs/src/commands-and-aggregates.md`.
#[doc = include_str!("src/commands-and-aggregates.md")]
#[cfg(doctest)]
pub struct CommandsAndAggregates;

/// `docs/src/engine.md`.
#[doc = include_str!("src/engine.md")]
#[cfg(doctest)]
pub struct Engine;

/// `docs/src/lifecycle.md`.
#[doc = include_str!("src/lifecycle.md")]
#[cfg(doctest)]
pub struct Lifecycle;

/// `docs/src/operations.md`.
#[doc = include_str!("src/operations.md")]
#[cfg(doctest)]
pub struct Operations;

/// `docs/src/bus.md`.
#[doc = include_str!("src/bus.md")]
#[cfg(doctest)]
pub struct Bus;

/// `docs/src/read-side.md`.
#[doc = include_str!("src/read-side.md")]
#[cfg(doctest)]
pub struct ReadSide;

/// `docs/src/process-managers.md`.
#[doc = include_str!("src/process-managers.md")]
#[cfg(doctest)]
pub struct ProcessManagers;

/// `docs/src/testing.md`.
#[doc = include_str!("src/testing.md")]
#[cfg(doctest)]
pub struct Testing;

/// `docs/src/postgres.md`.
#[doc = include_str!("src/postgres.md")]
#[cfg(doctest)]
pub struct Postgres;

/// `docs/src/memory.md`.
#[doc = include_str!("src/memory.md")]
#[cfg(doctest)]
pub struct Memory;

/// `docs/src/performance.md`.
#[doc = include_str!("src/performance.md")]
#[cfg(doctest)]
pub struct Performance;

/// `docs/src/reliability.md`.
#[doc = include_str!("src/reliability.md")]
#[cfg(doctest)]
pub struct Reliability;

/// `docs/src/scaling.md`.
#[doc = include_str!("src/scaling.md")]
#[cfg(doctest)]
pub struct Scaling;

/// `docs/src/migrating-from-cqrs-es.md`.
#[doc = include_str!("src/migrating-from-cqrs-es.md")]
#[cfg(doctest)]
pub struct MigratingFromCqrsEs;

/// `docs/src/observability.md`.
#[doc = include_str!("src/observability.md")]
#[cfg(doctest)]
pub struct Observability;

/// `docs/src/derive.md`.
#[doc = include_str!("src/derive.md")]
#[cfg(doctest)]
pub struct Derive;

#[cfg(test)]
mod references {
    /// The first column of the chapter's table rows that start with `` | `prefix ``.
    fn names_in_tables(chapter: &str, prefix: &str) -> Vec<String> {
        let start = format!("| `{prefix}");
        chapter
            .lines()
            .filter(|line| line.starts_with(&start))
            .filter_map(|line| line.split('`').nth(1).map(str::to_owned))
            .collect()
    }

    const OBSERVABILITY: &str = include_str!("src/observability.md");

    #[test]
    fn the_observability_chapter_lists_every_span_and_nothing_else() {
        let code: Vec<&str> = cqrs_core::observe::SPANS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names_in_tables(OBSERVABILITY, "cqrs."), code);
    }

    #[test]
    fn the_observability_chapter_lists_every_metric_and_nothing_else() {
        let code: Vec<&str> = cqrs_core::observe::metrics::ALL
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(names_in_tables(OBSERVABILITY, "cqrs_"), code);
    }

    #[test]
    fn the_engine_chapter_leaves_the_span_reference_to_the_observability_chapter() {
        let engine = include_str!("src/engine.md");
        assert!(
            names_in_tables(engine, "cqrs.").is_empty(),
            "a second span list"
        );
        assert!(engine.contains("(observability.md#spans)"));
    }
}
