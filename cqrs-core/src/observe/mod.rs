//! What the framework tells operators: spans joined into one trace per request, and
//! metrics.
//!
//! In an event-driven system one request fans out over asynchronous hops: a command
//! stores events, subscriptions and process managers handle them later, perhaps in
//! another process, reached through a bus. The trace is how a person follows it. So
//! every event stores the W3C trace context of the command that wrote it
//! ([`Metadata::traceparent`](crate::Metadata::traceparent) and `tracestate`), and every
//! handling of the event runs in a span whose parent is that context:
//!
//! - `cqrs.execute`, a command, takes its parent from the metadata's trace context when
//!   the caller gave one (an HTTP request's `traceparent`), else from the current span;
//!   a command caused by a process manager is a child of the manager's `cqrs.process`
//!   span: a new span in its cause's trace. Its context is what its events store.
//! - `cqrs.process`, one event handled by a projection, a process manager, a backend's
//!   transactional projection or a bus consumer, is a child of the event's stored
//!   context ([`trace::process_span`]); `cqrs.publish`, one event sent to a bus by the
//!   relay, too. An event stored without a context starts a fresh trace.
//!
//! [`SPANS`] lists every span with its attributes, names from OpenTelemetry's semantic
//! conventions where they apply (`messaging.*`, `error.type`) and `cqrs.*` otherwise.
//! They are `tracing` spans: any subscriber sees them (logs show them nested as
//! `tracing` nests them); with the `opentelemetry` feature and tracing-opentelemetry's
//! layer in the subscriber, their OpenTelemetry parents are the stored contexts above,
//! and the exporter of the application's choice sends them on.
//!
//! [`metrics`] lists the metrics, recorded through the `metrics` facade.

pub mod metrics;
pub mod trace;

/// Every span the framework opens: its name, and what it covers with its attributes.
/// The Observability chapter of the guide prints the same table, and a test keeps the two
/// and the spans a traced run emits in step.
pub const SPANS: &[(&str, &str)] = &[
    (
        "cqrs.execute",
        "one command, all attempts: cqrs.stream, cqrs.command, cqrs.expected_version, \
         cqrs.correlation_id; when done cqrs.outcome, cqrs.version, cqrs.attempts, and \
         error.type on failure",
    ),
    (
        "cqrs.load",
        "loading an aggregate (snapshot and events): cqrs.stream",
    ),
    ("cqrs.handle", "the aggregate's decision on a command"),
    ("cqrs.append", "storing a command's events: cqrs.events"),
    (
        "cqrs.project",
        "an inline projection, in the command: cqrs.projection",
    ),
    (
        "cqrs.process",
        "one event handled by a listener: messaging.operation.type = process, \
         messaging.consumer.group.name (the listener), messaging.message.id (the event \
         id), cqrs.stream, cqrs.version, cqrs.event_type, cqrs.position; error.type when \
         it fails",
    ),
    (
        "cqrs.publish",
        "one event sent to a bus by a relay, until acknowledged: messaging.operation.type \
         = send, messaging.message.id, cqrs.relay, cqrs.stream, cqrs.version, \
         cqrs.event_type, cqrs.position",
    ),
    (
        "cqrs.subscription",
        "a subscription's task, for logs: cqrs.subscription.name (its events' spans \
         continue their own traces)",
    ),
];
