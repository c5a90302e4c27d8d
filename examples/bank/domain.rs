//! The bank domain: an account that can be opened, credited and debited, never below zero.
//! Its owner's name is personal data: sealed in the store, and unreadable once the
//! customer is forgotten.

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

/// What can be asked of an account. Each command names its account.
#[derive(Debug, Clone, Command)]
#[command(id = account_id)]
pub enum AccountCommand {
    Open {
        account_id: String,
        customer_id: String,
        owner: String,
    },
    Deposit {
        account_id: String,
        amount: u64,
    },
    Withdraw {
        account_id: String,
        amount: u64,
    },
}

/// What happened to an account: facts, in the past tense. Stored as `account.opened`,
/// `account.deposited` and `account.withdrawn`.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "account.", rename_all = "snake_case")]
pub enum AccountEvent {
    Opened {
        /// Whom the account belongs to: an id, stored in plaintext.
        customer_id: String,
        /// The owner's name: personal data about `customer_id`, sealed with that
        /// customer's key, and read as "[forgotten]" once the customer is forgotten.
        #[event(personal(subject = customer_id, forgotten = "[forgotten]"))]
        owner: String,
    },
    Deposited {
        amount: u64,
    },
    Withdrawn {
        amount: u64,
    },
}

/// Why an account refuses a command.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("an amount must be more than zero")]
    ZeroAmount,
    #[error("insufficient funds: the balance is {balance}, {requested} was requested")]
    InsufficientFunds { balance: u64, requested: u64 },
}

/// The state of an account: only what its rules need.
#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = AccountCommand, event = AccountEvent, error = AccountError)]
pub struct Account {
    pub owner: Option<String>,
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
            Open {
                customer_id, owner, ..
            } if self.owner.is_none() => Ok(vec![AccountEvent::Opened {
                customer_id: customer_id.clone(),
                owner: owner.clone(),
            }]),
            Open { .. } => Err(AccountError::AlreadyOpen),
            _ if self.owner.is_none() => Err(AccountError::NotOpen),
            Deposit { amount: 0, .. } | Withdraw { amount: 0, .. } => Err(AccountError::ZeroAmount),
            Deposit { amount, .. } => Ok(vec![AccountEvent::Deposited { amount: *amount }]),
            Withdraw { amount, .. } if *amount > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    requested: *amount,
                })
            }
            Withdraw { amount, .. } => Ok(vec![AccountEvent::Withdrawn { amount: *amount }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { owner, .. } => self.owner = Some(owner.clone()),
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_core::personal::Subject;
    use cqrs_core::testing::AggregateTest;

    fn open() -> AccountEvent {
        AccountEvent::Opened {
            customer_id: "c-1".into(),
            owner: "Ada".into(),
        }
    }

    fn account() -> AggregateTest<Account> {
        AggregateTest::new(())
    }

    fn withdraw(amount: u64) -> AccountCommand {
        AccountCommand::Withdraw {
            account_id: "a".into(),
            amount,
        }
    }

    #[tokio::test]
    async fn opening_a_new_account_records_its_owner() {
        account()
            .given_no_events()
            .when(AccountCommand::Open {
                account_id: "a".into(),
                customer_id: "c-1".into(),
                owner: "Ada".into(),
            })
            .await
            .then_expect_events(vec![open()]);
    }

    #[tokio::test]
    async fn an_account_opens_once() {
        account()
            .given(vec![open()])
            .when(AccountCommand::Open {
                account_id: "a".into(),
                customer_id: "c-2".into(),
                owner: "Bob".into(),
            })
            .await
            .then_expect_error(AccountError::AlreadyOpen);
    }

    #[tokio::test]
    async fn a_deposit_needs_an_open_account_and_an_amount() {
        account()
            .given_no_events()
            .when(AccountCommand::Deposit {
                account_id: "a".into(),
                amount: 5,
            })
            .await
            .then_expect_error(AccountError::NotOpen);
        account()
            .given(vec![open()])
            .when(AccountCommand::Deposit {
                account_id: "a".into(),
                amount: 0,
            })
            .await
            .then_expect_error(AccountError::ZeroAmount);
    }

    #[test]
    fn the_owner_is_personal_data_about_the_customer() {
        let fields = AccountEvent::personal_fields("account.opened");
        let declared: Vec<_> = fields
            .iter()
            .map(|f| (f.field, f.subject, (f.forgotten)()))
            .collect();
        assert_eq!(declared, [("owner", "customer_id", "[forgotten]".into())]);
        assert!(AccountEvent::personal_fields("account.deposited").is_empty());
    }

    #[tokio::test]
    async fn a_forgotten_owner_leaves_the_account_open() {
        let state = account()
            .given(vec![open(), AccountEvent::Deposited { amount: 10 }])
            .given_forgotten(Subject::new("c-1").expect("a valid subject"))
            .when(AccountCommand::Deposit {
                account_id: "a".into(),
                amount: 5,
            })
            .await
            .then_expect_events(vec![AccountEvent::Deposited { amount: 5 }]);
        assert_eq!(state.owner.as_deref(), Some("[forgotten]"));
        assert_eq!(state.balance, 15);
    }

    #[tokio::test]
    async fn a_withdrawal_within_the_balance_is_recorded() {
        let state = account()
            .given(vec![open(), AccountEvent::Deposited { amount: 100 }])
            .when(withdraw(100))
            .await
            .then_expect_events(vec![AccountEvent::Withdrawn { amount: 100 }]);
        assert_eq!(state.balance, 0);
    }

    #[tokio::test]
    async fn a_withdrawal_beyond_the_balance_is_refused() {
        account()
            .given(vec![
                open(),
                AccountEvent::Deposited { amount: 100 },
                AccountEvent::Withdrawn { amount: 30 },
            ])
            .when(withdraw(71))
            .await
            .then_expect_error(AccountError::InsufficientFunds {
                balance: 70,
                requested: 71,
            });
    }
}
