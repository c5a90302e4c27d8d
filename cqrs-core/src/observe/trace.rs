//! Joining spans to the trace context stored with events.
//!
//! Without the `opentelemetry` feature these functions leave spans as `tracing` makes
//! them and metadata as the caller gave it. With it, they use tracing-opentelemetry to
//! give spans their OpenTelemetry parent (which need not be their `tracing` parent: a
//! subscription's long-lived span nests its events' spans in logs, while each event's
//! span continues the trace of the command that stored it) and to write a command span's
//! context into the metadata of the events it stores.

use std::sync::Arc;

use tracing::Span;

use crate::{Metadata, StoredEvent};

/// The span of one handling of `event` by `listener` (a projection, a process manager,
/// a backend's transactional projection, a bus consumer): `cqrs.process`, whose trace
/// continues from the event's stored context, or a fresh trace when it has none.
///
/// Every consumer of this crate and of the backends handles events one at a time, so
/// each handling gets its own span with its event's context as *parent* (rather than
/// one span for a batch with *links* to every event's context): a trace then shows the
/// read model's update under the request that caused it. Backends' consumers call it
/// around their own handler.
pub fn process_span(listener: &str, event: &Arc<StoredEvent>) -> Span {
    let span = tracing::info_span!(
        "cqrs.process",
        otel.kind = "consumer",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.consumer.group.name = listener,
        messaging.message.id = %event.event_id,
        cqrs.stream = %event.stream,
        cqrs.version = event.stream_version,
        cqrs.event_type = %event.event_type,
        cqrs.position = %event.position,
        otel.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    follow(&span, &event.metadata);
    span
}

/// The span of publishing `event` to a bus: `cqrs.publish`, continuing the event's
/// trace, open until the broker acknowledges.
pub(crate) fn publish_span(relay: &str, event: &StoredEvent) -> Span {
    let span = tracing::info_span!(
        "cqrs.publish",
        otel.kind = "producer",
        messaging.operation.type = "send",
        messaging.operation.name = "publish",
        messaging.message.id = %event.event_id,
        cqrs.relay = relay,
        cqrs.stream = %event.stream,
        cqrs.version = event.stream_version,
        cqrs.event_type = %event.event_type,
        cqrs.position = %event.position,
    );
    follow(&span, &event.metadata);
    span
}

/// Runs `handling`, `listener`'s handling of `event`, in the event's [`process_span`],
/// and marks the span failed when it returns an error. The one way every consumer (the
/// core's and the backends') wraps its handler; a disabled span costs no wrapper.
pub async fn in_process_span<T, E>(
    listener: &str,
    event: &Arc<StoredEvent>,
    handling: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    use tracing::Instrument;
    let span = process_span(listener, event);
    if span.is_disabled() {
        return handling.await;
    }
    let handled = handling.instrument(span.clone()).await;
    if handled.is_err() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", "event");
    }
    handled
}

/// Makes `metadata`'s trace context the OpenTelemetry parent of `span`, which must not
/// have been entered yet; without one, `span` starts a fresh trace. Nothing happens
/// without the `opentelemetry` feature or without its layer in the subscriber.
pub fn follow(span: &Span, metadata: &Metadata) {
    #[cfg(feature = "opentelemetry")]
    otel::follow(span, metadata);
    #[cfg(not(feature = "opentelemetry"))]
    let _ = (span, metadata);
}

/// Like [`follow`] with `metadata` only as a fallback: when the current span already
/// belongs to a trace (a process manager's `cqrs.process`), `span` stays its child, so a
/// caused command gets a span of its own in the trace of its cause.
pub(crate) fn follow_unless_in_trace(span: &Span, metadata: &Metadata) {
    #[cfg(feature = "opentelemetry")]
    if !otel::in_trace(&Span::current()) {
        otel::follow(span, metadata);
    }
    #[cfg(not(feature = "opentelemetry"))]
    let _ = (span, metadata);
}

/// Writes `span`'s trace context into `metadata`, so the events stored with it carry the
/// context of the command that wrote them. Without the feature, or when `span` is in no
/// trace (no OpenTelemetry layer), `metadata` keeps what the caller gave.
pub(crate) fn stamp(span: &Span, metadata: &mut Metadata) {
    #[cfg(feature = "opentelemetry")]
    otel::stamp(span, metadata);
    #[cfg(not(feature = "opentelemetry"))]
    let _ = (span, metadata);
}

#[cfg(feature = "opentelemetry")]
pub use otel::{context_from_headers, context_of, trace_context};

