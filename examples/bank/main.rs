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

use balances::Balances;
use cqrs_core::{Aggregate, Engine, EngineError, SnapshotPolicy};
use domain::{Account, AccountCommand};
use examples::Backend;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    run().await
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
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
    for (what, command) in commands {
        match bank.send(command).await {
            Ok(committed) => println!(
                "  {what:<30} accepted: recorded {} at version {}; the balances view now says {}",
                committed
                    .events
                    .iter()
                    .map(|e| e.event_type.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                committed.version,
                balances.get(account).unwrap_or_default().balance,
            ),
            Err(EngineError::Rejected(reason)) => {
                println!("  {what:<30} REFUSED: {reason}; nothing was recorded")
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
    for event in bank
        .stream_store()
        .read_stream(&stream, 1, usize::MAX)
        .await?
    {
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
    let first = bank.stream_store().read_stream(&stream, 1, 1).await?;
    if let Some(first) = first.first() {
        println!(
            "\nThe first event as a CloudEvents document:\n{:#}",
            first.to_cloudevent()
        );
    }
    Ok(())
}

#[cfg(test)]
mod story {
    /// The whole example, on the backend the test command provides (PostgreSQL under
    /// `scripts/test`), so that it cannot rot on either backend.
    #[tokio::test]
    async fn the_bank_story_runs_to_the_end() {
        super::run().await.expect("the bank example runs");
    }
}
