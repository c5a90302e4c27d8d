//! [`PgStore`]'s health: a round trip, the schema's migration against this build's, the
//! horizon's lag, the dead letters per subscription, the subscriptions stopped on an error.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use cqrs_core::{
    CheckpointStore, HealthReport, ParkedCount, RecordedState, StoreError, StoreHealth,
};
use sqlx::Row;

use crate::error::{map_pool_error, map_sqlx};
use crate::store::MIGRATOR;
use crate::PgStore;

/// `undefined_table`: the schema has no migration history (never migrated).
const UNDEFINED_TABLE: &str = "42P01";

#[async_trait]
impl StoreHealth for PgStore {
    /// All within `wait`: a database that does not answer in time is unreachable.
    async fn health(&self, wait: Duration) -> HealthReport {
        match tokio::time::timeout(wait, self.examine()).await {
            Ok(Ok(report)) => report,
            Ok(Err(error)) => HealthReport::unreachable(error.to_string()),
            Err(_) => HealthReport::unreachable(format!(
                "PostgreSQL did not answer within {wait:?}: check that the server is up and \
                 reachable, and that the pool is not exhausted"
            )),
        }
    }
}

impl PgStore {
    /// The report, or the error that made the store unreachable.
    async fn examine(&self) -> Result<HealthReport, StoreError> {
        let started = Instant::now();
        if let Err(e) = sqlx::query("SELECT 1").execute(self.pool()).await {
            return Err(map_pool_error(self.pool(), e).await);
        }
        let mut report = HealthReport::reachable(started.elapsed());
        let expected = MIGRATOR.iter().map(|m| m.version).max();
        report.expected_schema_version = expected;
        let applied: Result<Option<i64>, sqlx::Error> =
            sqlx::query_scalar(&self.sql.schema_version)
                .fetch_one(self.pool())
                .await;
        let schema = self.schema();
        match applied {
            Ok(applied) => report.schema_version = applied,
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(UNDEFINED_TABLE) => {
                report.problems.push(format!(
                    "the schema {schema} was never migrated: run the store's migrate() (or \
                     `cqrs migrate`) once"
                ));
                return Ok(report);
            }
            Err(e) => return Err(map_sqlx(e)),
        }
        if report.schema_version != expected {
            let found = report
                .schema_version
                .map_or_else(|| "none".to_owned(), |v| v.to_string());
            let wanted = expected.map_or_else(|| "none".to_owned(), |v| v.to_string());
            report.problems.push(format!(
                "the schema {schema} is at migration {found}, this build expects {wanted}: run \
                 migrate() with this build (or a build as new as the schema)"
            ));
            // What follows reads tables of the expected schema.
            return Ok(report);
        }
        report.horizon_lag = Some(self.horizon_lag().await?.held_back_events);
        let rows = sqlx::query(&self.sql.parked_counts)
            .fetch_all(self.pool())
            .await
            .map_err(map_sqlx)?;
        report.parked = rows
            .iter()
            .map(|row| {
                let name: String = row.try_get(0).map_err(map_sqlx)?;
                let count: i64 = row.try_get(1).map_err(map_sqlx)?;
                Ok(ParkedCount::new(name, count as u64))
            })
            .collect::<Result<_, StoreError>>()?;
        report.failed = self
            .records()
            .await?
            .into_iter()
            .filter(|r| matches!(r.state, RecordedState::Failed { .. }))
            .collect();
        Ok(report)
    }
}
