//! The balances read model: one number per account, kept up to date by a projection.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use cqrs_core::{Envelope, Projection};

use crate::domain::AccountEvent;

/// Balance of every account, shared between the projection (which writes) and the
/// application (which reads). Cloning shares the same map.
#[derive(Debug, Clone, Default, Projection)]
#[projection(event = AccountEvent)]
pub struct Balances {
    accounts: Arc<RwLock<HashMap<String, Balance>>>,
}

/// What the view knows of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub balance: u64,
    /// The last stream version applied: how up to date this row is (the view is
    /// eventually consistent). Delivery is at-least-once, so an event at or below it is a
    /// repeat and is ignored.
    pub version: u64,
}

impl Balances {
    /// The balance of an account, and the version it is at, if it is open.
    pub fn get(&self, account_id: &str) -> Option<Balance> {
        self.accounts.read().ok()?.get(account_id).copied()
    }
}

impl Balances {
    async fn reset(&self) -> Result<(), Infallible> {
        self.accounts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    async fn handle(&self, event: &Envelope<AccountEvent>) -> Result<(), Infallible> {
        // A poisoned lock still holds consistent rows: each update below is one assignment.
        let mut accounts = self.accounts.write().unwrap_or_else(|e| e.into_inner());
        let row = accounts.entry(event.stream.id().to_owned()).or_default();
        if event.stream_version <= row.version {
            return Ok(());
        }
        match event.data {
            AccountEvent::Opened { .. } => {}
            AccountEvent::Deposited { amount } => row.balance += amount,
            AccountEvent::Withdrawn { amount } => row.balance -= amount,
        }
        row.version = event.stream_version;
        Ok(())
    }
}
