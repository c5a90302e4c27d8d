//! Inline projections: run by the engine right after a commit.

use futures::future::BoxFuture;

use crate::store::BoxError;
use crate::{Envelope, Projection};

/// A [`Projection`] behind a trait object, so an engine can hold several of them.
pub(super) trait InlineProjection<E>: Send + Sync {
    fn name(&self) -> &'static str;
    fn handle<'a>(&'a self, events: &'a [Envelope<E>]) -> BoxFuture<'a, Result<(), BoxError>>;
}

impl<P: Projection> InlineProjection<P::Event> for P {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn handle<'a>(
        &'a self,
        events: &'a [Envelope<P::Event>],
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            let consumed = P::event_types();
            for event in events {
                if consumed.contains(&event.event_type.as_str()) {
                    Projection::handle(self, event)
                        .await
                        .map_err(|e| Box::new(e) as BoxError)?;
                }
            }
            Ok(())
        })
    }
}
