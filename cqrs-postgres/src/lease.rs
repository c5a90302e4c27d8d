//! Subscription leases: a session-level advisory lock held by a connection of its own.
//!
//! Why a session lock on a dedicated connection: PostgreSQL releases it by itself when
//! that connection ends for any reason (the holder drops the lease, its process dies, the
//! network breaks, an operator runs `pg_terminate_backend`), so no expiry time has to be
//! guessed and no clock is involved. The connection is not taken from the pool: a pooled
//! connection would carry the lock back into the pool, to be used (and released) by
//! unrelated work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cqrs_core::{Lease, LeaseHolder, StoreError, SubscriptionName};
use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection, Row};
use tokio::sync::{watch, Mutex};

use crate::error::{map_pool_error, map_sqlx};
use crate::PgStore;

/// The `application_name` prefix of lease connections, so that operators (and tests) can
/// find them in `pg_stat_activity`.
pub const LEASE_APPLICATION_NAME: &str = "cqrs-lease";

/// The longest a [`Lease::is_held`] check waits for the server. A check that takes longer
/// counts as a lost lease: a holder that cannot reach its lock's connection must not go on
/// delivering as if it still held it.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Server-side TCP keepalive settings of lease connections (idle seconds, interval
/// seconds, probes). When the holder's machine vanishes without closing its socket, the
/// server notices after about idle + interval × probes = 8 s, ends the session and so
/// releases the lock; the server's default (the OS's, often two hours) would keep the
/// subscription without an active consumer that long. Ignored on Unix-domain sockets,
/// where a vanished peer cannot happen.
const KEEPALIVES: [(&str, &str); 3] = [
    ("tcp_keepalives_idle", "5"),
    ("tcp_keepalives_interval", "1"),
    ("tcp_keepalives_count", "3"),
];

/// The lock's key, and whether some session of this database holds it now: one round
/// trip on the pool, so that a standby probing every second does not open a connection
/// each time. A 64-bit advisory key shows in `pg_locks` as its high half in `classid`,
/// its low half in `objid`, and `objsubid` = 1.
const PROBE: &str =
    "WITH k AS (SELECT hashtextextended('cqrs-lease:' || $1 || '/' || $2, 0) AS key) \
     SELECT k.key, EXISTS (SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND l.classid = ((k.key >> 32) & 4294967295)::oid \
         AND l.objid = (k.key & 4294967295)::oid AND l.objsubid = 1 AND l.granted) \
     FROM k";

/// The session that holds the lock of `$1`, `$2` (as in [`PROBE`]): its server process
/// id, client address, application name and start (the lease's connection is its own, so
/// that is when the lease was taken, give or take the connection's set-up).
const HOLDER: &str =
    "WITH k AS (SELECT hashtextextended('cqrs-lease:' || $1 || '/' || $2, 0) AS key) \
     SELECT a.pid, host(a.client_addr), a.application_name, a.backend_start \
     FROM k, pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
     WHERE l.locktype = 'advisory' \
         AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND l.classid = ((k.key >> 32) & 4294967295)::oid \
         AND l.objid = (k.key & 4294967295)::oid AND l.objsubid = 1 AND l.granted";

/// Whether this session holds the lock of key `$1`.
const HELD: &str = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
     AND pid = pg_backend_pid() AND classid = (($1::bigint >> 32) & 4294967295)::oid \
     AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1 AND granted)";

/// A lease on a subscription of a [`PgStore`]: a session-level advisory lock, held by a
/// connection that belongs to the lease alone.
struct PgLease {
    /// `None` once the lease is known to be lost (the connection is then dropped).
    conn: Mutex<Option<PgConnection>>,
    /// The pool of the store: a holder whose pool was closed can no longer deliver, so it
    /// gives the lease up rather than keep other processes from taking over.
    pool: PgPool,
    key: i64,
    name: SubscriptionName,
    /// `schema/name`, the key of `releases`.
    id: String,
    releases: Releases,
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLease")
            .field("name", &self.name)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Lease for PgLease {
    /// Asks the lock's connection whether it still holds the lock (one round trip, at
    /// most [`CHECK_TIMEOUT`]). A broken connection, an error or a timeout mean the lease
    /// is lost: the connection is closed, so that the server surely releases the lock,
    /// and the lease stays lost.
    async fn is_held(&self) -> bool {
        let mut slot = self.conn.lock().await;
        let Some(conn) = slot.as_mut() else {
            return false;
        };
        if self.pool.is_closed() {
            tracing::warn!(name = %self.name, "the store's pool is closed; giving the lease up");
            *slot = None;
            return false;
        }
        let check = sqlx::query_scalar::<_, bool>(HELD)
            .bind(self.key)
            .fetch_one(&mut *conn);
        match tokio::time::timeout(CHECK_TIMEOUT, check).await {
            Ok(Ok(true)) => true,
            outcome => {
                let why = match outcome {
                    Ok(Ok(_)) => "the lock is no longer held".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer within {CHECK_TIMEOUT:?}"),
                };
                tracing::warn!(name = %self.name, error = %why, "subscription lease lost");
                *slot = None;
                false
            }
        }
    }
}

impl Drop for PgLease {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.get_mut().take() else {
            return; // lost: its connection is already gone
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Dropping the connection closes its socket; the server ends the session and
            // releases the lock a moment later.
            return;
        };
        // Released in the background, as `drop` cannot wait. The store notes the release
        // under way, so that an acquire of the same lease from this store waits for it
        // rather than find the lock still held by a session about to end (the runner
        // acquires again right after dropping a lease it could not use).
        let (done, waiter) = watch::channel(false);
        self.releases.begin(&self.id, waiter.clone());
        let key = self.key;
        let releases = self.releases.clone();
        let id = std::mem::take(&mut self.id);
        runtime.spawn(async move {
            let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .execute(&mut conn);
            // Best effort: if the unlock fails or hangs, closing the connection releases
            // the lock all the same.
            let _ = tokio::time::timeout(CHECK_TIMEOUT, unlock).await;
            let _ = tokio::time::timeout(CHECK_TIMEOUT, conn.close()).await;
            done.send_replace(true);
            releases.end(&id, &waiter);
        });
    }
}

