//! # HTTP: the bank as a web service (axum)
//!
//! Run it with `cargo run --example http`: it serves on 127.0.0.1:3000 (or on port
//! `PORT`, or on `--addr HOST:PORT`) until Ctrl-C, on the in-memory store, or on
//! PostgreSQL (schema `http_example`) when `DATABASE_URL` is set. Then, for example:
//!
//! ```text
//! curl -i -H 'content-type: application/json' -d '{"account_id":"alice","customer_id":"c-1","owner":"Alice"}' localhost:3000/accounts
//! curl -i -H 'content-type: application/json' -d '{"amount":100}' localhost:3000/accounts/alice/deposits
//! curl -i 'localhost:3000/accounts/alice?min_version=2'
//! curl -i localhost:3000/status
//! curl -i localhost:3000/metrics
//! ```
//!
//! `cargo run --example http -- --demo` starts the service on a free port, drives a short
//! session through a real HTTP client, printing each request and answer, and exits.
//!
//! What it shows:
//! - commands over HTTP (the bank example's domain, unchanged): JSON in, the committed
//!   events out; every way a command can fail gets its own status and a JSON body
//!   `{"error": <kind>, "message": ...}`:
//!   - 400 `bad_request`: not JSON, a field missing or of the wrong type, an account id
//!     the store refuses (empty, over 255 bytes, or with a NUL);
//!   - 404 `unknown_account`: a command on an account never opened;
//!   - 409 `already_open`: opening an account that exists (the resource is there), and
//!     409 `conflict`: other writers kept changing the account through every retry of
//!     the engine (send it again), and 409 `stale_version`: a deposit or withdrawal
//!     sent with `"expected_version"` when the account has moved on (read it again);
//!   - 422 `insufficient_funds`, `zero_amount`: the account refused (a business rule);
//!   - 503 `unavailable`: the store is unreachable (never a 4xx: the request was fine);
//!     500 `internal`: stored data or the service itself is at fault;
//!   - and, for paths and methods the service does not have, 404 `not_found` and 405
//!     `method_not_allowed`;
//! - queries answered from a read model that a subscription feeds, so eventually
//!   consistent, and saying so: the account's version in the view and the
//!   subscription's position; `?min_version=N` waits for the view to reach a version a
//!   command returned (read-your-writes), else 503 `read_model_behind`;
//! - `GET /status`, for a load balancer: the store's own health report (reachable, round
//!   trip, schema version against this build's, horizon lag, dead letters per
//!   subscription) and the read model's subscription; 200 when the store can serve and
//!   the read model is live and at most 1,000 events behind, else 503 with the reasons;
//! - `GET /metrics`, for Prometheus: the framework's metrics (commands by outcome, append
//!   latency, events appended, subscription lag, image cache) in its text format; and a
//!   span per request that continues the caller's W3C `traceparent` into the commands
//!   and their events (a malformed header is ignored with a warning);
//! - a graceful stop on Ctrl-C: requests in flight finish, the subscription stops.

mod args;
#[path = "../bank/balances.rs"]
mod balances;
mod client;
mod commands;
mod demo;
#[path = "../bank/domain.rs"]
mod domain;
mod error;
mod queries;
mod service;
mod status;
mod telemetry;
#[cfg(test)]
mod telemetry_tests;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use args::{parse_args, Mode, USAGE};
use examples::Backend;
use service::Service;

/// The PostgreSQL schema of this example's events.
const SCHEMA: &str = "http_example";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mode = parse_args(std::env::args().skip(1), std::env::var("PORT").ok())?;
    if let Mode::Help = mode {
        println!("{USAGE}");
        return Ok(());
    }
    let (metrics, _tracer) = telemetry::install()?;
    match mode {
        Mode::Help => {}
        Mode::Demo => demo::run(&Backend::from_env(SCHEMA).await?, metrics).await?,
        Mode::Serve(addr) => serve(&Backend::from_env(SCHEMA).await?, addr, metrics).await?,
    }
    Ok(())
}

/// Serves until Ctrl-C.
async fn serve(
    backend: &Backend,
    addr: SocketAddr,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> Result<(), Box<dyn std::error::Error>> {
    let service = Service::start(backend, addr, metrics).await?;
    println!(
        "HTTP example on {}, listening on http://{}. Ctrl-C stops it.",
        backend.description,
        service.addr()
    );
    println!("Endpoints: POST /accounts, POST /accounts/{{id}}/deposits, POST /accounts/{{id}}/withdrawals, GET /accounts/{{id}}[?min_version=N], GET /status, GET /metrics");
    tokio::signal::ctrl_c().await?;
    println!("\nStopping: requests in flight finish first.");
    service.stop().await?;
    println!("Stopped.");
    Ok(())
}
