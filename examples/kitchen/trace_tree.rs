//! One trace from the customer's request through every hop of the kitchen story: the
//! commands, the events they store, the process manager, the commands it causes, and
//! the order board's projection. Spans are exported to memory and checked as a tree.

use cqrs_core::{Listener, StoredEvent};
use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

use crate::board::OrderBoard;
use crate::flow::KitchenFlow;

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

/// The spans a run exported, found by id and by what they did.
struct Spans(Vec<SpanData>);

impl Spans {
    fn by_id(&self, id: SpanId) -> &SpanData {
        self.0
            .iter()
            .find(|s| s.span_context.span_id() == id)
            .unwrap_or_else(|| panic!("no span {id}; spans: {}", self.names()))
    }

    /// The command span that wrote `event`: the span id its stored traceparent names.
    fn writer_of(&self, event: &StoredEvent) -> &SpanData {
        let traceparent = event.metadata.traceparent.as_ref().expect("a traceparent");
        let writer = self.by_id(SpanId::from_hex(traceparent.parent_id()).expect("hex"));
        assert_eq!(writer.name, "cqrs.execute", "{event:?}");
        writer
    }

    /// Every handling of `event` by `listener`.
    fn handlings(&self, listener: &str, event: &StoredEvent) -> Vec<&SpanData> {
        let id = event.event_id.to_string();
        self.0
            .iter()
            .filter(|s| {
                s.name == "cqrs.process"
                    && attribute(s, "messaging.consumer.group.name").as_deref() == Some(listener)
                    && attribute(s, "messaging.message.id").as_deref() == Some(id.as_str())
            })
            .collect()
    }

    fn names(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|s| s.name.as_ref()).collect();
        names.join(", ")
    }
}

#[tokio::test] // one thread: the subscriber set for it sees every task of the story
async fn one_trace_follows_the_request_through_every_hop() {
    let _exclusive = super::ONE_AT_A_TIME.lock().await;
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("kitchen"));
    let traced = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let story = super::run().await.expect("the kitchen example runs");
    drop(traced);
    provider.force_flush().expect("spans flushed");
    let spans = Spans(exporter.get_finished_spans().expect("spans"));

    let request = &story.request;
    let [placed, confirmed, started, prepared, scheduled] = &story.journey[..] else {
        panic!("five events: {:?}", story.journey);
    };
    // Every event of the journey is in the request's trace.
    for event in &story.journey {
        let traceparent = event.metadata.traceparent.as_ref().expect("a traceparent");
        assert_eq!(traceparent.trace_id(), request.trace_id(), "{event:?}");
    }
    let in_trace = |span: &SpanData| {
        assert_eq!(
            span.span_context.trace_id().to_string(),
            request.trace_id(),
            "{span:?}"
        );
    };

    // The customer's commands are children of the request (a remote parent).
    let request_span = SpanId::from_hex(request.parent_id()).expect("hex");
    for event in [placed, confirmed] {
        let command = spans.writer_of(event);
        in_trace(command);
        assert_eq!(command.parent_span_id, request_span);
        assert!(command.parent_span_is_remote);
        assert_eq!(
            attribute(command, "cqrs.outcome").as_deref(),
            Some("committed")
        );
    }

    // The process manager handles the confirmation in a span under the confirming
    // command; the command it causes is a new span under that handling.
    let manager = KitchenFlow::NAME;
    let handling = spans.handlings(manager, confirmed);
    let first = handling
        .first()
        .expect("the manager handled the confirmation");
    in_trace(first);
    assert_eq!(
        first.parent_span_id,
        spans.writer_of(confirmed).span_context.span_id()
    );
    let caused = spans.writer_of(started);
    in_trace(caused);
    assert_eq!(caused.parent_span_id, first.span_context.span_id());
    assert_ne!(caused.span_context.span_id(), first.span_context.span_id());

    // The cook's command, caused by the ticket's event outside any handling, continues
    // from the event's stored context.
    let cooked = spans.writer_of(prepared);
    assert_eq!(cooked.parent_span_id, caused.span_context.span_id());
    let handling = spans.handlings(manager, prepared);
    let first = handling
        .first()
        .expect("the manager handled the preparation");
    assert_eq!(first.parent_span_id, cooked.span_context.span_id());
    assert_eq!(
        spans.writer_of(scheduled).parent_span_id,
        first.span_context.span_id()
    );

    // The replay handled the confirmation again, in the same trace, and the caused
    // command found its first outcome.
    assert!(handling.len() >= 2, "handled again by the replay");
    let repeated = spans.0.iter().any(|s| {
        s.name == "cqrs.execute"
            && attribute(s, "cqrs.outcome").as_deref() == Some("repeated")
            && handling
                .iter()
                .any(|h| h.span_context.span_id() == s.parent_span_id)
    });
    assert!(repeated, "a repeated command under a replayed handling");

    // The board's projection handles each event under the command that stored it.
    for event in &story.journey {
        let handled = spans.handlings(OrderBoard::NAME, event);
        let handled = handled.first().expect("the board handled it");
        in_trace(handled);
        assert_eq!(
            handled.parent_span_id,
            spans.writer_of(event).span_context.span_id()
        );
    }

    // Every span the run emitted is in the reference.
    let known: Vec<&str> = cqrs_core::observe::SPANS.iter().map(|(n, _)| *n).collect();
    for span in &spans.0 {
        assert!(
            known.contains(&span.name.as_ref()),
            "{} is not in observe::SPANS",
            span.name
        );
    }
}
