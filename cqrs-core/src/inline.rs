//! Inline listeners: run with the append instead of from the log.
//!
//! A subscription feeds a listener after the events committed, from the log, in its own
//! time (eventually consistent). An inline listener is run by whoever appends: by the
//! [`Engine`](crate::Engine) right after its commit
//! ([`with_projection`](crate::Engine::with_projection)), or by a store inside the append
//! itself (`MemoryStore::with_inline_projection`, `PgStore::with_inline_projection`), so
//! that no reader sees the events before their effect.
//!
//! [`Inline`] is the one adapter they share: it picks the events the listener consumes
//! (its [`event_types`](crate::Listener::event_types) and
//! [`stream_types`](crate::Listener::stream_types)), decodes them if they are stored
//! events, hands them over in order through the listener kind's handler, and turns a
//! panic into the batch's failure ([`unwind`]). The caller says what the
//! failure means: the engine returns it after the commit, a store refuses the append.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::store::BoxError;
use crate::{codec, unwind, Envelope, Listener, Projection, StoredEvent};

/// How an inline listener is handed one event, with the context `Cx` that its caller
/// passes to every run: nothing (`()`) for a [`Projection`], the append's transaction for
/// a backend's transactional projection.
pub type Handler<L, Cx> = for<'a> fn(
    &'a L,
    &'a mut Cx,
    &'a Envelope<<L as Listener>::Event>,
) -> BoxFuture<'a, Result<(), <L as Listener>::Error>>;

/// A listener run inline, with the lists of what it consumes computed once, when it is
/// registered, rather than on every append.
///
/// The lists are matched here and never sent to a database, so they need no validation:
/// a name that is not a valid identifier matches no event.
pub struct Inline<L: Listener, Cx: ?Sized> {
    listener: L,
    handler: Handler<L, Cx>,
    event_types: Vec<&'static str>,
    stream_types: Vec<&'static str>,
}

impl<P: Projection> Inline<P, ()> {
    /// A [`Projection`] run inline.
    pub fn projection(projection: P) -> Self {
        Self::new(projection, |projection, (), event| {
            Box::pin(projection.handle(event))
        })
    }
}

impl<L: Listener, Cx: ?Sized> Inline<L, Cx> {
    /// `listener` run inline, handed each event it consumes by `handler`.
    pub fn new(listener: L, handler: Handler<L, Cx>) -> Self {
        Self {
            listener,
            handler,
            event_types: L::event_types(),
            stream_types: L::stream_types(),
        }
    }

    /// The listener it runs.
    pub fn listener(&self) -> &L {
        &self.listener
    }

    /// Whether the listener consumes an event of this stream type and event type (an
    /// empty list means all, as in an [`EventFilter`](crate::EventFilter)).
    pub fn consumes(&self, stream_type: &str, event_type: &str) -> bool {
        (self.event_types.is_empty() || self.event_types.contains(&event_type))
            && (self.stream_types.is_empty() || self.stream_types.contains(&stream_type))
    }
}

/// An [`Inline`] listener behind a trait object, so that an engine or a store can keep a
/// list of them: `Cx` is what the caller passes to each run, `In` how it holds the events
/// (stored, as a store does; decoded, as the engine does after its commit).
pub trait RunInline<Cx: ?Sized, In>: Send + Sync {
    /// The listener's [`NAME`](Listener::NAME).
    fn name(&self) -> &'static str;

    /// Hands the listener each of `events` it consumes, in order. The first failure ends
    /// the run and is returned: an event that does not decode, a handler's error, or a
    /// handler's panic (caught; what the handler held is dropped).
    fn run<'a>(&'a self, cx: &'a mut Cx, events: &'a [In]) -> BoxFuture<'a, Result<(), BoxError>>;
}

impl<L: Listener, Cx: ?Sized + Send> RunInline<Cx, Arc<StoredEvent>> for Inline<L, Cx> {
    fn name(&self) -> &'static str {
        L::NAME
    }

    fn run<'a>(
        &'a self,
        cx: &'a mut Cx,
        events: &'a [Arc<StoredEvent>],
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(caught(async move {
            for stored in events {
                if self.consumes(stored.stream.stream_type(), &stored.event_type) {
                    let event = codec::decode::<L::Event>(stored)?;
                    (self.handler)(&self.listener, &mut *cx, &event).await?;
                }
            }
            Ok(())
        }))
    }
}

impl<L: Listener, Cx: ?Sized + Send> RunInline<Cx, Envelope<L::Event>> for Inline<L, Cx> {
    fn name(&self) -> &'static str {
        L::NAME
    }

    fn run<'a>(
        &'a self,
        cx: &'a mut Cx,
        events: &'a [Envelope<L::Event>],
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(caught(async move {
            for event in events {
                if self.consumes(event.stream.stream_type(), &event.event_type) {
                    (self.handler)(&self.listener, &mut *cx, event).await?;
                }
            }
            Ok(())
        }))
    }
}

/// `run`, with a panic as its failure.
async fn caught(
    run: impl std::future::Future<Output = Result<(), BoxError>>,
) -> Result<(), BoxError> {
    unwind::catch(run)
        .await
        .unwrap_or_else(|panic| Err(Box::new(panic)))
}

impl<L: Listener, Cx: ?Sized> std::fmt::Debug for Inline<L, Cx> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inline")
            .field("name", &L::NAME)
            .field("event_types", &self.event_types)
            .field("stream_types", &self.stream_types)
            .finish_non_exhaustive()
    }
}
