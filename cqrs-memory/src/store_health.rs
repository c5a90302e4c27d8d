//! The memory store's health: always reachable, no schema, no horizon held back; its
//! dead letters counted, its subscriptions stopped on an error listed.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use cqrs_core::{EventLog, HealthReport, StoreHealth};

use crate::MemoryStore;

#[async_trait]
impl StoreHealth for MemoryStore {
    /// In one process there is nothing to wait for: `wait` is not needed.
    async fn health(&self, _wait: Duration) -> HealthReport {
        let started = Instant::now();
        // The same trivial call a database round trip stands for; it cannot fail here.
        let reached = self.read_horizon().await;
        let mut report = match reached {
            Ok(_) => HealthReport::reachable(started.elapsed()),
            Err(error) => return HealthReport::unreachable(error.to_string()),
        };
        // Every event is readable once its append returned.
        report.horizon_lag = Some(0);
        cqrs_core::observe::metrics::horizon_lag(0);
        report.parked = self.parked_counts();
        report.failed = self.failed_records();
        report
    }
}
