//! Transactional projections fed from a bus ([`Receive`]): each event applied once.

use std::sync::Arc;

use async_trait::async_trait;
use cqrs_core::bus::{receive_with, Receive, ReceivePolicy, Received, Settled};
use cqrs_core::subscription::{Consumer, DeliveryError, Identity};
use cqrs_core::{CheckpointStore, StoreError, StoredEvent};

use crate::error::map_sqlx;
use crate::projection::{PgProjection, Transactional};

/// A [`Transactional`] projection runs from a bus consumer too (`cqrs-nats`'s
/// `JetStreamConsumer`), with the same exactly-once effect as from a subscription.
///
/// A bus has no checkpoint in the read model's database: its consumer acknowledges after
/// the handler, and redelivers what it did not see acknowledged. So each event is applied
/// in a transaction that also records, per stream, the last version the projection
/// applied (table `bus_applied`), and an event at or below it is recognised as applied
/// already ([`Settled::AlreadyApplied`]) and changes nothing. That relies on the bus
/// delivering each stream in order, which the bus consumers of this framework do.
/// Dead letters go to the projection's store, events from elsewhere kept whole.
#[async_trait]
impl<P: PgProjection> Receive for Transactional<P> {
    fn identity(&self) -> &Identity {
        Consumer::identity(self)
    }

    async fn receive(
        &self,
        message: Received<'_>,
        policy: &ReceivePolicy,
    ) -> Result<Settled, StoreError> {
        receive_with(
            message,
            policy,
            Receive::identity(self),
            self.store(),
            |event| self.apply_once(event),
        )
        .await
    }

    /// Empties the read model and forgets what it applied from the bus, in one
    /// transaction.
    async fn reset(&self) -> Result<(), DeliveryError> {
        let mut tx = self.reset_in().await?;
        let key = Receive::identity(self).checkpoint().as_str();
        sqlx::query(&self.store().sql.bus_reset)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(())
    }

    fn dead_letters(&self) -> &dyn CheckpointStore {
        self.store()
    }

    /// In a transaction of its own, without the `bus_applied` check: the stream's later
    /// versions were applied after it was parked, so the check would take it for
    /// applied; its record is left as it is (never lowered).
    async fn redeliver(&self, event: &Arc<StoredEvent>) -> Result<(), DeliveryError> {
        let tx = self.store().begin().await?;
        let tx = self.apply(tx, event).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(())
    }
}

impl<P: PgProjection> Transactional<P> {
    /// Applies `event` unless this projection applied its stream's version before, in one
    /// transaction with the record that it did.
    async fn apply_once(&self, event: Arc<StoredEvent>) -> Result<Settled, DeliveryError> {
        let mut tx = self.store().begin().await?;
        let key = Receive::identity(self).checkpoint().as_str();
        let fresh = sqlx::query(&self.store().sql.bus_apply)
            .bind(key)
            .bind(event.stream.stream_type())
            .bind(event.stream.id())
            .bind(event.stream_version as i64)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_sqlx)?;
        if fresh.is_none() {
            tx.rollback().await.map_err(map_sqlx)?;
            return Ok(Settled::AlreadyApplied);
        }
        let tx = self.apply(tx, &event).await?;
        tx.commit().await.map_err(map_sqlx)?;
        Ok(Settled::Handled)
    }
}
