//! The benchmark's bank domain: an account that is opened, then credited, never below
//! zero. One event per command, except `DepositEach`, which records one deposit per
//! amount (the multi-event command of workload 4).

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

/// What can be asked of an account.
#[derive(Debug, Clone, Command)]
#[command(id = account_id)]
pub enum AccountCommand {
    /// Opens the account.
    Open { account_id: String, owner: String },
    /// Credits it.
    Deposit { account_id: String, amount: u64 },
    /// Debits it.
    Withdraw { account_id: String, amount: u64 },
    /// Credits it once per amount, as that many events.
    DepositEach {
        account_id: String,
        amounts: Vec<u64>,
    },
}

/// What happened to an account. Stored as `account.opened`, `account.deposited`, ...
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "account.", rename_all = "snake_case")]
pub enum AccountEvent {
    /// The account was opened.
    Opened { owner: String },
    /// Money came in.
    Deposited { amount: u64 },
    /// Money went out.
    Withdrawn { amount: u64 },
}

/// Why an account refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountError {
    /// `Open` on an open account.
    #[error("the account is already open")]
    AlreadyOpen,
    /// Anything but `Open` on an account that is not open.
    #[error("the account is not open")]
    NotOpen,
    /// A withdrawal beyond the balance.
    #[error("insufficient funds: the balance is {balance}, {requested} was requested")]
    InsufficientFunds { balance: u64, requested: u64 },
}

/// The state of an account.
#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = AccountCommand, event = AccountEvent, error = AccountError)]
pub struct Account {
    /// Whether it was opened.
    pub open: bool,
    /// The balance.
    pub balance: u64,
}

impl Account {
    async fn handle(
        &self,
        command: &AccountCommand,
        _: &(),
    ) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand::*;
        match command {
            Open { owner, .. } if !self.open => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            Open { .. } => Err(AccountError::AlreadyOpen),
            _ if !self.open => Err(AccountError::NotOpen),
            Deposit { amount, .. } => Ok(vec![AccountEvent::Deposited { amount: *amount }]),
            Withdraw { amount, .. } if *amount > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    requested: *amount,
                })
            }
            Withdraw { amount, .. } => Ok(vec![AccountEvent::Withdrawn { amount: *amount }]),
            DepositEach { amounts, .. } => Ok(amounts
                .iter()
                .map(|&amount| AccountEvent::Deposited { amount })
                .collect()),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { .. } => self.open = true,
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

/// The i-th command of a fresh account: `Open` first, then deposits.
pub fn nth_command(account_id: &str, i: usize) -> AccountCommand {
    if i == 0 {
        AccountCommand::Open {
            account_id: account_id.to_owned(),
            owner: "Ada".to_owned(),
        }
    } else {
        AccountCommand::Deposit {
            account_id: account_id.to_owned(),
            amount: 100 + i as u64,
        }
    }
}
