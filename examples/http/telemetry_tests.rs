//! The request's trace and the metrics, over real HTTP.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use cqrs_core::{Aggregate, Listener, StoredEvent, StreamId};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use crate::balances::Balances;
use crate::domain::Account;
use crate::service::Service;
use crate::tests::{any_free_port, post, unique, PATIENCE};

const REQUEST: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Keeps the message of every warning.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Message<'a>(&'a mut String);
        impl Visit for Message<'_> {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    *self.0 = format!("{value:?}");
                }
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut message = String::new();
            event.record(&mut Message(&mut message));
            self.0.lock().expect("not poisoned").push(message);
        }
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

async fn first_event(backend: &examples::Backend, id: &str) -> Arc<StoredEvent> {
    let stream = StreamId::new(Account::TYPE, id).expect("valid");
    let events = backend
        .events
        .read_stream(&stream, 1, 1)
        .await
        .expect("read");
    Arc::clone(events.first().expect("the account's first event"))
}

fn opening(id: &str) -> String {
    json!({ "account_id": id, "customer_id": format!("c-{id}"), "owner": "Ada" }).to_string()
}

// One thread: the subscriber set for it sees the server's and the subscription's tasks.
#[tokio::test]
async fn a_request_s_trace_continues_into_its_command_its_event_and_the_read_model() {
    let (exclusive, backend) = crate::tests::backend().await;
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("http")))
        .with(warnings.clone());
    let traced = tracing::subscriber::set_default(subscriber);
    let service = Service::start(&backend, any_free_port(), crate::tests::unrecorded())
        .await
        .expect("the service starts");
    let client = crate::client::Client::new(service.addr());

    let (ada, bob) = (unique("ada"), unique("bob"));
    let traced_open = client
        .post_with("/accounts", &opening(&ada), &[("traceparent", REQUEST)])
        .await
        .expect("POST");
    assert_eq!(
        traced_open.status,
        StatusCode::CREATED,
        "{}",
        traced_open.body
    );
    // A malformed header does not fail the command: it is ignored, with a warning.
    let broken = client
        .post_with(
            "/accounts",
            &opening(&bob),
            &[("traceparent", "00-not-a-trace-01")],
        )
        .await
        .expect("POST");
    assert_eq!(broken.status, StatusCode::CREATED, "{}", broken.body);
    let version = traced_open.body["version"].as_u64().expect("a version");
    let read = client
        .get(&format!("/accounts/{ada}?min_version={version}"))
        .await
        .expect("GET");
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    let seen = crate::tests::get(&client, &format!("/accounts/{bob}?min_version=1")).await;
    assert_eq!(seen.status, StatusCode::OK, "{}", seen.body);
    service.stop().await.expect("the service stops");
    drop(traced);
    provider.force_flush().expect("flushed");
    let spans = exporter.get_finished_spans().expect("spans");
    let by_id = |id: SpanId| {
        spans
            .iter()
            .find(|s| s.span_context.span_id() == id)
            .unwrap_or_else(|| panic!("no span {id}"))
    };

    // Request -> command -> event -> the read model's handling, in the caller's trace.
    let event = first_event(&backend, &ada).await;
    let stored = event
        .metadata
        .traceparent
        .as_ref()
        .expect("a trace context");
    assert_eq!(stored.trace_id(), &REQUEST[3..35]);
    let command = by_id(SpanId::from_hex(stored.parent_id()).expect("hex"));
    assert_eq!(command.name, "cqrs.execute");
    let request = by_id(command.parent_span_id);
    // Named by OpenTelemetry's HTTP convention: the method and the route.
    assert_eq!(request.name, "POST /accounts");
    assert_eq!(request.parent_span_id.to_string(), &REQUEST[36..52]);
    assert!(request.parent_span_is_remote);
    assert_eq!(
        attribute(request, "http.route").as_deref(),
        Some("/accounts")
    );
    assert_eq!(
        attribute(request, "http.response.status_code").as_deref(),
        Some("201")
    );
    let id = event.event_id.to_string();
    let handled = spans
        .iter()
        .find(|s| {
            s.name == "cqrs.process"
                && attribute(s, "messaging.message.id").as_deref() == Some(id.as_str())
                && attribute(s, "messaging.consumer.group.name").as_deref() == Some(Balances::NAME)
        })
        .expect("the read model handled the event");
    assert_eq!(handled.parent_span_id, command.span_context.span_id());

    // The malformed header: a warning, and a fresh trace of the request's own.
    let warned = warnings.0.lock().expect("not poisoned").clone();
    assert!(
        warned.iter().any(|w| w.contains("trace context ignored")),
        "{warned:?}"
    );
    let fresh = first_event(&backend, &bob).await;
    let fresh = fresh
        .metadata
        .traceparent
        .as_ref()
        .expect("a trace of its own");
    assert_ne!(fresh.trace_id(), &REQUEST[3..35]);
    let command = by_id(SpanId::from_hex(fresh.parent_id()).expect("hex"));
    assert_eq!(
        by_id(command.parent_span_id).parent_span_id,
        SpanId::INVALID
    );
    drop(exclusive);
}

