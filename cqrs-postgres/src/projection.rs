//! Transactional projections: read models in the events' database, updated in the same
//! transaction as their checkpoint, so each event takes effect exactly once.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use cqrs_core::ident::IdentifierError;
use cqrs_core::subscription::{decode, Consumer, DeliveryError, Identity};
use cqrs_core::{
    unwind, CheckpointStore, Envelope, Listener, Position, StoreError, StoredEvent, StreamId,
    SubscriptionName,
};
use sqlx::postgres::Postgres;
use sqlx::{PgConnection, Row, Transaction};

use crate::error::{is_unavailable, map_sqlx};
use crate::PgStore;

/// A read model kept in tables of the events' PostgreSQL database, written through the
/// transaction it is handed.
///
/// A [`Listener`] (its name, the event and stream types it reads, filtered in SQL) with a
/// version, and a handler and a reset that take the transaction. A handler's error that
/// is (or has as its source) a [`sqlx::Error`] meaning the connection broke is retried as
/// a store failure, never parked as the event's fault. `#[derive(PgProjection)]` writes
/// both impls from inherent `async fn handle(&self, tx, event)` and `async fn reset(&self,
/// tx)`.
///
/// The same trait serves two ways of running it:
/// - as a subscription, with [`PgStore::transactional`]: events are delivered in batches
///   after they commit, and each batch's effects commit together with the subscription's
///   checkpoint, so that a crash, a retry or a second process never applies an event
///   twice (exactly-once effect, eventually consistent);
/// - inside every append, with [`PgStore::with_inline_projection`]: the read model
///   commits with the events themselves (strongly consistent), and a failing handler
///   refuses the append.
///
/// Handlers must write through `tx` only: work done on another connection is not rolled
/// back with the batch and breaks the exactly-once guarantee.
///
/// ```no_run
/// use cqrs_core::{DomainEvent, Envelope};
/// use cqrs_postgres::sqlx::{self, PgConnection};
/// use cqrs_postgres::PgProjection;
///
/// #[derive(Debug, DomainEvent)]
/// enum AccountEvent {
///     Deposited { amount: i64 },
/// }
///
/// /// Balance per account, in table `balances`.
/// #[derive(PgProjection)]
/// #[pg_projection(event = AccountEvent, error = sqlx::Error)]
/// struct Balances;
///
/// impl Balances {
///     async fn handle(&self, tx: &mut PgConnection, event: &Envelope<AccountEvent>)
///         -> Result<(), sqlx::Error> {
///         let AccountEvent::Deposited { amount } = event.data;
///         sqlx::query("INSERT INTO balances (account, balance) VALUES ($1, $2) \
///                      ON CONFLICT (account) DO UPDATE SET balance = balances.balance + $2")
///             .bind(event.stream.id())
///             .bind(amount)
///             .execute(&mut *tx)
///             .await?;
///         Ok(())
///     }
///
///     async fn reset(&self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
///         sqlx::query("TRUNCATE balances").execute(&mut *tx).await?;
///         Ok(())
///     }
/// }
/// ```
///
/// Written by hand, the same read model is two impls: [`Listener`] (`NAME`, `Event`,
/// `Error`, and `event_types`/`stream_types` when it reads less than everything) and
/// `PgProjection` (`VERSION` when above 1, `handle`, `reset`).
pub trait PgProjection: Listener {
    /// Version of the read model's logic: a new version finds no checkpoint, so its
    /// subscription resets the read model and replays every event.
    const VERSION: u32 = 1;

