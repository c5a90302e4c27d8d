//! Inline projections: read models updated inside the append, before anyone can read the
//! events.

use std::sync::{Arc, PoisonError, RwLock};

use cqrs_core::codec;
use cqrs_core::store::BoxError;
use cqrs_core::{unwind, Projection, StoreError, StoredEvent, StreamId};
use futures::future::BoxFuture;
use tokio::sync::{Mutex, MutexGuard};

use crate::MemoryStore;

/// A projection behind a trait object, with the event types it consumes.
trait RunInline: Send + Sync {
    fn name(&self) -> &'static str;
    fn run<'a>(&'a self, events: &'a [Arc<StoredEvent>]) -> BoxFuture<'a, Result<(), BoxError>>;
}

struct Runs<P> {
    projection: P,
    consumed: Vec<&'static str>,
}

impl<P: Projection> RunInline for Runs<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn run<'a>(&'a self, events: &'a [Arc<StoredEvent>]) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            for stored in events {
                if self.consumed.contains(&stored.event_type.as_str()) {
                    let event = codec::decode::<P::Event>(stored)?;
                    self.projection.handle(&event).await?;
                }
            }
            Ok(())
        })
    }
}

/// The inline projections of a store, and the gate appends pass one at a time while
/// there are any.
#[derive(Default)]
pub(crate) struct Inline {
    projections: RwLock<Vec<Arc<dyn RunInline>>>,
    gate: Mutex<()>,
}

impl Inline {
    pub(crate) fn is_empty(&self) -> bool {
        self.projections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    pub(crate) async fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().await
    }

    /// Runs every inline projection on a prepared batch; the first failure refuses it.
    pub(crate) async fn run(
        &self,
        stream: &StreamId,
        events: &[Arc<StoredEvent>],
    ) -> Result<(), StoreError> {
        let projections = self
            .projections
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for projection in projections {
            // A panic refuses the batch like an error. Nothing is held across the call
            // but the append gate (a tokio mutex, released as the error returns) and
            // nothing is stored yet.
            unwind::catch(projection.run(events))
                .await
                .unwrap_or_else(|panic| Err(Box::new(panic)))
                .map_err(|source| StoreError::Projection {
                    stream: stream.clone(),
                    projection: projection.name().to_owned(),
                    source,
                })?;
        }
        Ok(())
    }
}

impl MemoryStore {
    /// Runs `projection` inside every append, under the store's append gate: when an
    /// append returns, the projection has taken its events in, and no reader saw the
    /// events before it did. A failing projection refuses the append
    /// ([`StoreError::Projection`]) and nothing is stored, as a database would roll back
    /// the transaction.
    ///
    /// Add inline projections before the store is used: appends pass the gate one at a
    /// time while there are any. A handler that panics refuses the append the same way
    /// (the panic is caught). (An event the projection already handled before a later
    /// projection refused the batch is not taken back: handlers of inline projections on
    /// memory should fail before they change anything.)
    ///
    /// ```
    /// # use cqrs_core::Projection;
    /// # fn demo<P: Projection + Clone>(view: P) {
    /// let store = cqrs_memory::MemoryStore::new().with_inline_projection(view.clone());
    /// # }
    /// ```
    pub fn with_inline_projection<P: Projection>(self, projection: P) -> Self {
        let runs = Runs {
            consumed: P::event_types(),
            projection,
        };
        self.inner
            .inline
            .projections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(runs));
        self
    }
}
