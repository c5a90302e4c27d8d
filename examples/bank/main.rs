//! # Bank: an event-sourced account
//!
//! Run it with `cargo run --example bank`. It needs no set-up: events are kept in memory.
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
use cqrs_core::{Engine, EngineError, SnapshotPolicy};
use cqrs_memory::MemoryStore;
use domain::{Account, AccountCommand};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One line picks the backend: the in-memory store, cloned for events and snapshots.
    let store = MemoryStore::new();
    let balances = Balances::default();
    let bank = Engine::<Account>::new(store.clone(), ())
        .with_snapshots(store.clone(), SnapshotPolicy::EveryEvents(100))
        .with_projection(balances.clone());

    println!("Bank example: each command is checked against the events recorded so far.\n");
    let account = "alice-1";
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
                balances.get(account).unwrap_or_default(),
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
    let stream = cqrs_core::StreamId::new("account", account)?;
    for event in bank
        .event_store()
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
    let first = bank.event_store().read_stream(&stream, 1, 1).await?;
    if let Some(first) = first.first() {
        println!(
            "\nThe first event as a CloudEvents document:\n{:#}",
            first.to_cloudevent()
        );
    }
    Ok(())
}
