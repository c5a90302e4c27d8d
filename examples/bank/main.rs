//! # Bank: an event-sourced account
//!
//! Run it with `cargo run --example bank`. It needs no set-up: events are kept in memory.
//! With `DATABASE_URL` set, the same code runs on PostgreSQL (schema `bank_example`).
//!
//! What it shows:
//! - commands validated against the state folded from past events;
//! - a refused withdrawal, returned as the domain's own typed error;
//! - a read model (balances) kept up to date by a projection after each commit;
//! - a temporal query: the state of the account as of an earlier version;
//! - the event log itself, and one event as a CloudEvents document.

mod balances;
mod domain;

use std::sync::Arc;

use balances::{Balance, Balances};
use cqrs_core::{Aggregate, Engine, EngineError, SnapshotPolicy, StoredEvent};
use domain::{Account, AccountCommand, AccountError};
use examples::Backend;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await.map(|_| ())
}

/// What the story leaves behind, for its test to check (the binary only prints).
#[cfg_attr(not(test), allow(dead_code))]
struct Story {
    /// Per command: what it recorded, or why it was refused.
    outcomes: Vec<Result<Accepted, AccountError>>,
    /// The account's balance and version at the end, and as of version 2.
    now: (u64, u64),
    before: (u64, u64),
    /// The balances view's row of the account at the end.
    view: Option<Balance>,
    /// The account's event log.
    log: Vec<Arc<StoredEvent>>,
    /// Its first event as a CloudEvents document.
    first: serde_json::Value,
}

/// An accepted command: the event types it recorded, the version it reached and the
/// balance the view showed then.
type Accepted = (Vec<String>, u64, u64);

async fn run() -> Result<Story, Box<dyn std::error::Error>> {
    // The backend: in memory, or PostgreSQL when DATABASE_URL is set.
    let backend = Backend::from_env("bank_example").await?;
    let balances = Balances::default();
    let bank = Engine::<Account>::new(backend.events.clone(), ())
        .with_snapshots(backend.snapshots.clone(), SnapshotPolicy::EveryEvents(100))
        .with_projection(balances.clone());

    println!("Bank example on {}.", backend.description);
    println!("Each command is checked against the events recorded so far.\n");
    let account = &format!("alice-{}", examples::run_id());
    let commands = [
        (
            "Alice opens her account",
            AccountCommand::Open {
                account_id: account.into(),
                owner: "Alice".into(),
            },
        ),
        (
            "Alice deposits 100",
            AccountCommand::Deposit {
                account_id: account.into(),
                amount: 100,
            },
        ),
        (
            "Alice withdraws 30",
            AccountCommand::Withdraw {
                account_id: account.into(),
                amount: 30,
            },
        ),
        (
            "Alice tries to withdraw 500",
            AccountCommand::Withdraw {
                account_id: account.into(),
                amount: 500,
            },
        ),
        (
            "Alice deposits 5",
            AccountCommand::Deposit {
                account_id: account.into(),
                amount: 5,
            },
        ),
    ];
    let mut outcomes = Vec::new();
    for (what, command) in commands {
        match bank.send(command).await {
            Ok(committed) => {
                let types: Vec<String> = committed
                    .events
                    .iter()
                    .map(|e| e.event_type.clone())
                    .collect();
                let balance = balances.get(account).unwrap_or_default().balance;
                println!(
                    "  {what:<30} accepted: recorded {} at version {}; the balances view now says {balance}",
                    types.join(", "),
                    committed.version,
                );
                outcomes.push(Ok((types, committed.version, balance)));
            }
            Err(EngineError::Rejected(reason)) => {
                println!("  {what:<30} REFUSED: {reason}; nothing was recorded");
                outcomes.push(Err(reason));
            }
            Err(other) => return Err(other.into()),
        }
    }

    let now = bank.load(account).await?;
    println!(
        "\nThe account now: balance {} at version {}.",
        now.state.balance, now.version
    );
    let before = bank.load_at(account, 2).await?;
    println!(
        "Temporal query: as of version {} (after the first deposit) the balance was {}.",
        before.version, before.state.balance
    );

    println!("\nThe event log of {account} (the only thing stored; state is a fold over it):");
    let stream = cqrs_core::StreamId::new(Account::TYPE, account)?;
    let log = bank
        .stream_store()
        .read_stream(&stream, 1, usize::MAX)
        .await?;
    for event in &log {
        println!(
            "  v{} {:<18} {}  correlation {}",
            event.stream_version,
            event.event_type,
            event.data,
            event
                .metadata
                .correlation_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
        );
    }
    let first = log.first().ok_or("the log is empty")?.to_cloudevent();
    println!("\nThe first event as a CloudEvents document:\n{first:#}");
    Ok(Story {
        outcomes,
        now: (now.state.balance, now.version),
        before: (before.state.balance, before.version),
        view: balances.get(account),
        log,
        first,
    })
}

