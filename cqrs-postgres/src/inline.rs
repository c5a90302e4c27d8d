//! Inline projections: read models updated inside the append transaction.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use cqrs_core::store::BoxError;
use cqrs_core::{codec, unwind, StoreError, StoredEvent, StreamId};
use sqlx::PgConnection;

use crate::projection::{connection_lost, PgProjection};
use crate::PgStore;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A [`PgProjection`] behind a trait object, so that a store can hold several.
pub(crate) trait RunInline: Send + Sync {
    fn name(&self) -> &'static str;
    fn run<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [Arc<StoredEvent>],
    ) -> BoxFuture<'a, Result<(), BoxError>>;
}

/// A projection with the types it consumes (an empty list means all, as in an
/// `EventFilter`), listed once rather than on every append. Matched here, never sent to
/// the database, so the lists need no validation: an invalid name matches no event.
struct Inline<P> {
    projection: P,
    event_types: Vec<&'static str>,
    stream_types: Vec<&'static str>,
}

impl<P: PgProjection> RunInline for Inline<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn run<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [Arc<StoredEvent>],
    ) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            for stored in events {
                let stream_type = stored.stream.stream_type();
                let event_type = stored.event_type.as_str();
                if (self.event_types.is_empty() || self.event_types.contains(&event_type))
                    && (self.stream_types.is_empty() || self.stream_types.contains(&stream_type))
                {
                    let event = codec::decode::<P::Event>(stored)?;
                    self.projection.handle(&mut *conn, &event).await?;
                }
            }
            Ok(())
        })
    }
}

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
        let mut all: Vec<Arc<dyn RunInline>> = self.inline.iter().cloned().collect();
        all.push(Arc::new(Inline {
            projection,
            event_types: P::event_types(),
            stream_types: P::stream_types(),
        }));
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
            // A panic refuses the append like an error: the caller rolls the transaction
            // back before the connection is used again.
            let ran = unwind::catch(projection.run(&mut *conn, events))
                .await
                .unwrap_or_else(|panic| Err(Box::new(panic)));
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
