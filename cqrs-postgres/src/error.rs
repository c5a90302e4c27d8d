//! Errors of set-up, and the mapping of driver errors to [`StoreError`].

use std::time::Duration;

use cqrs_core::StoreError;
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{Connection, PgConnection};

use crate::schema::InvalidSchemaName;

/// The lowest PostgreSQL major version supported: `xid8`, `pg_current_xact_id()` and
/// `pg_current_snapshot()` appeared in 13.
pub const MIN_SERVER_VERSION_NUM: i32 = 130_000;

/// Why a [`PgStore`](crate::PgStore) could not be built, migrated or checked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The schema name was refused before any SQL ran.
    #[error(transparent)]
    InvalidSchemaName(#[from] InvalidSchemaName),
    /// The connection URL could not be parsed. The URL itself is not repeated here, so that
    /// a password in it is never printed.
    #[error("invalid PostgreSQL connection URL: {0}")]
    InvalidUrl(String),
    /// The server is older than PostgreSQL 13.
    #[error(
        "PostgreSQL {found} is not supported: cqrs-postgres needs PostgreSQL 13 or later \
         (it relies on xid8, pg_current_xact_id() and pg_current_snapshot())"
    )]
    UnsupportedServer {
        /// `server_version_num` of the server, e.g. 120017.
        found: i32,
    },
    /// Stored events carry transaction ids that this cluster has not issued yet: the
    /// database was most likely restored from a dump (or copied) into a younger cluster.
    #[error(
        "the events table holds transaction id {max_stored}, but this cluster's next \
         transaction id is {next}: the data was probably restored from a dump into another \
         cluster. Readers would hold back every new event until the cluster's transaction \
         counter passes {max_stored}. Fix: advance the counter past it (stop the server, run \
         `pg_resetwal -e {epoch} -x {xid} <data directory>` as the server's OS user, start it \
         again), or move data with a physical copy (pg_basebackup, pg_upgrade) that keeps \
         the counter; see 'Dump and restore' in the PostgreSQL chapter of the guide",
        epoch = .max_stored >> 32,
        xid = (.max_stored & 0xffff_ffff) + 1,
    )]
    TransactionIdsAhead {
        /// The largest transaction id stored in the events table.
        max_stored: u64,
        /// The next transaction id the cluster will issue.
        next: u64,
    },
    /// Running the embedded migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SetupError {
    fn from(e: sqlx::Error) -> Self {
        SetupError::Store(map_sqlx(e))
    }
}

/// Checks `server_version_num`.
pub(crate) fn check_server_version(version_num: i32) -> Result<(), SetupError> {
    if version_num < MIN_SERVER_VERSION_NUM {
        Err(SetupError::UnsupportedServer { found: version_num })
    } else {
        Ok(())
    }
}

/// Whether a driver error means the database could not be reached or the connection broke.
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08xxx: connection exception; 57P01 admin shutdown, 57P02 crash shutdown,
            // 57P03 cannot connect now; 53300 too many connections.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// Why no connection could be had within the pool's acquire timeout: the source of a
/// [`StoreError::Unavailable`] (downcast it to tell an exhausted pool from a server that is
/// down, e.g. in a health check).
///
/// sqlx only reports that the time ran out, which reads as an exhausted pool even when
/// the server is down (its pool retries refused connections silently until the timeout).
/// So when the pool was not full, the store makes one connection attempt of its own, of
/// at most [`CONNECTION_PROBE_TIMEOUT`], to say why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NoConnection {
    /// Every connection of the pool was in use for the whole wait.
    #[error(
        "no connection within {waited:?}: all {max_connections} connections of the pool are in use"
    )]
    PoolExhausted {
        /// The pool's acquire timeout.
        waited: Duration,
        /// The pool's size limit.
        max_connections: u32,
    },
    /// A new connection fails: the server is down, unreachable, or refuses this client.
    #[error("no connection within {waited:?}: the server cannot be reached: {source}")]
    Unreachable {
        /// The pool's acquire timeout.
        waited: Duration,
        /// Why a new connection failed.
        #[source]
        source: sqlx::Error,
    },
    /// A new connection got no answer within [`CONNECTION_PROBE_TIMEOUT`].
    #[error(
        "no connection within {waited:?}: the server did not answer a new connection within \
         {CONNECTION_PROBE_TIMEOUT:?}"
    )]
    NoAnswer {
        /// The pool's acquire timeout.
        waited: Duration,
    },
    /// The pool was not full, yet gave no connection; the server accepted one right
    /// after the wait: it was down or restarting and is back (or, rarely, the pool was
    /// busy until just then).
    #[error(
        "no connection within {waited:?}, but the server accepts new connections now (it was \
         down or restarting, or the pool was busy until just now)"
    )]
    Recovered {
        /// The pool's acquire timeout.
        waited: Duration,
    },
}

/// The longest the store's own connection attempt takes when it finds out why the pool
/// gave no connection (see [`NoConnection`]).
pub const CONNECTION_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl NoConnection {
    /// Finds out why a pool with these connect options gave no connection within
    /// `waited`, when it was not full: one connection attempt.
    async fn find_out(options: &PgConnectOptions, waited: Duration) -> Self {
        let attempt = PgConnection::connect_with(options);
        match tokio::time::timeout(CONNECTION_PROBE_TIMEOUT, attempt).await {
            Ok(Ok(conn)) => {
                // Polite close, best effort: the answer is already known.
                let _ = conn.close().await;
                NoConnection::Recovered { waited }
            }
            Ok(Err(source)) => NoConnection::Unreachable { waited, source },
            Err(_) => NoConnection::NoAnswer { waited },
        }
    }
}

