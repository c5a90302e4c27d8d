//! What the service tells operators besides `/status`: a span per request that
//! continues the caller's trace, and the metrics at `GET /metrics`.
//!
//! - Each request runs in an `http.request` span (OpenTelemetry's HTTP server
//!   conventions: `http.request.method`, `http.route`, `http.response.status_code`)
//!   whose parent is the request's W3C `traceparent` header (with `tracestate`). A
//!   malformed header is ignored with a warning and the request starts a fresh trace: a
//!   caller's broken tracing never fails its command. The engine's `cqrs.execute` span
//!   is a child of it, and the events store that span's context, so the read model's
//!   update (and anything else that handles them) joins the caller's trace.
//! - `GET /metrics` answers the framework's metrics (see `cqrs_core::observe::metrics`)
//!   in Prometheus' text format, from `metrics-exporter-prometheus`'s recorder.
//!
//! [`install`] sets both up for the process. Spans get ids and parents but go nowhere:
//! add an exporter to the tracer provider (OTLP to a collector, say) to see them; the
//! guide's Observability chapter shows how.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cqrs_core::observe;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

use crate::service::AppState;

/// The buckets of the append latency histogram, in seconds: from a fast local commit to
/// a database in trouble.
const APPEND_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The metrics recorder could not be built or installed (another one is installed).
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(#[from] BuildError),
    /// Another `tracing` subscriber is installed.
    #[error("cannot install the tracing subscriber: {0}")]
    Tracing(#[from] tracing::subscriber::SetGlobalDefaultError),
}

/// The metrics recorder's builder, with the histogram's buckets.
pub fn recorder() -> Result<PrometheusBuilder, BuildError> {
    PrometheusBuilder::new().set_buckets_for_metric(
        Matcher::Full(observe::metrics::APPEND_SECONDS.into()),
        APPEND_BUCKETS,
    )
}

/// Installs the process's metrics recorder and its `tracing` subscriber with the
/// OpenTelemetry layer; returns the handle `/metrics` renders from, and the tracer
/// provider (keep it: dropping it shuts the tracer down).
pub fn install() -> Result<(PrometheusHandle, SdkTracerProvider), TelemetryError> {
    let metrics = recorder()?.install_recorder()?;
    observe::metrics::describe();
    let provider = SdkTracerProvider::builder().build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("http-example"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))?;
    Ok((metrics, provider))
}

/// Middleware: runs the request in its `http.request` span, parented to the caller's
/// trace context.
pub async fn request_span(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let span = tracing::info_span!(
        "http.request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = %route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let parent = caller_context(request.headers());
    // An error means there is no OpenTelemetry layer: nothing to join.
    let _ = span.set_parent(parent);
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// The trace context of the request's `traceparent` and `tracestate` headers (a fresh
/// trace when there is none, or when one is malformed, with a warning).
fn caller_context(headers: &HeaderMap) -> opentelemetry::Context {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    observe::trace::context_from_headers(header("traceparent"), header("tracestate"))
}

/// `GET /metrics`: the framework's metrics in Prometheus' text format. The store's
/// health check runs first, so the horizon's lag is as of this scrape.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    app.health.health(crate::status::STORE_WAIT).await;
    app.metrics.run_upkeep();
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        app.metrics.render(),
    )
}
