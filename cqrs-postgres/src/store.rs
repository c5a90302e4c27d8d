//! [`PgStore`]: construction, migrations, start-up checks and the horizon.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Row};

use crate::connection::Connections;
use crate::error::{check_server_version, map_connect_error, map_pool_error, map_sqlx, SetupError};
use crate::inline::InlineProjection;
use crate::lease::Releases;
use crate::schema::SchemaName;
use crate::sql::Sql;

/// The embedded migrations (`cqrs-postgres/migrations`).
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!();

/// Event, snapshot and checkpoint store on PostgreSQL 13 or later.
///
/// A `PgStore` is a [`PgPool`] plus a validated [`SchemaName`]; cloning it is cheap and
/// clones share the pool. It implements [`EventStore`](cqrs_core::EventStore),
/// [`SnapshotStore`](cqrs_core::SnapshotStore) and
/// [`CheckpointStore`](cqrs_core::CheckpointStore).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use cqrs_postgres::PgStore;
/// let store = PgStore::connect("postgres://app@localhost/app")
///     .await?
///     .with_schema("event_store")?;
/// store.migrate().await?; // creates the schema and tables, then runs `check()`
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) schema: SchemaName,
    pub(crate) sql: Arc<Sql>,
    pub(crate) poll: PollInterval,
    /// Connections kept between the store's operations (see [`crate::connection`]).
    pub(crate) connections: Arc<Connections>,
    /// Projections run inside each append (see [`PgStore::with_inline_projection`]).
    pub(crate) inline: Arc<[Arc<InlineProjection>]>,
    /// Leases of this store being released (see `lease.rs`).
    pub(crate) releases: Releases,
    /// Wraps the subjects' keys of personal data (see `personal_data.rs`).
    pub(crate) kek: Option<Arc<dyn cqrs_core::personal::KeyEncryptionKey>>,
    /// Set once the key-encryption key was checked against the store's check value.
    pub(crate) kek_verified: Arc<tokio::sync::OnceCell<()>>,
}

/// How [`wait_for_events`](cqrs_core::EventLog::wait_for_events) polls: it starts at
/// `min` and doubles up to `max` between two looks at the events table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollInterval {
    /// The first pause.
    pub min: Duration,
    /// The longest pause (the worst-case delay before a waiting subscriber sees an event).
    pub max: Duration,
}

impl Default for PollInterval {
    /// 2 ms doubling up to 100 ms.
    fn default() -> Self {
        Self {
            min: Duration::from_millis(2),
            max: Duration::from_millis(100),
        }
    }
}

/// How far global readers are held back, and by which transaction.
///
/// Global reads only return events of transactions older than the oldest transaction
/// still running (the *horizon*), so that no event is ever skipped. A long transaction
/// that has written anything, in any database of the cluster, holds every reader back
/// until it ends. See [`PgStore::horizon_lag`].
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonLag {
    /// The horizon: the oldest transaction id still running (or the next one to be issued
    /// when none is running). Events of this transaction or later ones are not read yet.
    pub horizon: u64,
    /// How many committed events are stored at or beyond the horizon, i.e. are kept from
    /// readers now (counted up to 1,000,000).
    pub held_back_events: u64,
    /// The oldest running transaction that holds a transaction id, if any.
    pub oldest_transaction: Option<HorizonHolder>,
}

/// The session whose transaction sets the horizon (from `pg_stat_activity`).
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonHolder {
    /// Its backend process id (for `pg_terminate_backend`, with care).
    pub pid: i32,
    /// Its database.
    pub database: Option<String>,
    /// Its `application_name`.
    pub application_name: Option<String>,
    /// Its state, e.g. `idle in transaction`.
    pub state: Option<String>,
    /// How long its transaction has been open: how long readers have been held back at
    /// most.
    pub transaction_age: Duration,
    /// Its current or last statement (first 1,000 characters; empty unless the store's
    /// role may see it, e.g. same role or `pg_read_all_stats`).
    pub query: Option<String>,
}

impl PgStore {
    /// A store on `pool`, in schema `public`.
    ///
    /// Build the pool with [`PgStore::pool_options`] (or the same settings) to get one
    /// round trip per command.
    pub fn new(pool: PgPool) -> Self {
        Self::build(pool, SchemaName::default())
    }

    /// A store on `pool`, in schema `schema`, validated before any SQL runs.
    pub fn with_pool_and_schema(pool: PgPool, schema: &str) -> Result<Self, SetupError> {
        Ok(Self::build(pool, SchemaName::new(schema)?))
    }

