//! The backend conformance suite: the guarantees of the store traits, as tests.
//!
//! A backend is correct when it passes all of them. Each guarantee is a public async
//! function taking a fresh, empty store; [`conformance_tests!`](crate::conformance_tests)
//! turns the whole list into one `#[test]` per guarantee in the backend's own test crate:
//!
//! ```ignore
//! // cqrs-memory/tests/conformance.rs
//! async fn fresh_store() -> cqrs_memory::MemoryStore {
//!     cqrs_memory::MemoryStore::new()
//! }
//! cqrs_core::conformance_tests!(fresh_store);
//! ```
//!
//! The store must be empty and isolated from the other tests' stores (a database schema
//! per test on PostgreSQL), because the tests run in parallel and some read everything.

mod append;
mod archive;
mod checkpoint;
mod codec;
pub(crate) mod domain;
mod engine;
mod health;
mod ident;
mod image;
mod lifecycle;
mod listener;
mod operator;
mod panic;
mod personal;
mod probe;
mod race;
mod read;
mod request;
mod snapshot;
mod storable;
mod subscription;
mod subscription_store;
mod wait;

use std::future::Future;

use crate::{
    CheckpointStore, EventStore, Metadata, NewEvent, SnapshotStore, StreamId, SubscriptionName,
};

pub use append::{
    append_assigns_contiguous_versions, append_is_atomic, conflict_names_stream_and_versions,
    duplicate_event_ids_are_refused, empty_append_is_refused, expected_version_semantics,
};
pub use archive::{
    an_archived_stream_is_out_of_the_hot_path_until_unarchived,
    archiving_racing_appends_loses_nothing_acknowledged,
};
pub use checkpoint::{checkpoints_save_load_and_reset, saved_checkpoints_are_listed_by_name};
pub use codec::{
    envelope_round_trips, stored_data_is_never_rewritten, undecodable_events_are_typed_errors,
};
pub use engine::{
    a_command_racing_its_own_repeat_is_applied_once, commands_expecting_a_version_run_only_at_it,
    engine_retries_conflicts_without_losing_commands, engine_snapshots_and_temporal_loads,
};
pub use health::a_store_reports_its_health;
pub use ident::{identifiers_are_stored_faithfully, invalid_identifiers_are_refused};
pub use image::{
    a_stale_image_is_caught_and_decided_again, caching_engines_interleaving_lose_nothing,
};
pub use lifecycle::{
    a_delete_racing_appends_loses_nothing_acknowledged,
    a_deleted_stream_takes_no_more_events_and_its_subscribers_hear_of_it,
    a_purged_stream_keeps_only_its_tombstone, a_stream_truncated_under_its_snapshot_still_loads,
};
pub use listener::listeners_read_only_the_stream_types_they_list;
pub use operator::{
    a_stream_reads_backwards_from_its_end, events_are_found_by_correlation_id,
    streams_are_listed_by_type_and_paged, the_log_reads_backwards_from_a_position,
};
pub use panic::{
    a_consumer_that_lets_a_panic_escape_has_the_right_event_parked,
    a_consumer_that_lets_a_panic_escape_is_stopped_on_the_right_event,
    a_panicking_aggregate_leaves_the_next_command_working,
    a_panicking_engine_projection_fails_after_the_commit,
    a_panicking_process_manager_has_its_event_parked,
    a_panicking_process_manager_stops_its_subscription_at_once,
    a_panicking_projection_has_its_event_parked,
    a_panicking_projection_stops_its_subscription_at_once,
    a_runner_that_panics_outside_a_handler_reports_it_at_once,
};
pub use personal::{
    a_forgotten_subject_reads_as_its_placeholders, racing_first_appends_of_a_subject_share_its_key,
    unstorable_personal_data_is_refused_before_it_is_sealed,
};
pub use race::{
    racing_appends_have_one_winner_per_version, racing_writers_lose_nothing,
    writers_on_distinct_streams_do_not_conflict,
};
pub use read::{
    read_all_filters_in_the_store, read_all_in_commit_order_and_batches, read_stream_from_version,
    streams_are_isolated,
};
pub use request::{
    a_parked_event_retried_on_request_takes_effect_once,
    a_subscription_is_reset_or_rebuilt_on_request, operators_requests_and_runners_records_are_kept,
};
pub use snapshot::snapshots_save_load_and_keep_the_latest;
pub use storable::{
    a_float_stored_as_null_is_a_decode_error_that_says_why,
    a_state_that_cannot_be_stored_is_not_snapshotted,
    non_finite_floats_in_events_are_refused_before_any_io,
};
pub use subscription::{
    a_filtered_subscription_idles_quietly, a_subscription_starts_from_now_or_after_a_position,
    a_view_added_late_catches_up_on_ten_thousand_events,
    caught_up_after_a_rebuild_waits_for_the_rebuild, every_stream_is_in_version_order_in_the_log,
    failing_events_stop_the_subscription_or_are_parked,
    one_runner_is_active_and_another_takes_over, process_manager_commands_are_idempotent,
    subscription_catches_up_then_goes_live, subscription_rebuilds_on_new_version_and_on_request,
    subscription_resumes_from_its_checkpoint,
};
pub use subscription_store::{
    counts_after_a_position_with_filter_and_limit, dead_letters_are_discarded_with_their_reason,
    dead_letters_are_kept_per_subscription, dead_letters_keep_events_this_store_never_stored,
    events_are_found_by_command_id, leases_are_exclusive_until_dropped,
    read_horizon_covers_what_is_readable,
};
pub use wait::wait_for_events_wakes_on_append;

