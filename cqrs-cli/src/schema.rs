//! `migrate`, `check`, `health`: the store's schema and whether it can serve.

use std::time::Duration;

use cqrs_core::{HealthReport, RecordedState, StoreHealth};
use cqrs_postgres::PgStore;
use serde_json::json;

use crate::error::CliError;
use crate::output::Output;

/// How long the store has to answer a health check.
pub const HEALTH_WAIT: Duration = Duration::from_secs(5);

/// `cqrs migrate`.
pub async fn migrate(store: &PgStore) -> Result<Output, CliError> {
    store.migrate().await?;
    let report = store.health(HEALTH_WAIT).await;
    let version = report.schema_version;
    Ok(Output::message(
        json!({ "schema": store.schema().as_str(), "schema_version": version }),
        format!(
            "schema {} is at migration {}",
            store.schema(),
            version.map_or_else(|| "none".to_owned(), |v| v.to_string())
        ),
    ))
}

/// `cqrs check`: the server's start-up checks, then the schema's health.
pub async fn check(store: &PgStore) -> Result<Output, CliError> {
    store.check().await?;
    fit(store).await?;
    Ok(Output::message(
        json!({ "schema": store.schema().as_str(), "ok": true }),
        format!("the server and schema {} are fit to serve", store.schema()),
    ))
}

/// Fails with the report's first problem when the store cannot serve: every command
/// that reads the schema's tables checks this first, so that a schema never migrated is
/// said as such, not as a missing table.
pub async fn fit(store: &PgStore) -> Result<HealthReport, CliError> {
    let report = store.health(HEALTH_WAIT).await;
    match report.problems.first() {
        Some(problem) => Err(CliError::Unfit(problem.clone())),
        None => Ok(report),
    }
}

/// The subscriptions a report says stopped on an error, as `--json` shows them.
fn failed_json(report: &HealthReport) -> Vec<serde_json::Value> {
    report
        .failed
        .iter()
        .map(|record| {
            let error = match &record.state {
                RecordedState::Failed { error } => Some(error.as_str()),
                _ => None,
            };
            json!({
                "checkpoint": record.checkpoint.as_str(),
                "error": error,
                "at": record.recorded_at.to_rfc3339(),
            })
        })
        .collect()
}

/// `cqrs health`: the report, and whether it is healthy (the exit code).
pub async fn health(store: &PgStore) -> (Output, bool) {
    let report = store.health(HEALTH_WAIT).await;
    let parked: Vec<_> = report
        .parked
        .iter()
        .map(|p| json!({ "subscription": p.subscription, "letters": p.letters }))
        .collect();
    let json = json!({
        "healthy": report.is_healthy(),
        "reachable": report.reachable,
        "round_trip_us": report.round_trip.map(|t| t.as_micros() as u64),
        "schema": store.schema().as_str(),
        "schema_version": report.schema_version,
        "expected_schema_version": report.expected_schema_version,
        "horizon_lag": report.horizon_lag,
        "parked": parked,
        "failed": failed_json(&report),
        "problems": report.problems,
    });
    let show = |v: Option<i64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut rows = vec![
        vec!["healthy".to_owned(), report.is_healthy().to_string()],
        vec!["reachable".to_owned(), report.reachable.to_string()],
        vec![
            "round trip".to_owned(),
            report
                .round_trip
                .map_or_else(|| "-".to_owned(), |t| format!("{} µs", t.as_micros())),
        ],
        vec![
            "schema".to_owned(),
            format!(
                "{} at migration {} (this build: {})",
                store.schema(),
                show(report.schema_version),
                show(report.expected_schema_version)
            ),
        ],
        vec![
            "horizon lag".to_owned(),
            report
                .horizon_lag
                .map_or_else(|| "-".to_owned(), |n| format!("{n} events held back")),
        ],
    ];
    for p in &report.parked {
        rows.push(vec![
            "dead letters".to_owned(),
            format!("{}: {}", p.subscription, p.letters),
        ]);
    }
    for record in &report.failed {
        let error = match &record.state {
            RecordedState::Failed { error } => error.as_str(),
            _ => "",
        };
        rows.push(vec![
            "stopped".to_owned(),
            format!("{} on an error: {error}", record.checkpoint),
        ]);
    }
    for problem in &report.problems {
        rows.push(vec!["problem".to_owned(), problem.clone()]);
    }
    let healthy = report.is_healthy();
    (
        Output {
            json,
            headers: vec!["", ""],
            rows,
            footer: None,
        },
        healthy,
    )
}