    /// The same store in another schema (validated before any SQL runs), with the same
    /// poll interval and inline projections.
    pub fn with_schema(self, schema: &str) -> Result<Self, SetupError> {
        let mut store = Self::build(self.pool, SchemaName::new(schema)?);
        store.poll = self.poll;
        store.inline = self.inline;
        store.releases = self.releases;
        Ok(store)
    }

    /// Sets how [`wait_for_events`](cqrs_core::EventLog::wait_for_events) polls.
    pub fn with_poll_interval(mut self, poll: PollInterval) -> Self {
        self.poll = poll;
        self
    }

    fn build(pool: PgPool, schema: SchemaName) -> Self {
        let sql = Arc::new(Sql::new(&schema));
        Self {
            connections: Connections::new(pool.clone()),
            pool,
            schema,
            sql,
            poll: PollInterval::default(),
            inline: Arc::new([]),
            releases: Releases::default(),
            kek: None,
            kek_verified: Arc::default(),
        }
    }

    /// Connects a pool built with [`PgStore::pool_options`] to `url`, in schema `public`.
    ///
    /// The URL is never logged nor put into an error (it may hold a password). Fails with
    /// [`StoreError::Unavailable`](cqrs_core::StoreError::Unavailable) inside
    /// [`SetupError::Store`] when the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self, SetupError> {
        let options =
            PgConnectOptions::from_str(url).map_err(|e| SetupError::InvalidUrl(e.to_string()))?;
        Self::connect_with(options).await
    }

    /// Connects a pool built with [`PgStore::pool_options`] with these connect options.
    pub async fn connect_with(options: PgConnectOptions) -> Result<Self, SetupError> {
        let options = options.application_name("cqrs-postgres");
        let pool_options = Self::pool_options();
        let waited = pool_options.get_acquire_timeout();
        match pool_options.connect_with(options.clone()).await {
            Ok(pool) => Ok(Self::new(pool)),
            Err(e) => Err(map_connect_error(&options, waited, e).await),
        }
    }

    /// The pool settings this crate recommends, and that [`PgStore::connect`] uses:
    ///
    /// - `test_before_acquire(false)`: sqlx pings every connection on checkout by
    ///   default, one extra round trip per operation (as long as the append itself). A
    ///   broken connection is found by the statement that uses it instead, and
    ///   surfaces as the retriable [`StoreError::Unavailable`](cqrs_core::StoreError);
    /// - `max_connections(10)`: on a small server more connections only add contention;
    ///   raise it with the number of database cores and concurrent writers;
    /// - `acquire_timeout(5 s)`: an exhausted pool or an unreachable server becomes
    ///   `Unavailable` instead of waiting forever;
    /// - `idle_timeout(10 min)`, `max_lifetime(30 min)`: connections are recycled so that
    ///   server-side memory and failovers are picked up.
    pub fn pool_options() -> PgPoolOptions {
        PgPoolOptions::new()
            .max_connections(10)
            .min_connections(0)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Some(Duration::from_secs(600)))
            .max_lifetime(Some(Duration::from_secs(1800)))
    }

    /// A transaction on a connection of the pool.
    pub(crate) async fn begin(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, cqrs_core::StoreError> {
        match self.pool.begin().await {
            Ok(tx) => Ok(tx),
            Err(e) => Err(map_pool_error(&self.pool, e).await),
        }
    }

    /// The pool, e.g. to run read-model updates in the same database.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The schema the store's tables live in.
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// Creates the schema if needed, runs the embedded migrations in it, then runs
    /// [`check`](PgStore::check).
    ///
    /// The migrations are plain SQL without schema names. They run on a dedicated
    /// connection (not from the pool, so no pooled connection keeps a changed setting)
    /// whose `search_path` is the store's schema, so that every table, index and function
    /// lands there, including sqlx's `_sqlx_migrations` bookkeeping table: each schema has
    /// its own migration history, and several stores can share a database. sqlx takes a
    /// database-wide advisory lock while migrating, so concurrent `migrate()` calls are
    /// safe. The append function pins its `search_path` to the schema.
    pub async fn migrate(&self) -> Result<(), SetupError> {
        self.check_server_version().await?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS {}", self.schema.quoted());
        if let Err(e) = sqlx::query(&create).execute(&self.pool).await {
            // Two processes creating the schema at once: one of them loses, harmlessly.
            let raced = matches!(&e, sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("23505" | "42P06")));
            if !raced {
                return Err(e.into());
            }
        }
        let options = (*self.pool.connect_options())
            .clone()
            .options([("search_path", self.schema.as_str())]);
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(SetupError::from)?;
        let migrated = MIGRATOR.run(&mut conn).await;
        // Closing politely is best effort; the migration result is what matters.
        let _ = conn.close().await;
        migrated?;
        self.check().await
    }

    /// Start-up guard rails, run by [`migrate`](PgStore::migrate):
    ///
    /// - the server is PostgreSQL 13 or later ([`SetupError::UnsupportedServer`]);
    /// - no stored event has a transaction id at or beyond the cluster's next one, which
    ///   happens after a logical dump is restored into another cluster and would stall
    ///   every global reader ([`SetupError::TransactionIdsAhead`], with the fix);
    /// - the key-encryption key ([`with_key_encryption_key`](Self::with_key_encryption_key))
    ///   is the one the store's data keys are wrapped with
    ///   ([`PersonalError::WrongKek`](cqrs_core::personal::PersonalError::WrongKek)), and
    ///   a store that has run with one still has one
    ///   ([`StoreError::NoKeyEncryptionKey`](cqrs_core::StoreError::NoKeyEncryptionKey)).
    pub async fn check(&self) -> Result<(), SetupError> {
        self.check_server_version().await?;
        self.check_key_encryption_key().await?;
        let row = sqlx::query(&self.sql.transaction_ids)
            .fetch_one(&self.pool)
            .await?;
        let max_stored: Option<i64> = row.try_get(0)?;
        let next: i64 = row.try_get(1)?;
        if let Some(max_stored) = max_stored {
            if max_stored >= next {
                return Err(SetupError::TransactionIdsAhead {
                    max_stored: max_stored as u64,
                    next: next as u64,
                });
            }
        }
        Ok(())
    }

    /// The first statement of `migrate` and `check`: a server that cannot be reached is
    /// reported here, with the reason.
    async fn check_server_version(&self) -> Result<(), SetupError> {
        let version =
            sqlx::query_scalar::<_, i32>("SELECT current_setting('server_version_num')::int")
                .fetch_one(&self.pool)
                .await;
        match version {
            Ok(version) => check_server_version(version),
            Err(e) => Err(SetupError::Store(map_pool_error(&self.pool, e).await)),
        }
    }

    /// How far global readers are held back now, and by which open transaction.
    ///
    /// Monitor `oldest_transaction.transaction_age`: readers (subscriptions, projections)
    /// see nothing written after that transaction started until it ends. Setting
    /// `idle_in_transaction_session_timeout` on the server bounds the damage of a
    /// forgotten open transaction.
    ///
    /// Sets the [`HORIZON_LAG`](cqrs_core::observe::metrics::HORIZON_LAG) gauge; the
    /// health check calls it.
    pub async fn horizon_lag(&self) -> Result<HorizonLag, cqrs_core::StoreError> {
        let row = match sqlx::query(&self.sql.horizon_lag)
            .fetch_one(&self.pool)
            .await
        {
            Ok(row) => row,
            Err(e) => return Err(map_pool_error(&self.pool, e).await),
        };
        let get = |e: sqlx::Error| map_sqlx(e);
        let horizon: i64 = row.try_get(0).map_err(get)?;
        let held: i64 = row.try_get(1).map_err(get)?;
        cqrs_core::observe::metrics::horizon_lag(u64::try_from(held).unwrap_or(0));
        let pid: Option<i32> = row.try_get(2).map_err(get)?;
        let oldest_transaction = match pid {
            None => None,
            Some(pid) => {
                let age: Option<f64> = row.try_get(6).map_err(get)?;
                Some(HorizonHolder {
                    pid,
                    database: row.try_get(3).map_err(get)?,
                    application_name: row.try_get(4).map_err(get)?,
                    state: row.try_get(5).map_err(get)?,
                    transaction_age: Duration::from_secs_f64(age.unwrap_or(0.0).max(0.0)),
                    query: row.try_get(7).map_err(get)?,
                })
            }
        };
        Ok(HorizonLag {
            horizon: horizon as u64,
            held_back_events: held as u64,
            oldest_transaction,
        })
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No connect options here: they may hold a password.
        f.debug_struct("PgStore")
            .field("schema", &self.schema)
            .field("poll", &self.poll)
            .field(
                "inline_projections",
                &self.inline.iter().map(|p| p.name()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}
