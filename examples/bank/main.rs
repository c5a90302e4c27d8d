//! # Bank: an event-sourced account
//!
//! Run it with `cargo run --example bank`. It needs no set-up: events are kept in memory.
//! With `DATABASE_URL` set, the same code runs on PostgreSQL (schema `bank_example`, with
//! the key-encryption key in `CQRS_KEK`, or a demo key the example prints a notice about).
//!
//! What it shows:
//! - commands validated against the state folded from past events;
//! - a refused withdrawal, returned as the domain's own typed error;
//! - a read model (balances) kept up to date by a projection after each commit;
//! - a temporal query: the state of the account as of an earlier version;
//! - the event log itself, and one event as a CloudEvents document;
//! - personal data (crypto-shredding): the owner's name is sealed with the customer's
//!   key, and when the customer asks to be forgotten, `Engine::forget` destroys the key.
//!   The account still loads, balance intact; the log and its CloudEvents show
//!   "[forgotten]"; the read model cleans its own copy by rebuilding the rows of the
//!   streams `forget` returned; a command that would store her name again is refused
//!   (`StoreError::Forgotten`), while a deposit still works.

mod balances;
mod domain;

use std::sync::Arc;

use balances::{Balance, Balances};
use cqrs_core::personal::Subject;
use cqrs_core::{
    Aggregate, Command, Engine, EngineError, SnapshotPolicy, StoreError, StoredEvent, StreamId,
};
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
    outcomes: Vec<Result<Accepted, Refused>>,
    /// The account's balance and version at the end of the first part, and as of version 2.
    now: (u64, u64),
    before: (u64, u64),
    /// The balances view's row of the account at the end of the first part.
    view: Option<Balance>,
    /// The account's event log.
    log: Vec<Arc<StoredEvent>>,
    /// Its first event as a CloudEvents document.
    first: serde_json::Value,
    /// The customer forgotten, and the streams `forget` returned.
    customer: Subject,
    forgotten_streams: Vec<StreamId>,
    /// The account loaded right after: balance, version and owner.
    after_forget: (u64, u64, Option<String>),
    /// The event log and the first event as CloudEvents, read after.
    forgotten_log: Vec<Arc<StoredEvent>>,
    forgotten_first: serde_json::Value,
    /// The balances view's row right after `forget`, and after the application cleaned it.
    view_uncleaned: Option<Balance>,
    view_cleaned: Option<Balance>,
    /// Per command sent after `forget`: what it recorded, or why it was refused.
    outcomes_after: Vec<Result<Accepted, Refused>>,
    /// The balances view's row at the very end.
    view_at_end: Option<Balance>,
}

/// An accepted command: the event types it recorded, the version it reached and the
/// balance the view showed then.
type Accepted = (Vec<String>, u64, u64);

/// Why a command was refused: by the account's rules, or by the store because it carried
/// personal data about a forgotten customer.
#[derive(Debug, PartialEq)]
enum Refused {
    Rule(AccountError),
    Forgotten(Subject),
}

/// Sends `command`, prints what became of it, and returns it (or the failure of the
/// engine or store, which ends the example).
async fn send(
    bank: &Engine<Account>,
    balances: &Balances,
    what: &str,
    command: AccountCommand,
) -> Result<Result<Accepted, Refused>, EngineError<AccountError>> {
    let account = command.aggregate_id().unwrap_or_default();
    match bank.send(command).await {
        Ok(committed) => {
            let types: Vec<String> = committed
                .events
                .iter()
                .map(|e| e.event_type.clone())
                .collect();
            let balance = balances.get(&account).unwrap_or_default().balance;
            println!(
                "  {what:<30} accepted: recorded {} at version {}; the balances view now says {balance}",
                types.join(", "),
                committed.version,
            );
            Ok(Ok((types, committed.version, balance)))
        }
        Err(EngineError::Rejected(reason)) => {
            println!("  {what:<30} REFUSED: {reason}; nothing was recorded");
            Ok(Err(Refused::Rule(reason)))
        }
        Err(EngineError::Store(StoreError::Forgotten { subject })) => {
            println!(
                "  {what:<30} REFUSED by the store: {subject} was forgotten, and personal \
                 data about them is not stored again; nothing was recorded"
            );
            Ok(Err(Refused::Forgotten(subject)))
        }
        Err(other) => Err(other),
    }
}

