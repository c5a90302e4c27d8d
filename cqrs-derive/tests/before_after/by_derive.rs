//! The domain of `by_hand.rs` with the derives: the "after" of the line count in the
//! crate docs. Only the lines between the BEGIN and END markers count.

use cqrs_core::{Aggregate, Command, DomainEvent, Envelope, Projection};
use serde::{Deserialize, Serialize};

mod upcast {
    use serde_json::Value;
    pub fn deposited_v1(data: Value) -> Result<Value, String> {
        Ok(data)
    }
    pub fn deposited_v2(data: Value) -> Result<Value, String> {
        Ok(data)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("refused")]
pub struct AccountError;

// BEGIN with derives
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "account.", rename_all = "snake_case")]
pub enum AccountEvent {
    Opened {
        owner: String,
    },
    #[event(version = 3, upcast(from = 1, with = upcast::deposited_v1))]
    #[event(upcast(from = 2, with = upcast::deposited_v2))]
    Deposited {
        amount: u64,
        currency: String,
    },
    Withdrawn {
        amount: u64,
    },
}

#[derive(Command)]
#[command(id = account_id)]
pub enum AccountCommand {
    Open { account_id: String, owner: String },
    Deposit { account_id: String, amount: u64 },
    Withdraw { account_id: String, amount: u64 },
}

#[derive(Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = AccountCommand, event = AccountEvent, error = AccountError)]
pub struct Account {
    balance: u64,
}

impl Account {
    async fn handle(&self, c: &AccountCommand, _: &()) -> Result<Vec<AccountEvent>, AccountError> {
        handle_body!(self, c) // body
    }
    fn apply(&mut self, e: &AccountEvent) {
        apply_body!(self, e) // body
    }
}

#[derive(Default, Projection)]
#[projection(event = AccountEvent, events(Deposited, Withdrawn))]
pub struct Balances;

impl Balances {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn handle(&self, _: &Envelope<AccountEvent>) -> Result<(), std::convert::Infallible> {
        Ok(()) // body
    }
}
// END with derives
