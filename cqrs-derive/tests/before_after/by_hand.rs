//! A bank domain written against the traits, without the derives: the "before" of the
//! line count in the crate docs. Only the lines between the BEGIN and END markers count,
//! and the handler bodies (shared with `by_derive.rs`, from `main.rs`) are left out of
//! both.

use cqrs_core::{Aggregate, Command, DomainEvent, Envelope, Listener, Projection};
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

// BEGIN by hand
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    #[serde(rename = "account.opened")]
    Opened { owner: String },
    #[serde(rename = "account.deposited")]
    Deposited { amount: u64, currency: String },
    #[serde(rename = "account.withdrawn")]
    Withdrawn { amount: u64 },
}

impl DomainEvent for AccountEvent {
    const EVENT_TYPES: &'static [cqrs_core::EventTypeInfo] = &[
        cqrs_core::EventTypeInfo {
            name: "account.opened",
            version: 1,
        },
        cqrs_core::EventTypeInfo {
            name: "account.deposited",
            version: 3,
        },
        cqrs_core::EventTypeInfo {
            name: "account.withdrawn",
            version: 1,
        },
    ];
    const UPCASTERS: &'static [cqrs_core::Upcaster] = &[
        cqrs_core::Upcaster::new("account.deposited", 1, upcast::deposited_v1),
        cqrs_core::Upcaster::new("account.deposited", 2, upcast::deposited_v2),
    ];
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Opened { .. } => "account.opened",
            AccountEvent::Deposited { .. } => "account.deposited",
            AccountEvent::Withdrawn { .. } => "account.withdrawn",
        }
    }
    fn encode(&self) -> Result<serde_json::Value, cqrs_core::codec::JsonError> {
        cqrs_core::codec::serde_enum::encode(self)
    }
    fn decode(t: &str, data: &serde_json::Value) -> Result<Self, cqrs_core::PayloadError> {
        cqrs_core::codec::serde_enum::decode(t, data)
    }
}

pub enum AccountCommand {
    Open { account_id: String, owner: String },
    Deposit { account_id: String, amount: u64 },
    Withdraw { account_id: String, amount: u64 },
}

impl Command for AccountCommand {
    fn command_name(&self) -> &'static str {
        match self {
            AccountCommand::Open { .. } => "Open",
            AccountCommand::Deposit { .. } => "Deposit",
            AccountCommand::Withdraw { .. } => "Withdraw",
        }
    }
    fn aggregate_id(&self) -> Option<String> {
        match self {
            AccountCommand::Open { account_id, .. }
            | AccountCommand::Deposit { account_id, .. }
            | AccountCommand::Withdraw { account_id, .. } => Some(account_id.clone()),
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
pub struct Account {
    balance: u64,
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = ();
    async fn handle(&self, c: &AccountCommand, _: &()) -> Result<Vec<AccountEvent>, AccountError> {
        handle_body!(self, c) // body
    }
    fn apply(&mut self, e: &AccountEvent) {
        apply_body!(self, e) // body
    }
}

#[derive(Default)]
pub struct Balances;

impl Listener for Balances {
    const NAME: &'static str = "balances";
    type Event = AccountEvent;
    type Error = std::convert::Infallible;
    fn event_types() -> Vec<&'static str> {
        vec!["account.deposited", "account.withdrawn"]
    }
}

impl Projection for Balances {
    async fn reset(&self) -> Result<(), Self::Error> {
        Ok(())
    }

    async fn handle(&self, _: &Envelope<AccountEvent>) -> Result<(), Self::Error> {
        Ok(()) // body
    }
}
// END by hand