/// The leases of a store (and of its clones) whose release is under way, by schema and
/// name.
#[derive(Clone, Default)]
pub(crate) struct Releases(Arc<StdMutex<HashMap<String, watch::Receiver<bool>>>>);

impl Releases {
    // Every change is one insert or remove, so a poisoned lock still guards consistent
    // data.
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Receiver<bool>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin(&self, id: &str, waiter: watch::Receiver<bool>) {
        self.map().insert(id.to_owned(), waiter);
    }

    fn end(&self, id: &str, waiter: &watch::Receiver<bool>) {
        let mut map = self.map();
        // Only this release's entry: a later lease of the same name may be releasing too.
        if map.get(id).is_some_and(|w| w.same_channel(waiter)) {
            map.remove(id);
        }
    }

    /// Waits (a bounded time) for a release of `id` under way, if any.
    async fn wait(&self, id: &str) {
        let pending = self.map().get(id).cloned();
        if let Some(mut waiter) = pending {
            let _ = tokio::time::timeout(CHECK_TIMEOUT, waiter.wait_for(|done| *done)).await;
        }
    }
}

/// `cqrs-lease:<name>`, cut at a character boundary to PostgreSQL's 63-byte limit (the
/// server would cut it anyway, with a notice).
fn application_name(name: &str) -> String {
    let mut app = format!("{LEASE_APPLICATION_NAME}:{name}");
    if app.len() > 63 {
        let mut end = 63;
        while !app.is_char_boundary(end) {
            end -= 1;
        }
        app.truncate(end);
    }
    app
}

impl PgStore {
    /// [`CheckpointStore::lease_holder`](cqrs_core::CheckpointStore::lease_holder): the
    /// lock's session, as `pg_stat_activity` shows it (seeing another user's sessions'
    /// details may need the `pg_read_all_stats` role; the process id is always shown).
    pub(crate) async fn lease_holder_impl(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<LeaseHolder>, StoreError> {
        let row = sqlx::query(HOLDER)
            .bind(self.schema.as_str())
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await;
        let row = match row {
            Ok(row) => row,
            Err(e) => return Err(map_pool_error(&self.pool, e).await),
        };
        let Some(row) = row else {
            return Ok(None);
        };
        let pid: i32 = row.try_get(0).map_err(map_sqlx)?;
        let client: Option<String> = row.try_get(1).map_err(map_sqlx)?;
        let application: Option<String> = row.try_get(2).map_err(map_sqlx)?;
        let since: Option<DateTime<Utc>> = row.try_get(3).map_err(map_sqlx)?;
        let mut holder = format!("server process {pid}");
        if let Some(client) = client {
            holder.push_str(&format!(", client {client}"));
        }
        if let Some(application) = application.filter(|a| !a.is_empty()) {
            holder.push_str(&format!(", {application}"));
        }
        Ok(Some(LeaseHolder::new(holder, since)))
    }

    /// [`CheckpointStore::acquire_lease`](cqrs_core::CheckpointStore::acquire_lease).
    pub(crate) async fn acquire_lease_impl(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<Box<dyn Lease>>, StoreError> {
        let id = format!("{}/{name}", self.schema.as_str());
        self.releases.wait(&id).await;
        let row = match sqlx::query(PROBE)
            .bind(self.schema.as_str())
            .bind(name.as_str())
            .fetch_one(&self.pool)
            .await
        {
            Ok(row) => row,
            Err(e) => return Err(map_pool_error(&self.pool, e).await),
        };
        let key: i64 = row.try_get(0).map_err(map_sqlx)?;
        let taken: bool = row.try_get(1).map_err(map_sqlx)?;
        if taken {
            return Ok(None);
        }
        // The connect options of the pool (host, credentials, TLS), never logged.
        let options = (*self.pool.connect_options())
            .clone()
            .application_name(&application_name(name.as_str()))
            .options(KEEPALIVES);
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(map_sqlx)?;
        // The probe said free, but another process may have been faster since.
        let locked = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await;
        match locked {
            Ok(true) => {
                tracing::debug!(%name, "subscription lease acquired");
                Ok(Some(Box::new(PgLease {
                    conn: Mutex::new(Some(conn)),
                    pool: self.pool.clone(),
                    key,
                    name: name.clone(),
                    id,
                    releases: self.releases.clone(),
                })))
            }
            Ok(false) => {
                let _ = conn.close().await;
                Ok(None)
            }
            Err(e) => Err(map_sqlx(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::application_name;

    #[test]
    fn application_names_fit_postgres_limit_at_a_char_boundary() {
        assert_eq!(application_name("balances"), "cqrs-lease:balances");
        let long = application_name(&"é".repeat(100));
        assert!(long.len() <= 63);
        assert!(long.starts_with("cqrs-lease:é"));
    }
}
