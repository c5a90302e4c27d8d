//! Errors of set-up, and the mapping of driver errors to [`StoreError`].

use cqrs_core::StoreError;

use crate::schema::InvalidSchemaName;

/// The lowest PostgreSQL major version supported: `xid8`, `pg_current_xact_id()` and
/// `pg_current_snapshot()` appeared in 13.
pub const MIN_SERVER_VERSION_NUM: i32 = 130_000;

/// Why a [`PgStore`](crate::PgStore) could not be built, migrated or checked.
#[derive(Debug, thiserror::Error)]
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

/// Maps a driver error that needs no context to a [`StoreError`].
pub(crate) fn map_sqlx(e: sqlx::Error) -> StoreError {
    if is_unavailable(&e) {
        StoreError::Unavailable(Box::new(e))
    } else {
        StoreError::Backend(Box::new(e))
    }
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