#[cfg(test)]
mod story {
    use serde_json::json;

    use crate::balances::Balance;
    use crate::domain::AccountError;

    /// The whole example, on the backend the test command provides (PostgreSQL under
    /// `scripts/test`), so that it cannot rot on either backend.
    #[tokio::test]
    async fn the_bank_story_runs_to_the_end() {
        let story = super::run().await.expect("the bank example runs");
        let accepted =
            |event: &str, version, balance| Ok((vec![event.to_owned()], version, balance));
        assert_eq!(
            story.outcomes,
            [
                accepted("account.opened", 1, 0),
                accepted("account.deposited", 2, 100),
                accepted("account.withdrawn", 3, 70),
                Err(AccountError::InsufficientFunds {
                    balance: 70,
                    requested: 500
                }),
                accepted("account.deposited", 4, 75),
            ]
        );
        assert_eq!(story.now, (75, 4));
        assert_eq!(story.before, (100, 2));
        assert_eq!(
            story.view,
            Some(Balance {
                balance: 75,
                version: 4
            })
        );

        // The refused withdrawal left nothing in the log.
        let log: Vec<_> = story
            .log
            .iter()
            .map(|e| {
                (
                    e.stream_version,
                    e.event_type.as_str(),
                    e.event_version,
                    &e.data,
                )
            })
            .collect();
        assert_eq!(
            log,
            [
                (1, "account.opened", 1, &json!({ "owner": "Alice" })),
                (2, "account.deposited", 1, &json!({ "amount": 100 })),
                (3, "account.withdrawn", 1, &json!({ "amount": 30 })),
                (4, "account.deposited", 1, &json!({ "amount": 5 })),
            ]
        );
        let account = story.log[0].stream.id();
        assert!(account.starts_with("alice-"), "{account}");
        assert!(story.log.iter().all(|e| e.stream.id() == account));
        for pair in story.log.windows(2) {
            assert!(pair[0].position < pair[1].position);
        }
        // Each command has a correlation id of its own, shared by the events it recorded.
        let correlations: std::collections::HashSet<_> = story
            .log
            .iter()
            .map(|e| e.metadata.correlation_id.expect("a correlation id"))
            .collect();
        assert_eq!(correlations.len(), 4);

        let first = &story.first;
        assert_eq!(first["specversion"], "1.0");
        assert_eq!(first["id"], story.log[0].event_id.to_string());
        assert_eq!(first["type"], "account.opened");
        assert_eq!(first["source"], format!("/account/{account}"));
        assert_eq!(first["subject"], account);
        assert_eq!(first["streamversion"], 1);
        assert_eq!(first["eventversion"], 1);
        assert_eq!(first["data"], json!({ "owner": "Alice" }));
        let correlation = story.log[0]
            .metadata
            .correlation_id
            .map(|id| id.to_string());
        assert_eq!(first["correlationid"].as_str(), correlation.as_deref());
    }
}
