//! A store's report on itself: can it serve, and what should an operator look at.

use std::time::Duration;

use async_trait::async_trait;

/// Answers "can this store serve?" with a typed report, for `/status` endpoints,
/// readiness probes and operators' tools.
#[async_trait]
pub trait StoreHealth: Send + Sync + 'static {
    /// The store's report, within about `wait`.
    ///
    /// Never an error: a store that cannot be reached, or does not answer within `wait`,
    /// is a report that says so ([`HealthReport::reachable`] `false`, with the reason).
    async fn health(&self, wait: Duration) -> HealthReport;
}

/// What [`StoreHealth::health`] found.
///
/// [`problems`](Self::problems) decides [`is_healthy`](Self::is_healthy): the store is
/// unreachable, or its schema is not the one this build expects. The rest are figures
/// for a person or a threshold of the caller's: dead letters are a subscription's
/// business (the store that keeps them is fine), and how far the horizon may lag is the
/// application's choice.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HealthReport {
    /// Whether the store answered.
    pub reachable: bool,
    /// How long a trivial round trip took (`None` when unreachable).
    pub round_trip: Option<Duration>,
    /// The latest migration applied to the store's schema; `None` for a store without
    /// one (memory) or when it could not be read.
    pub schema_version: Option<i64>,
    /// The latest migration this build has (`None`: no schema).
    pub expected_schema_version: Option<i64>,
    /// Committed events that readers cannot see yet, because an older transaction is
    /// still open (see [`EventLog::read_horizon`](super::EventLog::read_horizon)).
    pub horizon_lag: Option<u64>,
    /// Subscriptions with dead letters that are not discarded, by name.
    pub parked: Vec<ParkedCount>,
    /// Subscriptions whose runner recorded that it stopped on an error
    /// ([`RecordedState::Failed`](super::RecordedState::Failed)), and that no runner has
    /// started again since, by checkpoint.
    pub failed: Vec<super::SubscriptionRecord>,
    /// Why the store cannot serve, one sentence each: empty when it can.
    pub problems: Vec<String>,
}

impl HealthReport {
    /// A report of a store that answered, with nothing found wrong yet.
    pub fn reachable(round_trip: Duration) -> Self {
        Self {
            reachable: true,
            round_trip: Some(round_trip),
            schema_version: None,
            expected_schema_version: None,
            horizon_lag: None,
            parked: Vec::new(),
            failed: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// A report of a store that could not be reached, and why.
    pub fn unreachable(why: impl Into<String>) -> Self {
        Self {
            reachable: false,
            round_trip: None,
            schema_version: None,
            expected_schema_version: None,
            horizon_lag: None,
            parked: Vec::new(),
            failed: Vec::new(),
            problems: vec![why.into()],
        }
    }

    /// Whether the store can serve: reachable, and no problem found.
    pub fn is_healthy(&self) -> bool {
        self.reachable && self.problems.is_empty()
    }
}

/// How many dead letters a subscription has that are not discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParkedCount {
    /// The subscription's name (the key of its dead letters, without a version).
    pub subscription: String,
    /// Its parked letters.
    pub letters: u64,
}

impl ParkedCount {
    /// `letters` dead letters of `subscription`.
    pub fn new(subscription: impl Into<String>, letters: u64) -> Self {
        Self {
            subscription: subscription.into(),
            letters,
        }
    }
}
