//! The command endpoints: JSON in, the committed events out.
//!
//! - `POST /accounts` `{"account_id": "alice", "customer_id": "c-1", "owner": "Alice"}`: 201;
//! - `POST /accounts/{id}/deposits` `{"amount": 100}`: 200;
//! - `POST /accounts/{id}/withdrawals` `{"amount": 30}`: 200.
//!
//! Deposits and withdrawals may carry `"expected_version"`: the command then runs only if
//! the account is still at that version (409 `stale_version` if not).
//!
//! The answer is `{"account_id", "version", "events": [...]}`: `version` is the account's
//! version after the command, which a query may ask the read model to have reached.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use cqrs_core::{Committed, DomainEvent};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::domain::{AccountCommand, AccountEvent};
use crate::error::ApiError;
use crate::service::AppState;

/// The body of `POST /accounts`.
#[derive(Debug, Deserialize)]
pub struct OpenAccount {
    account_id: String,
    customer_id: String,
    owner: String,
}

/// The body of a deposit or a withdrawal. With `expected_version` (the account's
/// version the client based its decision on, from a command's answer or a query), the
/// command runs only if nothing was written since: otherwise 409 `stale_version`.
#[derive(Debug, Deserialize)]
pub struct Amount {
    amount: u64,
    #[serde(default)]
    expected_version: Option<u64>,
}

/// `POST /accounts`: opens an account. Opening one that is open is a 409.
pub async fn open(
    State(app): State<AppState>,
    body: Result<Json<OpenAccount>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(OpenAccount {
        account_id,
        customer_id,
        owner,
    }) = body?;
    let command = AccountCommand::Open {
        account_id: account_id.clone(),
        customer_id,
        owner,
    };
    let committed = app.engine.execute(&account_id, command).await?;
    Ok((StatusCode::CREATED, Json(answer(&account_id, &committed)?)))
}

/// `POST /accounts/{id}/deposits`.
pub async fn deposit(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Amount>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let deposit = |account_id, amount| AccountCommand::Deposit { account_id, amount };
    move_money(app, id, body, deposit).await
}

/// `POST /accounts/{id}/withdrawals`. More than the balance is a 422.
pub async fn withdraw(
    State(app): State<AppState>,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Amount>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let withdraw = |account_id, amount| AccountCommand::Withdraw { account_id, amount };
    move_money(app, id, body, withdraw).await
}

async fn move_money(
    app: AppState,
    id: Result<Path<String>, PathRejection>,
    body: Result<Json<Amount>, JsonRejection>,
    command: fn(String, u64) -> AccountCommand,
) -> Result<Json<Value>, ApiError> {
    let (Path(account_id), Json(body)) = (id?, body?);
    let command = command(account_id.clone(), body.amount);
    let committed = match body.expected_version {
        Some(version) => {
            app.engine
                .execute_expecting(&account_id, version, command)
                .await?
        }
        None => app.engine.execute(&account_id, command).await?,
    };
    Ok(Json(answer(&account_id, &committed)?))
}

/// The committed events as JSON.
fn answer(account_id: &str, committed: &Committed<AccountEvent>) -> Result<Value, ApiError> {
    let events = committed
        .events
        .iter()
        .map(|event| {
            Ok(json!({
                "event_id": event.event_id,
                "type": event.event_type,
                "version": event.stream_version,
                "position": event.position.to_string(),
                "data": event.data.encode()?,
            }))
        })
        .collect::<Result<Vec<_>, cqrs_core::codec::JsonError>>()
        .map_err(|e| {
            ApiError::Internal(format!(
                "committed up to version {}, but the events could not be shown: {e}",
                committed.version
            ))
        })?;
    Ok(json!({
        "account_id": account_id,
        "version": committed.version,
        "events": events,
    }))
}