/// Prints an event log, one event a line.
fn print_log(log: &[Arc<StoredEvent>]) {
    for event in log {
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
}

async fn run() -> Result<Story, Box<dyn std::error::Error>> {
    // The backend: in memory, or PostgreSQL when DATABASE_URL is set.
    let backend = Backend::from_env("bank_example").await?;
    let balances = Balances::default();
    let bank = Engine::<Account>::new(backend.events.clone(), ())
        .with_snapshots(backend.snapshots.clone(), SnapshotPolicy::EveryEvents(100))
        .with_projection(balances.clone());

    println!("Bank example on {}.", backend.description);
    println!("Each command is checked against the events recorded so far.\n");
    // Ids stay readable after a customer is forgotten, so they hold no names.
    let run = examples::run_id();
    let account = &format!("account-{run}");
    let customer_id = &format!("customer-{run}");
    let commands = [
        (
            "Alice opens her account",
            AccountCommand::Open {
                account_id: account.into(),
                customer_id: customer_id.into(),
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
        outcomes.push(send(&bank, &balances, what, command).await?);
    }

    let now = bank.load(account).await?;
    println!(
        "\nThe account now: balance {} at version {}, owner {:?}.",
        now.state.balance,
        now.version,
        now.state.owner.as_deref().unwrap_or_default(),
    );
    let before = bank.load_at(account, 2).await?;
    println!(
        "Temporal query: as of version {} (after the first deposit) the balance was {}.",
        before.version, before.state.balance
    );

    println!("\nThe event log of {account} (the only thing stored; state is a fold over it):");
    let stream = StreamId::new(Account::TYPE, account)?;
    let read_log = || bank.stream_store().read_stream(&stream, 1, usize::MAX);
    let log = read_log().await?;
    print_log(&log);
    let first = log.first().ok_or("the log is empty")?.to_cloudevent();
    println!("\nThe first event as a CloudEvents document:\n{first:#}");
    // The owner's name is stored sealed with the customer's key, and opened on every read.
    let view = balances.get(account);

    println!("\nAlice asks to be forgotten.");
    let customer = Subject::new(customer_id.as_str())?;
    // Destroys her key: every copy of her name the store holds is unreadable from now on.
    let forgotten_streams = bank.forget(&customer).await?;
    let names: Vec<String> = forgotten_streams.iter().map(|s| s.to_string()).collect();
    println!(
        "forget({customer}) destroyed her key; her name was in {}.",
        names.join(", ")
    );
    let loaded = bank.load(account).await?;
    println!(
        "The account still loads: balance {} at version {}, owner {:?}.",
        loaded.state.balance,
        loaded.version,
        loaded.state.owner.as_deref().unwrap_or_default(),
    );
    println!("The event log now reads:");
    let forgotten_log = read_log().await?;
    print_log(&forgotten_log);
    let forgotten_first = forgotten_log
        .first()
        .ok_or("the log is empty")?
        .to_cloudevent();
    println!(
        "The first event's CloudEvents data now: {}",
        forgotten_first["data"]
    );

    // The store cleans what it holds; read models (and copies sent over a message bus)
    // are the application's own to clean, and the streams `forget` returned say where.
    let view_uncleaned = balances.get(account);
    let shown = |row: &Option<Balance>| {
        row.as_ref()
            .map(|row| format!("owner {:?}, balance {}", row.owner, row.balance))
            .unwrap_or_default()
    };
    println!(
        "The balances view still holds its own copy: {}.",
        shown(&view_uncleaned)
    );
    balances
        .rebuild(bank.stream_store().as_ref(), &forgotten_streams)
        .await?;
    let view_cleaned = balances.get(account);
    println!(
        "Its rows of the streams forget returned, rebuilt from the store: {}.",
        shown(&view_cleaned)
    );

    println!();
    // A forgotten customer id stays forgotten: a returning customer gets a new one.
    let commands = [
        (
            "Alice opens a second account",
            AccountCommand::Open {
                account_id: format!("account-{run}-2"),
                customer_id: customer_id.into(),
                owner: "Alice".into(),
            },
        ),
        (
            "A deposit of 5 to the account",
            AccountCommand::Deposit {
                account_id: account.into(),
                amount: 5,
            },
        ),
    ];
    let mut outcomes_after = Vec::new();
    for (what, command) in commands {
        outcomes_after.push(send(&bank, &balances, what, command).await?);
    }

    Ok(Story {
        outcomes,
        now: (now.state.balance, now.version),
        before: (before.state.balance, before.version),
        view,
        log,
        first,
        customer,
        forgotten_streams,
        after_forget: (loaded.state.balance, loaded.version, loaded.state.owner),
        forgotten_log,
        forgotten_first,
        view_uncleaned,
        view_cleaned,
        outcomes_after,
        view_at_end: balances.get(account),
    })
}

#[cfg(test)]
mod story {
    use serde_json::json;

    use cqrs_core::personal::Subject;

    use super::Refused;
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
                Err(Refused::Rule(AccountError::InsufficientFunds {
                    balance: 70,
                    requested: 500
                })),
                accepted("account.deposited", 4, 75),
            ]
        );
        assert_eq!(story.now, (75, 4));
        assert_eq!(story.before, (100, 2));
        assert_eq!(
            story.view,
            Some(Balance {
                owner: "Alice".into(),
                balance: 75,
                version: 4
            })
        );

        // Ids hold no names: they stay readable after the customer is forgotten.
        let account = story.log[0].stream.id();
        let run = account.strip_prefix("account-").expect("an account id");
        let customer = format!("customer-{run}");
        assert_eq!(story.customer.as_str(), customer);
        let opened = |owner: &str| json!({ "customer_id": customer, "owner": owner });

        // The refused withdrawal left nothing in the log.
        let summary = |log: &[std::sync::Arc<cqrs_core::StoredEvent>]| -> Vec<_> {
            log.iter()
                .map(|e| {
                    (
                        e.stream_version,
                        e.event_type.clone(),
                        e.event_version,
                        e.data.clone(),
                    )
                })
                .collect()
        };
        let log = summary(&story.log);
        let expected = |owner: &str| {
            [
                (1, "account.opened", 1, opened(owner)),
                (2, "account.deposited", 1, json!({ "amount": 100 })),
                (3, "account.withdrawn", 1, json!({ "amount": 30 })),
                (4, "account.deposited", 1, json!({ "amount": 5 })),
            ]
            .map(|(v, t, ev, data)| (v, t.to_owned(), ev, data))
        };
        assert_eq!(log, expected("Alice"));
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
        assert_eq!(first["data"], opened("Alice"));
        let correlation = story.log[0]
            .metadata
            .correlation_id
            .map(|id| id.to_string());
        assert_eq!(first["correlationid"].as_str(), correlation.as_deref());

        // Alice is forgotten: `forget` names the one stream that held her name.
        let stream = &story.log[0].stream;
        assert_eq!(story.forgotten_streams, std::slice::from_ref(stream));
        // (a) The account still loads, balance intact, its owner the placeholder.
        assert_eq!(story.after_forget, (75, 4, Some("[forgotten]".into())));
        // (b) The log and its CloudEvents show the placeholder; nothing else changed.
        assert_eq!(summary(&story.forgotten_log), expected("[forgotten]"));
        let ids = |log: &[std::sync::Arc<cqrs_core::StoredEvent>]| -> Vec<_> {
            log.iter().map(|e| (e.event_id, e.position)).collect()
        };
        assert_eq!(ids(&story.forgotten_log), ids(&story.log));
        let mut forgotten_first = story.forgotten_first.clone();
        assert_eq!(forgotten_first["data"], opened("[forgotten]"));
        forgotten_first["data"] = first["data"].clone();
        assert_eq!(&forgotten_first, first, "only the data changed");
        assert!(!story.forgotten_first.to_string().contains("Alice"));
        // (c) The view keeps its own copy until the application rebuilds its row.
        let row = |owner: &str, balance, version| {
            Some(Balance {
                owner: owner.into(),
                balance,
                version,
            })
        };
        assert_eq!(story.view_uncleaned, row("Alice", 75, 4));
        assert_eq!(story.view_cleaned, row("[forgotten]", 75, 4));
        // (d) Her name is not stored again; a deposit still is.
        assert_eq!(
            story.outcomes_after,
            [
                Err(Refused::Forgotten(Subject::new(customer).expect("valid"))),
                accepted("account.deposited", 5, 80),
            ]
        );
        assert_eq!(story.view_at_end, row("[forgotten]", 80, 5));
    }
}