/// Maps an error of taking a connection from `pool` (or of a statement run on the pool)
/// to a [`StoreError`], saying why when the pool gave no connection in time.
pub(crate) async fn map_pool_error(pool: &PgPool, e: sqlx::Error) -> StoreError {
    if !matches!(e, sqlx::Error::PoolTimedOut) {
        return map_sqlx(e);
    }
    let waited = pool.options().get_acquire_timeout();
    let max_connections = pool.options().get_max_connections();
    let why = if pool.size() >= max_connections && pool.num_idle() == 0 {
        NoConnection::PoolExhausted {
            waited,
            max_connections,
        }
    } else {
        NoConnection::find_out(&pool.connect_options(), waited).await
    };
    StoreError::Unavailable(Box::new(why))
}

/// [`map_pool_error`] for a pool that could not be created: no connection was in use.
pub(crate) async fn map_connect_error(
    options: &PgConnectOptions,
    waited: Duration,
    e: sqlx::Error,
) -> SetupError {
    if !matches!(e, sqlx::Error::PoolTimedOut) {
        return e.into();
    }
    let why = NoConnection::find_out(options, waited).await;
    SetupError::Store(StoreError::Unavailable(Box::new(why)))
}

/// Maps a driver error that needs no context to a [`StoreError`].
pub(crate) fn map_sqlx(e: sqlx::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
}

/// A backend error with a message of the store's own (not from the driver).
pub(crate) fn backend(message: String) -> StoreError {
    StoreError::Backend(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_servers_older_than_13() {
        assert!(matches!(
            check_server_version(120_017),
            Err(SetupError::UnsupportedServer { found: 120_017 })
        ));
        let message = check_server_version(90_624).err().map(|e| e.to_string());
        assert!(message.is_some_and(|m| m.contains("PostgreSQL 13 or later")));
        assert!(check_server_version(130_000).is_ok());
        assert!(check_server_version(150_004).is_ok());
    }

    /// A port of 127.0.0.1 that nothing listens on.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        port
    }

    fn database_url() -> String {
        std::env::var("DATABASE_URL")
            .expect("DATABASE_URL is not set: run the tests with scripts/test")
    }

    #[tokio::test]
    async fn why_no_connection_came_is_found_out_by_one_attempt() {
        let waited = Duration::from_millis(300);
        let local = |port| PgConnectOptions::new().host("127.0.0.1").port(port);
        let refused = NoConnection::find_out(&local(closed_port()), waited).await;
        assert!(
            matches!(
                &refused,
                NoConnection::Unreachable {
                    source: sqlx::Error::Io(_),
                    ..
                }
            ),
            "{refused:?}"
        );
        let said = refused.to_string();
        assert!(said.contains("the server cannot be reached"), "{said}");
        assert!(said.contains("refused"), "{said}");

        // A socket that accepts and never answers, as a hung server would.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = silent.local_addr().expect("addr").port();
        let hung = NoConnection::find_out(&local(port), waited).await;
        assert!(matches!(hung, NoConnection::NoAnswer { .. }), "{hung:?}");
        drop(silent);

        let url: PgConnectOptions = database_url().parse().expect("DATABASE_URL");
        let back = NoConnection::find_out(&url, waited).await;
        assert!(matches!(back, NoConnection::Recovered { .. }), "{back:?}");
    }

    #[tokio::test]
    async fn a_pool_timeout_says_whether_the_server_is_down_or_the_pool_is_full() {
        use cqrs_core::{EventFilter, EventLog, Position};

        let no_connection = |e: &StoreError| match e {
            StoreError::Unavailable(source) => source.downcast_ref::<NoConnection>().is_some(),
            _ => false,
        };
        // The server is down: sqlx alone says "pool timed out".
        let pool = crate::PgStore::pool_options()
            .acquire_timeout(Duration::from_millis(300))
            .connect_lazy_with(
                PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(closed_port()),
            );
        let store = crate::PgStore::new(pool);
        let error = store
            .read_all(Position::START, 10, &EventFilter::all())
            .await
            .expect_err("no server");
        assert!(no_connection(&error) && error.is_retriable(), "{error:?}");
        assert!(
            error.to_string().contains("the server cannot be reached"),
            "{error}"
        );
        match store.migrate().await {
            Err(SetupError::Store(error)) => assert!(no_connection(&error), "{error:?}"),
            other => panic!("migrate without a server: {other:?}"),
        }
        let url = format!("postgres://app:s3cret@127.0.0.1:{}/app", closed_port());
        match crate::PgStore::connect(&url).await {
            Err(SetupError::Store(error)) => {
                assert!(no_connection(&error), "{error:?}");
                assert!(!format!("{error} {error:?}").contains("s3cret"));
            }
            other => panic!("connect without a server: {other:?}"),
        }

        // The server is up and the pool's only connection is taken.
        let pool = crate::PgStore::pool_options()
            .max_connections(1)
            .acquire_timeout(Duration::from_millis(300))
            .connect(&database_url())
            .await
            .expect("connect");
        let store = crate::PgStore::new(pool.clone());
        let taken = pool.acquire().await.expect("the only connection");
        let error = store
            .read_all(Position::START, 10, &EventFilter::all())
            .await
            .expect_err("no connection left");
        assert!(no_connection(&error) && error.is_retriable(), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("all 1 connections of the pool are in use"),
            "{error}"
        );
        drop(taken);
    }

    #[test]
    fn classifies_connection_errors_as_unavailable() {
        assert!(matches!(
            map_sqlx(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert!(matches!(
            map_sqlx(sqlx::Error::Io(io)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            map_sqlx(sqlx::Error::RowNotFound),
            StoreError::Backend(_)
        ));
    }
}
