//! The checkpoint store trait: where subscriptions keep their state.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{LeaseHolder, PendingRequest, StoreError, SubscriptionRecord, SubscriptionRequest};
use crate::{Position, StoredEvent, SubscriptionName};

/// Keeps what a subscription needs to survive restarts and to run once across processes:
/// its position, its lease, and the events it parked.
///
/// Names are [`SubscriptionName`]s, validated where they are built: an implementation
/// stores any name it is handed as it is, and never has to check one.
///
/// A read model should keep its checkpoint where it keeps its data: a read model in a
/// process's memory with its checkpoint in a database would, after a restart, resume from
/// a position whose effects were lost with the process.
#[async_trait]
pub trait CheckpointStore: Send + Sync + 'static {
    /// The saved position of subscription `name`, or `None` if it never saved one.
    async fn load_checkpoint(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Position>, StoreError>;

    /// Saves the position of subscription `name`, replacing the previous one (saving
    /// [`Position::START`] resets it, for a rebuild).
    async fn save_checkpoint(
        &self,
        name: &SubscriptionName,
        position: Position,
    ) -> Result<(), StoreError>;

    /// Every saved checkpoint, by name: what an operator lists to see which
    /// subscriptions (and versions of them) this store serves, and how far each got.
    async fn checkpoints(&self) -> Result<Vec<SavedCheckpoint>, StoreError>;

    /// Tries to become the one active consumer of subscription `name`.
    ///
    /// Returns `None` at once when another holder has it. The lease lasts until the
    /// returned value is dropped, or until the backend loses it (on PostgreSQL, when the
    /// connection holding its lock breaks, or the process dies): holders check
    /// [`Lease::is_held`] between batches. Within one process and one store, two calls
    /// for the same name never both succeed.
    async fn acquire_lease(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Box<dyn Lease>>, StoreError>;

    /// Parks `event` for subscription `name` with the `error` that stopped it (the
    /// dead-letter store), so the subscription can go on. Parking the same event twice
    /// for the same name keeps one entry (with the latest error).
    async fn park(
        &self,
        name: &SubscriptionName,
        event: &StoredEvent,
        error: &str,
    ) -> Result<(), StoreError>;

    /// The events parked for subscription `name`, in global order (not the discarded
    /// ones).
    async fn parked(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError>;

    /// Sets the dead letter of event `event_id` for subscription `name` aside for good,
    /// with `reason` (who decided, and why), which is kept with it: it leaves
    /// [`parked`](Self::parked) and is listed by [`discarded`](Self::discarded). Parking
    /// the event again brings it back. Returns whether there was such a parked letter
    /// (`false`: none, or discarded already; nothing changed).
    async fn discard(
        &self,
        name: &SubscriptionName,
        event_id: Uuid,
        reason: &str,
    ) -> Result<bool, StoreError>;

    /// The dead letters of subscription `name` that were discarded, in global order,
    /// each with its [`Discarded`] reason and time.
    async fn discarded(&self, name: &SubscriptionName) -> Result<Vec<DeadLetter>, StoreError>;

    /// Removes the parked dead letter of event `event_id` for subscription `name`: it was
    /// handed to the handler again and took effect. Returns whether there was one.
    async fn resolve(&self, name: &SubscriptionName, event_id: Uuid) -> Result<bool, StoreError>;

    /// Stores `request` for subscription `name`, for its runner to apply between two
    /// batches (or when it next starts). See [`SubscriptionRequest`] for why requests are
    /// stored rather than applied by whoever asks.
    async fn request(
        &self,
        name: &SubscriptionName,
        request: SubscriptionRequest,
    ) -> Result<PendingRequest, StoreError>;

    /// The requests of subscription `name` not yet applied, oldest first.
    async fn requests(&self, name: &SubscriptionName) -> Result<Vec<PendingRequest>, StoreError>;

    /// Removes request `id` of subscription `name`, once applied; returns whether it was
    /// still there (`false`: gone already, nothing changed). Several processes that may
    /// apply the same request (bus consumers) claim it with this before applying it.
    async fn complete_request(&self, name: &SubscriptionName, id: Uuid)
        -> Result<bool, StoreError>;

    /// Keeps `record` (replacing the previous one of its checkpoint): what a
    /// subscription's runner says about itself for operators.
    async fn record(&self, record: &SubscriptionRecord) -> Result<(), StoreError>;

    /// Every kept [`SubscriptionRecord`], by checkpoint key.
    async fn records(&self) -> Result<Vec<SubscriptionRecord>, StoreError>;

    /// Who holds the lease of subscription `name` now, or `None` if no one does.
    async fn lease_holder(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<LeaseHolder>, StoreError>;
}

/// The right to be the active consumer of a subscription, from
/// [`CheckpointStore::acquire_lease`]. Dropping it gives the subscription up.
#[async_trait]
pub trait Lease: Send + Sync + std::fmt::Debug {
    /// Whether the lease is still held. `false` once the backend lost it; the holder must
    /// then stop delivering and try to acquire it again.
    async fn is_held(&self) -> bool;
}

/// A subscription's saved position, from [`CheckpointStore::checkpoints`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SavedCheckpoint {
    /// The checkpoint's name (`name@vVERSION` for listeners, the name for a relay).
    pub name: SubscriptionName,
    /// Every event up to here took effect.
    pub position: Position,
    /// When it was last saved.
    pub saved_at: DateTime<Utc>,
}

impl SavedCheckpoint {
    /// Checkpoint `name` at `position`, saved at `saved_at`.
    pub fn new(name: SubscriptionName, position: Position, saved_at: DateTime<Utc>) -> Self {
        Self {
            name,
            position,
            saved_at,
        }
    }
}

/// An event a subscription could not handle and set aside ([`CheckpointStore::park`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The event, as stored.
    pub event: Arc<StoredEvent>,
    /// Why it was parked (the handler's or the codec's error, as text).
    pub error: String,
    /// When it was parked (last time, if it was parked again).
    pub parked_at: DateTime<Utc>,
    /// Set when someone discarded it ([`CheckpointStore::discard`]).
    pub discarded: Option<Discarded>,
}

/// Why and when a dead letter was discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    /// The reason given.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}