/// The value of the sample `name{labels}` in Prometheus text, if present.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let wanted = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&wanted))
        .and_then(|v| v.trim().parse().ok())
}

// One thread: the recorder set for it records the server's and the subscription's tasks.
#[tokio::test]
async fn metrics_count_what_a_scripted_session_did() {
    let (exclusive, backend) = crate::tests::backend().await;
    let recorder = crate::telemetry::recorder()
        .expect("buckets")
        .build_recorder();
    let handle = recorder.handle();
    let _recording = metrics::set_default_local_recorder(&recorder);
    cqrs_core::observe::metrics::describe();
    let service = Service::start(&backend, any_free_port(), handle)
        .await
        .expect("the service starts");
    let client = crate::client::Client::new(service.addr());
    let ada = unique("ada");
    let deposits = format!("/accounts/{ada}/deposits");
    let withdrawals = format!("/accounts/{ada}/withdrawals");
    for (path, body, status) in [
        ("/accounts", opening(&ada), StatusCode::CREATED),
        (
            deposits.as_str(),
            json!({ "amount": 100 }).to_string(),
            StatusCode::OK,
        ),
        // Refused by the account: too much, and opening it again.
        (
            withdrawals.as_str(),
            json!({ "amount": 500 }).to_string(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("/accounts", opening(&ada), StatusCode::CONFLICT),
        // Based on a version that is no longer the account's.
        (
            deposits.as_str(),
            json!({ "amount": 1, "expected_version": 1 }).to_string(),
            StatusCode::CONFLICT,
        ),
    ] {
        let reply = post(&client, path, &body).await;
        assert_eq!(reply.status, status, "{path} {body}: {}", reply.body);
    }
    let read = crate::tests::get(&client, &format!("/accounts/{ada}?min_version=2")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    // Let the subscription go idle, which sets its lag to 0.
    service_caught_up(&client).await;

    let (status, text) = client.get_text("/metrics").await.expect("GET /metrics");
    assert_eq!(status, StatusCode::OK);
    let commands = |outcome: &str| {
        sample(
            &text,
            "cqrs_commands_total",
            &format!("aggregate=\"account\",outcome=\"{outcome}\""),
        )
    };
    assert_eq!(commands("committed"), Some(2.0), "{text}");
    assert_eq!(commands("refused"), Some(2.0), "{text}");
    assert_eq!(commands("conflicted"), Some(1.0), "{text}");
    let appended = sample(&text, "cqrs_events_appended_total", "aggregate=\"account\"");
    assert_eq!(appended, Some(2.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "cqrs_append_duration_seconds_count",
            "aggregate=\"account\""
        ),
        Some(2.0),
        "{text}"
    );
    let subscription = format!("subscription=\"{}\"", Balances::NAME);
    // The view is rebuilt from the whole log at start: on a shared database that holds
    // other tests' events too, so at least this session's two.
    let handled = sample(
        &text,
        "cqrs_subscription_events_handled_total",
        &subscription,
    );
    assert!(handled.is_some_and(|n| n >= 2.0), "{text}");
    assert_eq!(
        sample(&text, "cqrs_subscription_lag_events", &subscription),
        Some(0.0),
        "{text}"
    );
    assert!(text.contains("# HELP cqrs_commands_total"), "{text}");
    // The scrape ran the store's health check: nothing holds the horizon back.
    assert!(
        text.lines().any(|l| l == "cqrs_store_horizon_lag_events 0"),
        "{text}"
    );
    service.stop().await.expect("the service stops");
    drop(exclusive);
}

/// Waits until `/status` reports the read model live.
async fn service_caught_up(client: &crate::client::Client) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let status = crate::tests::get(client, "/status").await;
        if status.body["subscription"]["state"] == "live" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never live: {}",
            status.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
