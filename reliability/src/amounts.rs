//! The read model of the failure tests (database restart, killed consumer): a
//! transactional projection whose tables make a lost or doubled effect visible.

use std::collections::BTreeMap;

use cqrs_core::{codec, DomainEvent, Envelope, Listener, Metadata, NewEvent};
use cqrs_postgres::sqlx::{self, PgConnection, PgPool, Row};
use cqrs_postgres::{PgProjection, PgStore};

/// The events the failure tests write.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
pub enum Money {
    /// `amount` was deposited into the stream's account.
    Deposited {
        /// How much.
        amount: i64,
    },
}

/// One `Deposited` event per amount, ready to append.
pub fn deposits(amounts: impl IntoIterator<Item = i64>) -> Vec<NewEvent> {
    amounts
        .into_iter()
        .map(|amount| {
            codec::encode(&Money::Deposited { amount }, Metadata::default())
                .expect("a deposit encodes")
        })
        .collect()
}

/// Per stream, the sum of its deposits and their number (table `amounts_v<V>_totals`);
/// per event, how many times it was applied and by which runner (`amounts_v<V>_applied`),
/// so that an event applied twice, or not at all, shows. Each version has tables of its
/// own, so that a rebuild under a new version can be compared with the old one.
#[derive(Debug, Clone)]
pub struct Amounts<const V: u32 = 1> {
    /// `"schema".amounts_v<V>`: the tables' common prefix.
    prefix: String,
    runner: String,
}

/// How often the events were applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applications {
    /// Distinct events applied.
    pub events: i64,
    /// The most times one event was applied (1 when each took effect once).
    pub most: i32,
}

impl<const V: u32> Amounts<V> {
    /// The read model in `store`'s schema, creating its tables if needed; applications
    /// are recorded as by runner `runner`.
    pub async fn create(store: &PgStore, runner: &str) -> Self {
        let amounts = Self {
            prefix: format!("\"{}\".amounts_v{V}", store.schema()),
            runner: runner.to_owned(),
        };
        let p = &amounts.prefix;
        sqlx::raw_sql(&format!(
            "CREATE TABLE IF NOT EXISTS {p}_totals (stream_id text PRIMARY KEY, \
                 total bigint NOT NULL, events bigint NOT NULL); \
             CREATE TABLE IF NOT EXISTS {p}_applied (event_id uuid PRIMARY KEY, \
                 times int NOT NULL, runner text NOT NULL)"
        ))
        .execute(store.pool())
        .await
        .expect("create the read model's tables");
        amounts
    }

    /// Per stream id: the total and the number of deposits.
    pub async fn totals(&self, pool: &PgPool) -> BTreeMap<String, (i64, i64)> {
        let rows = sqlx::query(&format!(
            "SELECT stream_id, total, events FROM {}_totals",
            self.prefix
        ))
        .fetch_all(pool)
        .await
        .expect("read the totals");
        rows.iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect()
    }

    /// How often the events were applied.
    pub async fn applications(&self, pool: &PgPool) -> Applications {
        let row = sqlx::query(&format!(
            "SELECT count(*), coalesce(max(times), 0) FROM {}_applied",
            self.prefix
        ))
        .fetch_one(pool)
        .await
        .expect("read the applications");
        Applications {
            events: row.get(0),
            most: row.get(1),
        }
    }

    /// Events applied, per runner (the last runner to apply each).
    pub async fn applied_by(&self, pool: &PgPool) -> BTreeMap<String, i64> {
        let rows = sqlx::query(&format!(
            "SELECT runner, count(*) FROM {}_applied GROUP BY runner",
            self.prefix
        ))
        .fetch_all(pool)
        .await
        .expect("read the runners");
        rows.iter().map(|row| (row.get(0), row.get(1))).collect()
    }

    /// The runner that applied `event_id`, if it was applied.
    pub async fn runner_of(&self, pool: &PgPool, event_id: uuid::Uuid) -> Option<String> {
        sqlx::query_scalar(&format!(
            "SELECT runner FROM {}_applied WHERE event_id = $1",
            self.prefix
        ))
        .bind(event_id)
        .fetch_optional(pool)
        .await
        .expect("read a runner")
    }
}

impl<const V: u32> Listener for Amounts<V> {
    const NAME: &'static str = "amounts";
    type Event = Money;
    type Error = sqlx::Error;
}

impl<const V: u32> PgProjection for Amounts<V> {
    const VERSION: u32 = V;

    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &Envelope<Money>,
    ) -> Result<(), sqlx::Error> {
        let Money::Deposited { amount } = event.data;
        let p = &self.prefix;
        sqlx::query(&format!(
            "INSERT INTO {p}_applied AS a (event_id, times, runner) VALUES ($1, 1, $2) \
             ON CONFLICT (event_id) DO UPDATE SET times = a.times + 1, runner = excluded.runner"
        ))
        .bind(event.event_id)
        .bind(&self.runner)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {p}_totals AS t (stream_id, total, events) VALUES ($1, $2, 1) \
             ON CONFLICT (stream_id) DO UPDATE SET total = t.total + $2, events = t.events + 1"
        ))
        .bind(event.stream.id())
        .bind(amount)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        for table in ["applied", "totals"] {
            sqlx::query(&format!("DELETE FROM {}_{table}", self.prefix))
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }
}
