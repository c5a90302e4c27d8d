//! One trace across the bus: an event stored with a request's trace context is published
//! by the relay and handled by a consumer on the other side, both in spans of that trace
//! (against a real nats-server). Alone in its file: it installs the process's subscriber.

mod common;

use common::*;
use cqrs_core::{codec, ExpectedVersion, Metadata, StreamStore};
use cqrs_memory::MemoryStore;
use cqrs_nats::testing::NatsServer;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

const REQUEST: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[test]
fn the_relay_and_the_consumer_continue_the_stored_trace_across_the_bus() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("bus"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
        .expect("the only subscriber of this test process");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let event_id = runtime.block_on(async {
        let server = NatsServer::start().await.expect("nats-server");
        let js = jetstream(&server.url()).await;
        let store = MemoryStore::new();
        let metadata = Metadata::default()
            .with_traceparent(REQUEST.parse().expect("valid"))
            .with_tracestate("rojo=00f067aa0ba902b7".parse().expect("valid"));
        let event = codec::encode(&Ledger::Booked { amount: 7 }, metadata).expect("encode");
        let stored = store
            .append(&stream("traced"), ExpectedVersion::NoStream, vec![event])
            .await
            .expect("append");
        let relay = relay(&store, js.clone(), events_stream());
        let view = LedgerView::default();
        let consuming = consumer(js.clone(), events_stream(), &view, &MemoryStore::new()).await;
        relay.caught_up(WAIT).await.expect("relay caught up");
        consuming.caught_up(WAIT).await.expect("consumer caught up");
        view.assert_exactly_once(&[stored[0].event_id]);
        relay.shutdown().await.expect("relay");
        consuming.shutdown().await.expect("consumer");
        stored[0].event_id.to_string()
    });
    provider.force_flush().expect("flushed");
    let spans = exporter.get_finished_spans().expect("spans");
    let of_event = |name: &str| {
        spans
            .iter()
            .find(|s| {
                s.name == name
                    && attribute(s, "messaging.message.id").as_deref() == Some(event_id.as_str())
            })
            .unwrap_or_else(|| panic!("no {name} span of the event"))
    };
    for span in [of_event("cqrs.publish"), of_event("cqrs.process")] {
        // Children of the request's context, as stored with the event and carried in the
        // message's headers (tracestate included).
        assert_eq!(
            span.span_context.trace_id().to_string(),
            &REQUEST[3..35],
            "{span:?}"
        );
        assert_eq!(
            span.parent_span_id.to_string(),
            &REQUEST[36..52],
            "{span:?}"
        );
        assert!(span.parent_span_is_remote);
        assert_eq!(
            span.span_context.trace_state().header(),
            "rojo=00f067aa0ba902b7"
        );
    }
    assert_eq!(
        attribute(of_event("cqrs.process"), "messaging.consumer.group.name").as_deref(),
        Some("ledger_view")
    );
}