    /// Applies one event, on `tx`: an open transaction that commits with the checkpoint
    /// (or with the append, for an inline projection).
    fn handle(
        &self,
        tx: &mut PgConnection,
        event: &Envelope<Self::Event>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Empties the read model, on `tx`, before it is built again from the first event. It
    /// commits together with the checkpoint's move back to the start.
    fn reset(&self, tx: &mut PgConnection) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stream `stream`, of a type the read model reads, was deleted: drop what the read
    /// model keeps of it, on `tx` (which commits with the checkpoint past the stream's
    /// tombstone). By default the rows stay (the derive's `#[pg_projection(on_delete)]`
    /// forwards to an inherent `async fn stream_deleted(&self, tx, stream)`).
    fn stream_deleted(
        &self,
        tx: &mut PgConnection,
        stream: &StreamId,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = (tx, stream);
        std::future::ready(Ok(()))
    }
}

/// Whether `error` (or one of its sources) is a driver error that means the connection
/// broke: then the failure is the database's, not the event's.
pub(crate) fn connection_lost(error: &(dyn std::error::Error + 'static)) -> bool {
    in_chain::<sqlx::Error>(error, is_unavailable)
}

/// Whether `error` (or one of its sources) is [`StoreError::StaleTransaction`]: an append
/// the handler made in the batch's transaction, refused because the transaction is older
/// than the stream's last writer. A new transaction will do: the database's failure, not
/// the event's.
fn stale_transaction(error: &(dyn std::error::Error + 'static)) -> bool {
    in_chain::<StoreError>(error, |e| matches!(e, StoreError::StaleTransaction { .. }))
}

/// Whether `error` or one of its sources is a `T` that `pick` picks.
fn in_chain<T: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
    pick: impl Fn(&T) -> bool,
) -> bool {
    std::iter::successors(Some(error), |e| e.source())
        .any(|e| e.downcast_ref::<T>().is_some_and(&pick))
}

/// Feeds a [`PgProjection`] from a [`Subscription`](cqrs_core::Subscription), with
/// exactly-once effect: built by [`PgStore::transactional`].
///
/// Each batch is one transaction: lock the checkpoint row (`SELECT ... FOR UPDATE`,
/// creating it if absent), check that it is where the runner says it is, decode and
/// handle every event, move the checkpoint, commit. A failing handler rolls the whole
/// batch back; so does one that panics (the panic is caught and is the event's failure,
/// as an error would be). A checkpoint found elsewhere (another process delivered since:
/// the lease changed hands) applies nothing and returns
/// [`DeliveryError::CheckpointMoved`], which fences a stale runner even if, for a moment,
/// two believe they hold the lease.
///
/// While a batch runs, its transaction holds the read horizon: no subscriber of the
/// cluster sees events committed after the batch started until it commits. Keep handlers
/// quick and batches moderate ([`Subscription::batch_size`](cqrs_core::Subscription::batch_size)).
///
/// ```no_run
/// # async fn demo<P: cqrs_postgres::PgProjection>(store: cqrs_postgres::PgStore, view: P)
/// #     -> Result<(), Box<dyn std::error::Error>> {
/// use cqrs_core::Subscription;
/// let running = Subscription::new(store.clone(), store.transactional(view)?).start();
/// // ...
/// running.shutdown().await?;
/// # Ok(()) }
/// ```
pub struct Transactional<P> {
    projection: P,
    store: PgStore,
    identity: Identity,
}

impl<P: PgProjection> Transactional<P> {
    /// A consumer that feeds `projection` and keeps its checkpoint, lease and dead letters
    /// in `store`, the database of the read model.
    ///
    /// Refuses a projection whose [`NAME`](Listener::NAME) (with its version),
    /// [`event_types`](Listener::event_types) or [`stream_types`](Listener::stream_types)
    /// are not valid identifiers.
    pub fn new(projection: P, store: PgStore) -> Result<Self, IdentifierError> {
        Ok(Self {
            identity: Identity::of::<P>(P::VERSION)?,
            projection,
            store,
        })
    }

    /// The projection it feeds.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Locks the checkpoint row of `key` for the rest of `tx` and returns it; creates it
    /// at [`Position::START`] when it is absent and `from` is the start (a new consumer
    /// whose reset did not save one, e.g. after a manual delete).
    async fn lock_checkpoint(
        &self,
        tx: &mut PgConnection,
        key: &SubscriptionName,
        from: Position,
    ) -> Result<Option<Position>, StoreError> {
        let locked = self.select_for_update(tx, key).await?;
        if locked.is_some() || from != Position::START {
            return Ok(locked);
        }
        // A concurrent creator makes this wait for its commit, then do nothing; the next
        // select then sees (and locks) its row.
        sqlx::query(&self.store.sql.create_checkpoint)
            .bind(key.as_str())
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        self.select_for_update(tx, key).await
    }

    async fn select_for_update(
        &self,
        tx: &mut PgConnection,
        key: &SubscriptionName,
    ) -> Result<Option<Position>, StoreError> {
        let row = sqlx::query(&self.store.sql.lock_checkpoint)
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let commit: i64 = row.try_get(0).map_err(map_sqlx)?;
        let sequence: i64 = row.try_get(1).map_err(map_sqlx)?;
        // Bit for bit, as `save_checkpoint` stored them.
        Ok(Some(Position::from_parts(commit as u64, sequence as u64)))
    }
}

/// Rolls `tx` back after a handler failed, and says whose failure it was: the store's
/// when the connection broke (retried without limit, never parked), the event's otherwise
/// (`event`, or a reset when `event` is `None`).
async fn failed<E: std::error::Error + Send + Sync + 'static>(
    tx: Transaction<'static, Postgres>,
    event: Option<&Arc<StoredEvent>>,
    error: E,
) -> DeliveryError {
    let lost = connection_lost(&error);
    if let Err(e) = tx.rollback().await {
        if is_unavailable(&e) {
            return DeliveryError::Store(map_sqlx(e));
        }
    }
    if lost {
        return DeliveryError::Store(StoreError::Unavailable(Box::new(error)));
    }
    if stale_transaction(&error) {
        return DeliveryError::Store(StoreError::Backend(Box::new(error)));
    }
    match event {
        Some(event) => DeliveryError::Event {
            event: Arc::clone(event),
            source: Box::new(error),
        },
        None => DeliveryError::Reset(Box::new(error)),
    }
}

#[async_trait]
impl<P: PgProjection> Consumer for Transactional<P> {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn checkpoints(&self) -> &dyn CheckpointStore {
        &self.store
    }

