//! The connections the store keeps checked out of the pool between its own operations,
//! and the one-statement helpers every operation uses.
//!
//! sqlx 0.8 pings every connection that goes back to its pool (a `Sync` message and its
//! reply, in a task it spawns; not configurable): one more round trip per operation.
//! It is off the caller's latency path, but not free: a third of a whole one-row INSERT
//! in client and server CPU, and what kept 16 writers from the raw database's rate (the
//! figures are on the performance page, `docs/src/performance.md`). So the store keeps a
//! connection after an operation that ran to its end and uses it for its next one.
//!
//! Bounds, so that the pool's other users (read models, `PgStore::pool()`) are not
//! starved:
//! - at most `max_connections - 1` connections are kept, so one always goes back to the
//!   pool while the store is busy on all of them;
//! - a connection kept idle for [`IDLE`] goes back to the pool (a task reaps them while
//!   any are kept), so a quiet store holds nothing;
//! - a connection is given back after [`MAX_HOLD`] in all, so that the pool's
//!   `max_lifetime` and `idle_timeout` still recycle it;
//! - a connection whose operation did not run to its end (an I/O error, or a future
//!   dropped mid-query) is never kept: dropping it hands it to the pool, whose ping
//!   restores or discards it.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use cqrs_core::StoreError;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgDatabaseError, PgQueryResult, PgRow, PgSeverity};
use sqlx::{Execute, Executor, PgConnection, PgPool, Postgres};
use tokio::time::Instant;

use crate::error::{is_unavailable, map_pool_error, map_sqlx};
use crate::PgStore;

/// How long a kept connection may sit idle before it goes back to the pool.
pub(crate) const IDLE: Duration = Duration::from_millis(500);
/// How long a connection may be kept in all before it goes back to the pool.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(60);

/// The kept connections of one store (shared by its clones).
pub(crate) struct Connections {
    pool: PgPool,
    /// Most recently used last; the front idled longest.
    idle: Mutex<Vec<Kept>>,
    limit: usize,
    reaping: AtomicBool,
}

struct Kept {
    conn: PoolConnection<Postgres>,
    /// When it was taken from the pool.
    taken: Instant,
    /// When it was kept last.
    since: Instant,
}

/// A connection lent to one operation. [`Connection::keep`] when the operation ran to
/// its end; dropping it instead hands the connection back to the pool.
pub(crate) struct Connection {
    conn: PoolConnection<Postgres>,
    taken: Instant,
    kept: Arc<Connections>,
}

impl Connections {
    pub(crate) fn new(pool: PgPool) -> Arc<Self> {
        let max = pool.options().get_max_connections() as usize;
        Arc::new(Self {
            pool,
            idle: Mutex::new(Vec::new()),
            limit: max.saturating_sub(1),
            reaping: AtomicBool::new(false),
        })
    }

    // A panic while holding the lock cannot leave the list half-changed (push, pop and
    // drain are whole operations), so a poisoned lock is safe to use.
    fn idle(&self) -> MutexGuard<'_, Vec<Kept>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A kept connection, or one from the pool.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Connection, sqlx::Error> {
        let kept = self.idle().pop();
        let (conn, taken) = match kept {
            Some(kept) => (kept.conn, kept.taken),
            None => (self.pool.acquire().await?, Instant::now()),
        };
        Ok(Connection {
            conn,
            taken,
            kept: Arc::clone(self),
        })
    }

    fn keep(self: &Arc<Self>, conn: PoolConnection<Postgres>, taken: Instant) {
        let now = Instant::now();
        if now.duration_since(taken) >= MAX_HOLD || self.pool.is_closed() {
            return; // dropped: back to the pool
        }
        let mut idle = self.idle();
        if idle.len() >= self.limit {
            return;
        }
        idle.push(Kept {
            conn,
            taken,
            since: now,
        });
        drop(idle);
        if !self.reaping.swap(true, Ordering::AcqRel) {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(reap(Arc::downgrade(self)));
                }
                // No runtime to reap them: keep nothing.
                Err(_) => {
                    self.reaping.store(false, Ordering::Release);
                    self.idle().clear();
                }
            }
        }
    }
}

