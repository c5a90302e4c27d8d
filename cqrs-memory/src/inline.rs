//! Inline projections: read models updated inside the append, before anyone can read the
//! events.

use std::sync::{Arc, PoisonError, RwLock};

use cqrs_core::inline::{Inline, RunInline};
use cqrs_core::{Projection, StoreError, StoredEvent, StreamId};
use tokio::sync::{Mutex, MutexGuard};

use crate::MemoryStore;

/// An inline projection as the store keeps it: run on the prepared batch.
type InlineProjection = dyn RunInline<(), Arc<StoredEvent>>;

/// The inline projections of a store, and the gate appends pass one at a time while
/// there are any.
#[derive(Default)]
pub(crate) struct InlineProjections {
    projections: RwLock<Vec<Arc<InlineProjection>>>,
    gate: Mutex<()>,
}

impl InlineProjections {
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
            // A panic refuses the batch like an error (caught by the run). Nothing is
            // held across the call but the append gate (a tokio mutex, released as the
            // error returns) and nothing is stored yet.
            projection
                .run(&mut (), events)
                .await
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
        self.inner
            .inline
            .projections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::new(Inline::projection(projection)));
        self
    }
}
