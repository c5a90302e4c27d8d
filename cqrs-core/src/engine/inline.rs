//! Inline projections: run by the engine right after a commit.

use futures::future::BoxFuture;

use crate::store::BoxError;
use crate::{Envelope, Projection};

/// A [`Projection`] behind a trait object, so an engine can hold several of them.
pub(super) trait InlineProjection<E>: Send + Sync {
    fn name(&self) -> &'static str;
    fn handle<'a>(&'a self, events: &'a [Envelope<E>]) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// A projection with the list of event types it consumes, computed once when the engine
/// is built rather than on every commit.
pub(super) struct Inline<P> {
    projection: P,
    consumed: Vec<&'static str>,
}

impl<P: Projection> Inline<P> {
    pub(super) fn new(projection: P) -> Self {
        Self {
            projection,
            consumed: P::event_types(),
        }
    }
}

impl<P: Projection> InlineProjection<P::Event> for Inline<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn handle<'a>(
        &'a self,
        events: &'a [Envelope<P::Event>],
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            for event in events {
                if self.consumed.contains(&event.event_type.as_str()) {
                    self.projection
                        .handle(event)
                        .await
                        .map_err(|e| Box::new(e) as BoxError)?;
                }
            }
            Ok(())
        })
    }
}
