//! The command line's failures: one sentence each, naming what to do.

use cqrs_core::StoreError;
use cqrs_postgres::SetupError;

/// Why a command failed. Its message is printed as it is, after `cqrs: `.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No database was named.
    #[error("no database given: pass --database-url or set DATABASE_URL")]
    NoDatabase,
    /// The store could not be set up (a bad URL or schema name).
    #[error("{0}")]
    Setup(SetupError),
    /// The store refused or failed a request.
    #[error("{}", store_sentence(.0))]
    Store(#[from] StoreError),
    /// The schema cannot serve (never migrated, or of another build).
    #[error("{0}")]
    Unfit(String),
    /// Something the operator typed is not valid.
    #[error("{0}")]
    Input(String),
    /// A subscription or dead letter that is not there.
    #[error("{0}")]
    NotFound(String),
    /// A running subscription did not apply a request in time.
    #[error("{0}")]
    Timeout(String),
    /// The events could not be written out (a file that cannot be created, a full disk).
    #[error("{0}")]
    Write(String),
}

impl From<SetupError> for CliError {
    /// A server that cannot be reached at set-up is said as any store error is.
    fn from(error: SetupError) -> Self {
        match error {
            SetupError::Store(error) => Self::Store(error),
            other => Self::Setup(other),
        }
    }
}

/// A store error as one sentence, with what to do when the database is away.
fn store_sentence(error: &StoreError) -> String {
    if error.is_retriable() {
        format!("the database did not answer ({error}): check that PostgreSQL runs and that --database-url is right, then try again")
    } else {
        error.to_string()
    }
}