/// Every [`IDLE`], gives the connections kept idle that long back to the pool; ends when
/// none is kept (the next `keep` starts another) or the store is gone.
async fn reap(kept: Weak<Connections>) {
    loop {
        tokio::time::sleep(IDLE).await;
        let Some(kept) = kept.upgrade() else {
            return;
        };
        let now = Instant::now();
        let expired: Vec<Kept> = {
            let mut idle = kept.idle();
            let fresh = idle
                .iter()
                .position(|kept| now.duration_since(kept.since) < IDLE)
                .unwrap_or(idle.len());
            idle.drain(..fresh).collect()
        };
        drop(expired); // back to the pool, outside the lock
        if kept.idle().is_empty() {
            kept.reaping.store(false, Ordering::Release);
            // A `keep` between the check and the store saw `reaping` still set and
            // started no reaper: take the job back if so.
            if kept.idle().is_empty() || kept.reaping.swap(true, Ordering::AcqRel) {
                return;
            }
        }
    }
}

impl Connection {
    /// Keeps the connection for the store's next operation. Call it only when the
    /// operation ran to its end (its rows, or a database error, were read), so that the
    /// connection is idle.
    pub(crate) fn keep(self) {
        let Connection { conn, taken, kept } = self;
        kept.keep(conn, taken);
    }

    /// Keeps the connection if `error` left it idle and alive: an error the server
    /// reported for the statement (a constraint, a conflict). Anything else hands the
    /// connection to the pool, which checks or discards it: I/O, protocol and decoding
    /// errors (maybe mid-exchange), and the server's connection-level errors (FATAL
    /// severity, e.g. `pg_terminate_backend`, or a class the store reports as
    /// unavailable).
    pub(crate) fn keep_unless_broken(self, error: &sqlx::Error) {
        let statement_error = match error {
            sqlx::Error::Database(db) => {
                !is_unavailable(error)
                    && db.try_downcast_ref::<PgDatabaseError>().is_none_or(|pg| {
                        !matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic)
                    })
            }
            _ => false,
        };
        if statement_error {
            self.keep();
        }
    }

    /// [`keep`](Self::keep) on success, [`keep_unless_broken`](Self::keep_unless_broken)
    /// on error.
    pub(crate) fn keep_after<T>(self, result: &Result<T, sqlx::Error>) {
        match result {
            Ok(_) => self.keep(),
            Err(error) => self.keep_unless_broken(error),
        }
    }
}

/// One statement on the connection, which is then kept unless the statement broke it:
/// what every operation of the store that is a single statement does.
impl Connection {
    pub(crate) async fn fetch_optional<'q>(
        mut self,
        query: impl Execute<'q, Postgres> + 'q,
    ) -> Result<Option<PgRow>, sqlx::Error> {
        let result = (&mut *self.conn).fetch_optional(query).await;
        self.keep_after(&result);
        result
    }

    pub(crate) async fn fetch_one<'q>(
        mut self,
        query: impl Execute<'q, Postgres> + 'q,
    ) -> Result<PgRow, sqlx::Error> {
        let result = (&mut *self.conn).fetch_one(query).await;
        self.keep_after(&result);
        result
    }

    pub(crate) async fn fetch_all<'q>(
        mut self,
        query: impl Execute<'q, Postgres> + 'q,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let result = (&mut *self.conn).fetch_all(query).await;
        self.keep_after(&result);
        result
    }

    pub(crate) async fn execute<'q>(
        mut self,
        query: impl Execute<'q, Postgres> + 'q,
    ) -> Result<PgQueryResult, sqlx::Error> {
        let result = (&mut *self.conn).execute(query).await;
        self.keep_after(&result);
        result
    }
}

impl PgStore {
    /// A connection for one operation of the store: a kept one, or one from the pool.
    pub(crate) async fn connection(&self) -> Result<Connection, StoreError> {
        match self.connections.acquire().await {
            Ok(conn) => Ok(conn),
            Err(e) => Err(map_pool_error(&self.pool, e).await),
        }
    }

    /// Runs one statement on such a connection; the rows it changed.
    pub(crate) async fn run<'q>(
        &self,
        query: impl Execute<'q, Postgres> + 'q,
    ) -> Result<u64, StoreError> {
        let done = self.connection().await?.execute(query).await;
        Ok(done.map_err(map_sqlx)?.rows_affected())
    }
}

impl Deref for Connection {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Connection {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}