/// What the suite needs of a backend: all three stores in one cloneable handle.
pub trait Store: EventStore + SnapshotStore + CheckpointStore + Clone {}

impl<S: EventStore + SnapshotStore + CheckpointStore + Clone> Store for S {}

/// Runs one async test on a fresh multi-threaded runtime (two workers, so races are real).
pub fn run<F: Future<Output = ()>>(test: impl FnOnce() -> F) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime for the conformance test");
    runtime.block_on(test());
}

/// Expands to one `#[test]` per guarantee of the conformance suite, in a module
/// `conformance`, each calling `$factory().await` for a fresh, empty store.
///
/// `$factory` is an `async fn() -> S` (or a path to one) in scope where the macro is
/// invoked, with `S: EventStore + SnapshotStore + CheckpointStore + StoreHealth + Clone`.
///
/// A backend whose tests must not run at the same time (on PostgreSQL, a global read
/// waits for every older transaction in the cluster, so parallel tests hold each other's
/// reads back) names a function too: `conformance_tests!(fresh_store, one_at_a_time)`.
/// Each test calls `one_at_a_time()` first and keeps what it returns (a lock guard) until
/// the test's runtime, with every task it started, is gone.
#[macro_export]
macro_rules! conformance_tests {
    (@cases $factory:path, $one_at_a_time:expr; $($case:ident),* $(,)?) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    let _turn = ($one_at_a_time)();
                    $crate::testing::conformance::run(|| async {
                        $crate::testing::conformance::$case($factory().await).await
                    });
                }
            )*
        }
    };
    ($factory:path) => {
        $crate::conformance_tests!($factory, (|| ()));
    };
    ($factory:path, $one_at_a_time:expr) => {
        $crate::conformance_tests!(@cases $factory, $one_at_a_time;
            append_assigns_contiguous_versions,
            append_is_atomic,
            conflict_names_stream_and_versions,
            duplicate_event_ids_are_refused,
            empty_append_is_refused,
            expected_version_semantics,
            racing_appends_have_one_winner_per_version,
            racing_writers_lose_nothing,
            writers_on_distinct_streams_do_not_conflict,
            read_stream_from_version,
            streams_are_isolated,
            read_all_in_commit_order_and_batches,
            read_all_filters_in_the_store,
            wait_for_events_wakes_on_append,
            snapshots_save_load_and_keep_the_latest,
            checkpoints_save_load_and_reset,
            saved_checkpoints_are_listed_by_name,
            envelope_round_trips,
            stored_data_is_never_rewritten,
            undecodable_events_are_typed_errors,
            identifiers_are_stored_faithfully,
            invalid_identifiers_are_refused,
            engine_retries_conflicts_without_losing_commands,
            engine_snapshots_and_temporal_loads,
            a_command_racing_its_own_repeat_is_applied_once,
            commands_expecting_a_version_run_only_at_it,
            a_stale_image_is_caught_and_decided_again,
            caching_engines_interleaving_lose_nothing,
            leases_are_exclusive_until_dropped,
            dead_letters_are_kept_per_subscription,
            dead_letters_are_discarded_with_their_reason,
            operators_requests_and_runners_records_are_kept,
            a_parked_event_retried_on_request_takes_effect_once,
            a_subscription_is_reset_or_rebuilt_on_request,
            a_store_reports_its_health,
            dead_letters_keep_events_this_store_never_stored,
            events_are_found_by_command_id,
            a_stream_reads_backwards_from_its_end,
            the_log_reads_backwards_from_a_position,
            a_deleted_stream_takes_no_more_events_and_its_subscribers_hear_of_it,
            a_delete_racing_appends_loses_nothing_acknowledged,
            a_purged_stream_keeps_only_its_tombstone,
            a_stream_truncated_under_its_snapshot_still_loads,
            an_archived_stream_is_out_of_the_hot_path_until_unarchived,
            archiving_racing_appends_loses_nothing_acknowledged,
            a_forgotten_subject_reads_as_its_placeholders,
            racing_first_appends_of_a_subject_share_its_key,
            unstorable_personal_data_is_refused_before_it_is_sealed,
            events_are_found_by_correlation_id,
            streams_are_listed_by_type_and_paged,
            counts_after_a_position_with_filter_and_limit,
            read_horizon_covers_what_is_readable,
            subscription_catches_up_then_goes_live,
            every_stream_is_in_version_order_in_the_log,
            a_filtered_subscription_idles_quietly,
            subscription_resumes_from_its_checkpoint,
            a_subscription_starts_from_now_or_after_a_position,
            a_view_added_late_catches_up_on_ten_thousand_events,
            subscription_rebuilds_on_new_version_and_on_request,
            caught_up_after_a_rebuild_waits_for_the_rebuild,
            failing_events_stop_the_subscription_or_are_parked,
            one_runner_is_active_and_another_takes_over,
            process_manager_commands_are_idempotent,
            listeners_read_only_the_stream_types_they_list,
            a_panicking_projection_stops_its_subscription_at_once,
            a_panicking_projection_has_its_event_parked,
            a_panicking_process_manager_stops_its_subscription_at_once,
            a_panicking_process_manager_has_its_event_parked,
            a_consumer_that_lets_a_panic_escape_is_stopped_on_the_right_event,
            a_consumer_that_lets_a_panic_escape_has_the_right_event_parked,
            a_runner_that_panics_outside_a_handler_reports_it_at_once,
            a_panicking_aggregate_leaves_the_next_command_working,
            a_panicking_engine_projection_fails_after_the_commit,
            non_finite_floats_in_events_are_refused_before_any_io,
            a_state_that_cannot_be_stored_is_not_snapshotted,
            a_float_stored_as_null_is_a_decode_error_that_says_why,
        );
    };
}

/// A stream id unique to this call, so tests never collide even on a shared store.
pub(crate) fn unique_stream(stream_type: &str) -> StreamId {
    StreamId::new(stream_type, &uuid::Uuid::now_v7().to_string()).expect("valid stream id")
}

/// A subscription name unique to this call.
pub(crate) fn unique_name(prefix: &str) -> SubscriptionName {
    named(&format!("{prefix}-{}", uuid::Uuid::now_v7()))
}

/// The subscription name `name`, which the caller knows to be valid.
pub(crate) fn named(name: &str) -> SubscriptionName {
    SubscriptionName::new(name).expect("valid subscription name")
}

/// An untyped event whose data records `n`.
pub(crate) fn event(event_type: &str, n: u64) -> NewEvent {
    NewEvent::new(
        event_type,
        1,
        serde_json::json!({ "n": n }),
        Metadata::default(),
    )
    .expect("valid event type")
}

/// `count` events numbered from `from`.
pub(crate) fn events(event_type: &str, from: u64, count: u64) -> Vec<NewEvent> {
    (from..from + count).map(|n| event(event_type, n)).collect()
}
