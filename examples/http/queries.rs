//! The query endpoint, answered from the read model, never from the event store.
//!
//! `GET /accounts/{id}` answers at once with what the read model knows, and says how up
//! to date that is: the account's `version` in the view, and the subscription's
//! `position` in the log. A client that just wrote, and wants to read its write, passes
//! the version its command returned: `GET /accounts/{id}?min_version=3` waits (up to
//! [`READ_WAIT`]) for the view to reach it, else answers 503 `read_model_behind`.

use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use cqrs_core::{Aggregate, StreamId};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::balances::Balance;
use crate::domain::Account;
use crate::error::ApiError;
use crate::service::AppState;
use crate::status::state_name;

/// The longest a query waits for the read model to reach `min_version`.
pub const READ_WAIT: Duration = Duration::from_secs(5);

/// How often a waiting query looks at the read model again.
const LOOK_AGAIN: Duration = Duration::from_millis(5);

/// The query string of `GET /accounts/{id}`.
#[derive(Debug, Deserialize)]
pub struct Freshness {
    /// Wait until the view has the account at this version or later.
    min_version: Option<u64>,
}

/// `GET /accounts/{id}[?min_version=N]`: the balance, from the read model.
pub async fn account(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    freshness: Result<Query<Freshness>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (Path(account_id), Query(freshness)) = (id?, freshness?);
    // The same check as the commands', so that an id no command could use is a 400 here
    // too, not a 404.
    StreamId::new(Account::TYPE, &account_id).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let row = match freshness.min_version {
        None => app.balances.get(&account_id).ok_or_else(|| {
            ApiError::UnknownAccount(format!(
                "the read model knows no account {account_id}; one opened a moment ago \
                 appears when the read model catches up (ask with ?min_version=1 to wait)"
            ))
        })?,
        Some(version) => wait_for(&app, &account_id, version).await?,
    };
    let feed = app.feed.status();
    Ok(Json(json!({
        "account_id": account_id,
        "balance": row.balance,
        "version": row.version,
        "read_model": {
            "position": feed.position.map(|p| p.to_string()),
            "state": state_name(feed.state),
        },
    })))
}

/// The row of `account_id` once the view has it at `version` or later.
async fn wait_for(app: &AppState, account_id: &str, version: u64) -> Result<Balance, ApiError> {
    let deadline = tokio::time::Instant::now() + READ_WAIT;
    loop {
        let row = app.balances.get(account_id);
        match row {
            Some(row) if row.version >= version => return Ok(row),
            _ if tokio::time::Instant::now() >= deadline => {
                let now = row.map_or("does not know it yet".to_owned(), |row| {
                    format!("has it at version {}", row.version)
                });
                return Err(ApiError::ReadModelBehind(format!(
                    "the read model has not reached version {version} of account \
                     {account_id} within {READ_WAIT:?}: it {now}"
                )));
            }
            _ => tokio::time::sleep(LOOK_AGAIN).await,
        }
    }
}