#[cfg(feature = "opentelemetry")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState as OtelTraceState,
    };
    use opentelemetry::Context;
    use tracing::Span;
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use crate::envelope::{parse_or_warn, TraceParent, TraceState};
    use crate::Metadata;

    /// The OpenTelemetry context of a W3C `traceparent` (and `tracestate`) received from
    /// elsewhere: a request's headers, an event's metadata. Set it as a span's parent
    /// with tracing-opentelemetry's `OpenTelemetrySpanExt::set_parent`.
    pub fn context_of(traceparent: &TraceParent, tracestate: Option<&TraceState>) -> Context {
        // Both ids were checked as lower-case hex of the right length when parsed.
        let trace_id = TraceId::from_hex(traceparent.trace_id()).unwrap_or(TraceId::INVALID);
        let span_id = SpanId::from_hex(traceparent.parent_id()).unwrap_or(SpanId::INVALID);
        let flags = u8::from_str_radix(traceparent.flags(), 16).unwrap_or(0);
        let state = tracestate
            .and_then(|ts| ts.as_str().parse::<OtelTraceState>().ok())
            .unwrap_or_default();
        let remote = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, state);
        Context::new().with_remote_span_context(remote)
    }

    /// The context of a request's or a message's `traceparent` and `tracestate` header
    /// values: an empty context (a fresh trace) when there is no `traceparent`, or when a
    /// value is malformed, which is dropped with a warning, as in stored metadata.
    pub fn context_from_headers(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
        let tracestate = tracestate.and_then(parse_or_warn::<TraceState>);
        match traceparent.and_then(parse_or_warn::<TraceParent>) {
            Some(traceparent) => context_of(&traceparent, tracestate.as_ref()),
            None => Context::new(),
        }
    }

    /// The W3C `traceparent` and `tracestate` of `context`'s span, `None` when it is in
    /// no trace: what to send on (in a header, in metadata) to continue the trace.
    pub fn trace_context(context: &Context) -> Option<(TraceParent, Option<TraceState>)> {
        let span = context.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return None;
        }
        let traceparent = format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
        .parse()
        .ok()?;
        let header = span_context.trace_state().header();
        Some((traceparent, header.parse().ok()))
    }

    pub(super) fn follow(span: &Span, metadata: &Metadata) {
        // Most spans are disabled (no subscriber, or a level filter): building the
        // context would be all the cost.
        if span.is_disabled() {
            return;
        }
        let parent = match &metadata.traceparent {
            Some(tp) => context_of(tp, metadata.tracestate.as_ref()),
            None => Context::new(),
        };
        // An error means there is nothing to join: no OpenTelemetry layer, or the span
        // is disabled by the subscriber's filter.
        let _ = span.set_parent(parent);
    }

    pub(super) fn in_trace(span: &Span) -> bool {
        !span.is_disabled() && span.context().span().span_context().is_valid()
    }

    pub(super) fn stamp(span: &Span, metadata: &mut Metadata) {
        if span.is_disabled() {
            return;
        }
        if let Some((traceparent, tracestate)) = trace_context(&span.context()) {
            metadata.traceparent = Some(traceparent);
            metadata.tracestate = tracestate;
        }
    }
}

#[cfg(all(test, feature = "opentelemetry"))]
mod tests {
    use opentelemetry::trace::{SpanId, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::{Envelope, Position, StreamId};

    const REQUEST: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn event(metadata: Metadata) -> Arc<StoredEvent> {
        Arc::new(Envelope {
            event_id: uuid::Uuid::now_v7(),
            stream: StreamId::new("order", "a").expect("valid"),
            stream_version: 1,
            position: Position::from_parts(1, 0),
            event_type: "order.placed".into(),
            event_version: 1,
            recorded_at: chrono::Utc::now(),
            metadata,
            data: serde_json::json!({}),
        })
    }

    /// Runs `traced` with an OpenTelemetry layer; returns the spans it finished.
    fn export(traced: impl FnOnce()) -> Vec<SpanData> {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), traced);
        provider.force_flush().expect("flushed");
        exporter.get_finished_spans().expect("spans")
    }

    fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
        spans.iter().find(|s| s.name == name).expect(name)
    }

    #[test]
    fn a_handling_continues_the_stored_trace_and_stamps_carry_the_span() {
        let stored = Metadata::default()
            .with_traceparent(REQUEST.parse().expect("valid"))
            .with_tracestate("rojo=00f067aa0ba902b7".parse().expect("valid"));
        let mut stamped = Metadata::default();
        let spans = export(|| {
            let span = process_span("board", &event(stored));
            span.in_scope(|| {
                let command = tracing::info_span!("cqrs.execute");
                follow_unless_in_trace(&command, &Metadata::default());
                stamp(&command, &mut stamped);
            });
        });
        let process = named(&spans, "cqrs.process");
        assert_eq!(process.span_context.trace_id().to_string(), &REQUEST[3..35]);
        assert_eq!(process.parent_span_id.to_string(), &REQUEST[36..52]);
        assert!(process.parent_span_is_remote);
        let command = named(&spans, "cqrs.execute");
        assert_eq!(command.parent_span_id, process.span_context.span_id());
        let traceparent = stamped.traceparent.expect("stamped");
        assert_eq!(traceparent.trace_id(), &REQUEST[3..35]);
        assert_eq!(
            traceparent.parent_id(),
            command.span_context.span_id().to_string()
        );
        assert_eq!(
            stamped.tracestate.expect("carried").as_str(),
            "rojo=00f067aa0ba902b7"
        );
    }

    #[test]
    fn an_event_without_a_valid_stored_context_starts_a_fresh_trace() {
        let malformed: Metadata =
            serde_json::from_value(serde_json::json!({ "traceparent": "00-garbage-01" }))
                .expect("read anyway");
        let spans = export(|| {
            let outer = tracing::info_span!("outer");
            outer.in_scope(|| process_span("board", &event(malformed)).in_scope(|| {}));
        });
        let process = named(&spans, "cqrs.process");
        assert_eq!(process.parent_span_id, SpanId::INVALID, "a root");
        let outer = named(&spans, "outer");
        assert_ne!(
            process.span_context.trace_id(),
            outer.span_context.trace_id()
        );
    }

    #[test]
    fn without_a_layer_metadata_keeps_what_the_caller_gave() {
        let mut metadata = Metadata::default().with_traceparent(REQUEST.parse().expect("valid"));
        let span = tracing::info_span!("cqrs.execute");
        follow(&span, &metadata);
        stamp(&span, &mut metadata);
        assert_eq!(metadata.traceparent.expect("kept").as_str(), REQUEST);
    }
}
