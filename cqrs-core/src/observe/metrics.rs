//! The metrics the framework records, through the [`metrics`] facade.
//!
//! The facade, like `tracing` for spans, costs next to nothing until the application
//! installs a recorder (`metrics-exporter-prometheus` for a `/metrics` endpoint, or a
//! bridge to OpenTelemetry), and it leaves the choice of exporter to the application.
//! Names follow Prometheus' conventions: `_total` for counters, the unit last.

use std::time::Duration;

use crate::SubscriptionName;

/// Counter of commands by outcome; labels `aggregate` and `outcome` (`committed`,
/// `unchanged`: decided and wrote nothing, `repeated`: a command id already executed,
/// its first outcome returned, `refused`: the aggregate said no,
/// `conflicted`: other writers won every retry or the caller's expected version was
/// stale, `failed`: anything else).
pub const COMMANDS: &str = "cqrs_commands_total";
/// Counter of a command's extra attempts after a conflict; label `aggregate`.
pub const COMMAND_RETRIES: &str = "cqrs_command_retries_total";
/// Histogram of the time an append takes in the store, in seconds; label `aggregate`.
pub const APPEND_SECONDS: &str = "cqrs_append_duration_seconds";
/// Counter of events committed by commands; label `aggregate`.
pub const EVENTS_APPENDED: &str = "cqrs_events_appended_total";
/// Gauge of the events a subscription still has to handle: 0 when it is live; while it
/// catches up, counted with its filter at most once a second and up to 100,000 (the
/// gauge then means "at least"); label `subscription`.
pub const SUBSCRIPTION_LAG: &str = "cqrs_subscription_lag_events";
/// Counter of events a subscription handled (its rate is events per second); label
/// `subscription`.
pub const EVENTS_HANDLED: &str = "cqrs_subscription_events_handled_total";
/// Counter of events a subscription or a bus consumer parked as dead letters; label
/// `subscription`.
pub const EVENTS_PARKED: &str = "cqrs_subscription_events_parked_total";
/// Gauge of the events held back from readers by transactions still open before them
/// (see [`EventLog::read_horizon`](crate::EventLog::read_horizon)), as of the store's
/// last health check.
pub const HORIZON_LAG: &str = "cqrs_store_horizon_lag_events";
/// Counter of command attempts whose state came from the engine's image cache; label
/// `aggregate`.
pub const IMAGE_HITS: &str = "cqrs_image_cache_hits_total";
/// Counter of command attempts that found no image and loaded the stream (a retry after
/// a conflict, and the reload after a stale image, count again); label `aggregate`.
pub const IMAGE_MISSES: &str = "cqrs_image_cache_misses_total";
/// Counter of images evicted to make room; label `aggregate`.
pub const IMAGE_EVICTIONS: &str = "cqrs_image_cache_evictions_total";

/// Every metric above, with its description: what [`describe`] registers.
pub const ALL: &[(&str, &str)] = &[
    (COMMANDS, "Commands by outcome"),
    (COMMAND_RETRIES, "Attempts of commands after a conflict"),
    (APPEND_SECONDS, "Time of an append in the store"),
    (EVENTS_APPENDED, "Events committed by commands"),
    (
        SUBSCRIPTION_LAG,
        "Events a subscription still has to handle",
    ),
    (EVENTS_HANDLED, "Events a subscription handled"),
    (EVENTS_PARKED, "Events parked as dead letters"),
    (
        HORIZON_LAG,
        "Events held back from readers by open transactions",
    ),
    (IMAGE_HITS, "Command attempts served from the image cache"),
    (IMAGE_MISSES, "Command attempts that loaded their aggregate"),
    (IMAGE_EVICTIONS, "Images evicted from the cache"),
];

/// Registers every metric's description (and the histogram's unit) with the recorder
/// installed now, so an exporter can print them (Prometheus' `# HELP`). Call it once,
/// after installing the recorder.
pub fn describe() {
    for &(name, help) in ALL {
        match name {
            APPEND_SECONDS => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
            SUBSCRIPTION_LAG | HORIZON_LAG => {
                metrics::describe_gauge!(name, metrics::Unit::Count, help)
            }
            _ => metrics::describe_counter!(name, metrics::Unit::Count, help),
        }
    }
}

/// How a command ended, for [`COMMANDS`].
pub(crate) fn command(aggregate: &'static str, outcome: &'static str) {
    metrics::counter!(COMMANDS, "aggregate" => aggregate, "outcome" => outcome).increment(1);
}

pub(crate) fn retried(aggregate: &'static str) {
    metrics::counter!(COMMAND_RETRIES, "aggregate" => aggregate).increment(1);
}

pub(crate) fn appended(aggregate: &'static str, events: usize, took: Duration) {
    metrics::histogram!(APPEND_SECONDS, "aggregate" => aggregate).record(took.as_secs_f64());
    metrics::counter!(EVENTS_APPENDED, "aggregate" => aggregate).increment(events as u64);
}

pub(crate) fn image(aggregate: &'static str, hit: bool) {
    let name = if hit { IMAGE_HITS } else { IMAGE_MISSES };
    metrics::counter!(name, "aggregate" => aggregate).increment(1);
}

pub(crate) fn evicted(aggregate: &'static str) {
    metrics::counter!(IMAGE_EVICTIONS, "aggregate" => aggregate).increment(1);
}

pub(crate) fn handled(subscription: &SubscriptionName, events: usize) {
    metrics::counter!(EVENTS_HANDLED, "subscription" => subscription.as_str().to_owned())
        .increment(events as u64);
}

/// One event parked by `subscription` (a subscription or a bus consumer).
pub(crate) fn parked(subscription: &SubscriptionName) {
    metrics::counter!(EVENTS_PARKED, "subscription" => subscription.as_str().to_owned())
        .increment(1);
}

pub(crate) fn lag(subscription: &SubscriptionName, events: u64) {
    metrics::gauge!(SUBSCRIPTION_LAG, "subscription" => subscription.as_str().to_owned())
        .set(events as f64);
}

/// The horizon's lag found by a store's health check ([`HORIZON_LAG`]).
pub fn horizon_lag(events: u64) {
    metrics::gauge!(HORIZON_LAG).set(events as f64);
}