    async fn deliver(
        &self,
        from: Position,
        events: &[Arc<StoredEvent>],
        to: Position,
    ) -> Result<(), DeliveryError> {
        let key = self.identity.checkpoint();
        let mut tx = self.store.begin().await?;
        let actual = self.lock_checkpoint(&mut tx, key, from).await?;
        if actual != Some(from) {
            // Dropping `tx` rolls it back: nothing applied, nothing locked.
            return Err(DeliveryError::CheckpointMoved {
                name: key.to_string(),
                expected: from,
                actual,
            });
        }
        for stored in events {
            tx = self.apply(tx, stored).await?;
        }
        self.store.save_checkpoint_in(&mut tx, key, to).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(())
    }

    /// Empties the read model and moves the checkpoint to the start in one transaction:
    /// a crash leaves either both done or neither.
    async fn reset(&self) -> Result<(), DeliveryError> {
        let mut tx = self.reset_in().await?;
        self.store
            .save_checkpoint_in(&mut tx, self.identity.checkpoint(), Position::START)
            .await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(())
    }
}

impl<P: PgProjection> Transactional<P> {
    /// Decodes `stored` and hands it to the projection on `tx`; gives `tx` back, or
    /// rolls it back and says whose failure it was.
    ///
    /// It runs in the event's `cqrs.process` span, continuing the event's trace; the
    /// batch's commit is the subscription's, after every event's span.
    pub(crate) async fn apply(
        &self,
        tx: Transaction<'static, Postgres>,
        stored: &Arc<StoredEvent>,
    ) -> Result<Transaction<'static, Postgres>, DeliveryError> {
        let applying = self.apply_in_span(tx, stored);
        cqrs_core::observe::trace::in_process_span(P::NAME, stored, applying).await
    }

    async fn apply_in_span(
        &self,
        mut tx: Transaction<'static, Postgres>,
        stored: &Arc<StoredEvent>,
    ) -> Result<Transaction<'static, Postgres>, DeliveryError> {
        // A stream's deletion notice is no event of the projection's type: it has a call
        // of its own.
        if stored.is_tombstone() {
            return match unwind::catch(self.projection.stream_deleted(&mut tx, &stored.stream))
                .await
            {
                Ok(Ok(())) => Ok(tx),
                Ok(Err(e)) => Err(failed(tx, Some(stored), e).await),
                Err(panic) => Err(failed(tx, Some(stored), panic).await),
            };
        }
        // A panic (in an upcaster or in the handler) fails the event like an error, and
        // the transaction is rolled back explicitly as for one: the handler may have left
        // it anywhere, and the connection goes back to the pool.
        let event = match unwind::catch_sync(|| decode::<P::Event>(stored)) {
            Ok(decoded) => decoded?,
            Err(panic) => return Err(failed(tx, Some(stored), panic).await),
        };
        match unwind::catch(self.projection.handle(&mut tx, &event)).await {
            Ok(Ok(())) => Ok(tx),
            Ok(Err(e)) => Err(failed(tx, Some(stored), e).await),
            Err(panic) => Err(failed(tx, Some(stored), panic).await),
        }
    }

    /// A transaction in which the projection's `reset` ran, to commit with whatever else
    /// a rebuild resets.
    pub(crate) async fn reset_in(&self) -> Result<Transaction<'static, Postgres>, DeliveryError> {
        let mut tx = self.store.begin().await?;
        match unwind::catch(self.projection.reset(&mut tx)).await {
            Ok(Ok(())) => Ok(tx),
            Ok(Err(e)) => Err(failed(tx, None, e).await),
            Err(panic) => Err(failed(tx, None, panic).await),
        }
    }

    /// The store it writes through.
    pub(crate) fn store(&self) -> &PgStore {
        &self.store
    }
}

impl<P> std::fmt::Debug for Transactional<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactional")
            .field("projection", &std::any::type_name::<P>())
            .field("store", &self.store)
            .field("identity", &self.identity)
            .finish()
    }
}

impl PgStore {
    /// A subscription consumer that feeds `projection` with exactly-once effect: see
    /// [`Transactional`] (and [`Transactional::new`] for what it refuses).
    ///
    /// ```no_run
    /// # async fn demo<P: cqrs_postgres::PgProjection>(store: cqrs_postgres::PgStore, view: P)
    /// #     -> Result<(), cqrs_core::ident::IdentifierError> {
    /// use cqrs_core::Subscription;
    /// let running = Subscription::new(store.clone(), store.transactional(view)?).start();
    /// # Ok(()) }
    /// ```
    pub fn transactional<P: PgProjection>(
        &self,
        projection: P,
    ) -> Result<Transactional<P>, IdentifierError> {
        Transactional::new(projection, self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::connection_lost;

    #[derive(Debug, thiserror::Error)]
    enum ViewError {
        #[error("database: {0}")]
        Db(#[from] sqlx::Error),
        #[error("bad data")]
        Bad,
    }

    #[test]
    fn a_broken_connection_is_found_through_wrapping_errors() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(connection_lost(&sqlx::Error::Io(io)));
        assert!(connection_lost(&ViewError::Db(sqlx::Error::PoolClosed)));
        assert!(!connection_lost(&ViewError::Db(sqlx::Error::RowNotFound)));
        assert!(!connection_lost(&ViewError::Bad));
    }
}
