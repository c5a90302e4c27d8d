//! Inline projections: read models updated inside the append transaction.

use std::sync::Arc;

use cqrs_core::inline::{Inline, RunInline};
use cqrs_core::{StoreError, StoredEvent, StreamId};
use sqlx::PgConnection;

use crate::projection::{connection_lost, PgProjection};
use crate::PgStore;

/// An inline projection as the store keeps it: run on the append's connection.
pub(crate) type InlineProjection = dyn RunInline<PgConnection, Arc<StoredEvent>>;

impl PgStore {
    /// Runs `projection` inside every append of this store (and of its later clones):
    /// the append becomes `BEGIN`, the append statement, each inline projection's
    /// [`handle`](PgProjection::handle) on the events it consumes, `COMMIT`, on one
    /// connection. When the append returns, the read model holds its events; no reader
    /// ever sees the events without their effect. A failing projection rolls everything
    /// back and the append fails with
    /// [`StoreError::Projection`](cqrs_core::StoreError::Projection): nothing is stored. A
    /// handler that panics fails the append the same way (the panic is caught, and the
    /// transaction rolled back before the connection is reused).
    ///
    /// [`append_in`](PgStore::append_in) runs them too, inside a savepoint of the caller's
    /// transaction. A store without inline projections keeps its one-round-trip append.
    ///
    /// What it costs: two more round trips per append (`BEGIN` and `COMMIT`) plus the
    /// handlers' own statements, and the append's transaction, which holds the read
    /// horizon of every subscriber, stays open while the handlers run.
    ///
    /// An inline projection sees the events appended while it is registered, and only
    /// those: [`reset`](PgProjection::reset) is never called, and history written before
    /// is not replayed. Register it before the first event, or build its table from
    /// history first (e.g. with a one-off query). Stores cloned before this call do not
    /// run it: add inline projections when building the store.
    ///
    /// ```no_run
    /// # async fn demo<P: cqrs_postgres::PgProjection>(view: P) -> Result<(), Box<dyn std::error::Error>> {
    /// let store = cqrs_postgres::PgStore::connect("postgres://app@localhost/app")
    ///     .await?
    ///     .with_inline_projection(view);
    /// # Ok(()) }
    /// ```
    pub fn with_inline_projection<P: PgProjection>(mut self, projection: P) -> Self {
        let mut all: Vec<Arc<InlineProjection>> = self.inline.iter().cloned().collect();
        all.push(Arc::new(Inline::new(
            projection,
            |projection, tx, event| Box::pin(projection.handle(tx, event)),
        )));
        self.inline = all.into();
        self
    }

    /// Runs every inline projection on `events`, just appended to `stream` on `conn`.
    pub(crate) async fn run_inline(
        &self,
        conn: &mut PgConnection,
        stream: &StreamId,
        events: &[Arc<StoredEvent>],
    ) -> Result<(), StoreError> {
        for projection in self.inline.iter() {
            // A panic refuses the append like an error (caught by the run): the caller
            // rolls the transaction back before the connection is used again.
            let ran = projection.run(&mut *conn, events).await;
            if let Err(source) = ran {
                // A broken connection is the store's failure (retriable), not the
                // projection's refusal.
                if connection_lost(source.as_ref()) {
                    return Err(StoreError::Unavailable(source));
                }
                return Err(StoreError::Projection {
                    stream: stream.clone(),
                    projection: projection.name().to_owned(),
                    source,
                });
            }
        }
        Ok(())
    }
}
