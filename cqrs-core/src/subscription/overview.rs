//! How each subscription of a store stands, from what the store keeps: what an operator
//! in another process (the `cqrs` command line, an admin page) sees, where
//! [`SubscriptionHandle::status`](super::SubscriptionHandle::status) is what the running
//! process itself sees.

use crate::{
    CheckpointStore, EventFilter, EventLog, LeaseHolder, Position, RecordedState, SavedCheckpoint,
    StoreError, SubscriptionName, SubscriptionRecord,
};

/// One subscription (one version of it: one checkpoint key), as the store knows it: its
/// checkpoint, what its runner recorded, who holds its lease, how far behind it is, its
/// dead letters and the requests it has not applied yet.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SubscriptionOverview {
    /// Its checkpoint's key (`name@vVERSION`, or the name alone for a relay).
    pub checkpoint: SubscriptionName,
    /// Its name: the key of its lease, dead letters and requests.
    pub name: SubscriptionName,
    /// The version in its checkpoint's key.
    pub version: Option<u32>,
    /// Its saved checkpoint (`None`: it has not saved one yet).
    pub saved: Option<SavedCheckpoint>,
    /// What its runner last recorded (`None`: no runner of this build ran it).
    pub record: Option<SubscriptionRecord>,
    /// Who holds its lease now.
    pub lease_holder: Option<LeaseHolder>,
    /// The events after its checkpoint.
    pub behind: Behind,
    /// Its dead letters that are not discarded.
    pub dead_letters: u64,
    /// Requests stored for it and not applied yet.
    pub pending_requests: usize,
}

/// How many events come after a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Behind {
    /// The count, up to the limit asked for.
    pub events: u64,
    /// Whether counting stopped at the limit (there may be more).
    pub capped: bool,
    /// Counted with the filter its runner recorded (`false`: no record, so counted over
    /// the whole log: at most this many are its events).
    pub filtered: bool,
}

/// How a subscription stands, from [`SubscriptionOverview::state`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OverviewState {
    /// Its lease is held and nothing it reads is after its checkpoint.
    CaughtUp,
    /// Its lease is held and it is behind.
    Running,
    /// No one holds its lease; its runner recorded that it was stopped.
    Stopped,
    /// No one holds its lease; its runner recorded that it stopped on this error.
    Failed {
        /// The error.
        error: String,
    },
    /// No one holds its lease, but its runner recorded that it ran: its process ended
    /// without stopping it (it died, or was killed).
    Ended,
    /// No one holds its lease and nothing is recorded (a checkpoint written by other
    /// code, or by an older build).
    NotRunning,
}

impl OverviewState {
    /// As operators read it: `caught up`, `running`, `stopped`, `stopped with error`,
    /// `not running (its process ended)`, `not running`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::CaughtUp => "caught up",
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Failed { .. } => "stopped with error",
            Self::Ended => "not running (its process ended)",
            Self::NotRunning => "not running",
        }
    }
}

impl SubscriptionOverview {
    /// Whether it runs, and whether it keeps up: the lease says whether it runs (a
    /// process that died holds none), the record why it does not.
    pub fn state(&self) -> OverviewState {
        if self.lease_holder.is_some() {
            return if self.behind.events == 0 {
                OverviewState::CaughtUp
            } else {
                OverviewState::Running
            };
        }
        match self.record.as_ref().map(|r| &r.state) {
            Some(RecordedState::Failed { error }) => OverviewState::Failed {
                error: error.clone(),
            },
            Some(RecordedState::Stopped) => OverviewState::Stopped,
            Some(RecordedState::Running) => OverviewState::Ended,
            _ => OverviewState::NotRunning,
        }
    }
}

/// Every subscription the store knows (a saved checkpoint, or a runner's record), by
/// checkpoint key; the events behind each are counted up to `count_limit`.
///
/// ```
/// # use cqrs_core::{CheckpointStore, EventLog};
/// # async fn demo(store: impl EventLog + CheckpointStore) -> Result<(), cqrs_core::StoreError> {
/// use cqrs_core::subscription::overview;
/// for sub in overview(&store, 1_000_000).await? {
///     println!("{} {} behind {}", sub.checkpoint, sub.state().as_str(), sub.behind.events);
/// }
/// # Ok(()) }
/// ```
pub async fn overview<S>(
    store: &S,
    count_limit: u64,
) -> Result<Vec<SubscriptionOverview>, StoreError>
where
    S: EventLog + CheckpointStore + ?Sized,
{
    let saved = store.checkpoints().await?;
    let records = store.records().await?;
    let mut keys: Vec<_> = saved
        .iter()
        .map(|c| c.name.clone())
        .chain(records.iter().map(|r| r.checkpoint.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    let mut overviews = Vec::with_capacity(keys.len());
    for key in keys {
        let saved = saved.iter().find(|c| c.name == key).cloned();
        let record = records.iter().find(|r| r.checkpoint == key).cloned();
        overviews.push(overview_of(store, key, saved, record, count_limit).await?);
    }
    Ok(overviews)
}

/// The one subscription of checkpoint `checkpoint`, as [`overview`] would list it, or
/// `None` when the store knows no such checkpoint: only its events behind are counted.
pub async fn overview_one<S>(
    store: &S,
    checkpoint: &SubscriptionName,
    count_limit: u64,
) -> Result<Option<SubscriptionOverview>, StoreError>
where
    S: EventLog + CheckpointStore + ?Sized,
{
    let saved = store
        .checkpoints()
        .await?
        .into_iter()
        .find(|c| &c.name == checkpoint);
    let record = store
        .records()
        .await?
        .into_iter()
        .find(|r| &r.checkpoint == checkpoint);
    if saved.is_none() && record.is_none() {
        return Ok(None);
    }
    let one = overview_of(store, checkpoint.clone(), saved, record, count_limit).await?;
    Ok(Some(one))
}

async fn overview_of<S>(
    store: &S,
    checkpoint: SubscriptionName,
    saved: Option<SavedCheckpoint>,
    record: Option<SubscriptionRecord>,
    count_limit: u64,
) -> Result<SubscriptionOverview, StoreError>
where
    S: EventLog + CheckpointStore + ?Sized,
{
    let (name, version) = checkpoint.unversioned();
    let position = saved.as_ref().map_or(Position::START, |c| c.position);
    let filter = record.as_ref().map(|r| &r.filter);
    let events = store
        .count_after(position, filter.unwrap_or(&EventFilter::all()), count_limit)
        .await?;
    Ok(SubscriptionOverview {
        lease_holder: store.lease_holder(&name).await?,
        dead_letters: store.parked(&name).await?.len() as u64,
        pending_requests: store.requests(&name).await?.len(),
        behind: Behind {
            events,
            capped: events >= count_limit,
            filtered: filter.is_some(),
        },
        checkpoint,
        name,
        version,
        saved,
        record,
    })
}
