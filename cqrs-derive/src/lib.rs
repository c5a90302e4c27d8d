//! Derive macros for `cqrs-core`: `DomainEvent`, `Command`, `Aggregate`, `Projection`,
//! `ProcessManager`; and for `cqrs-postgres`: `PgProjection`.
//!
//! Use them through `cqrs-core`, which re-exports them behind its default `derive`
//! feature (as serde does with `serde_derive`): `use cqrs_core::{Aggregate, Command,
//! DomainEvent, ProcessManager, Projection};` imports each trait together with its
//! derive. Generated code names `::cqrs_core` only (the serde it needs is reached through
//! a hidden module of `cqrs-core`), so an application needs no dependency besides
//! `cqrs-core` (plus `serde` if its own types derive serde traits). A crate that re-exports `cqrs_core` under another path passes it with
//! `crate = "path"` in the derive's attribute, like `#[serde(crate = "...")]`.
//! `PgProjection` is used through `cqrs-postgres` the same way, and its code names
//! `::cqrs_postgres` only.
//!
//! The three read-side derives write two impls each: `Listener` (the name and what it
//! reads, shared by every kind of listener) and the kind's own trait (what it does with
//! each event).
//!
//! Each derive's page has its full attribute reference (the guide's derive chapter
//! includes the same text); a summary:
//!
//! | derive | on | attributes |
//! |---|---|---|
//! | [`DomainEvent`] | enum (one event type per variant) or struct (one event type) | enum: `prefix`, `rename_all`, `crate`; variant (or struct): `name`, `version`, `upcast(from, with)`; newtype variant: `flatten`; fields: `serde(...)`, `personal(subject, forgotten)` |
//! | [`Command`] | enum or struct | enum: `id = field`, `crate`; variant/struct: `name`; field: `id` |
//! | [`Aggregate`] | struct or enum | `command`, `event`, `error` (required), `services`, `name`, `snapshot_version`, `crate` |
//! | [`Projection`] | struct or enum | `event` (required), `error`, `name`, `version`, `events(...)`, `streams(...)`, `crate` |
//! | [`ProcessManager`] | struct or enum | `event` (required), `error`, `name`, `events(...)`, `streams(...)`, `crate` |
//! | [`PgProjection`] | struct or enum | as `Projection`, under `#[pg_projection(...)]`; `crate` is the path of `cqrs_postgres` |
//!
//! # A bank, end to end
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! use cqrs_core::{Aggregate, Command, DomainEvent, Envelope, Listener, Projection};
//! use serde::{Deserialize, Serialize};
//!
//! /// Stored as `account.opened`, `account.deposited` (schema version 2), ...
//! #[derive(Debug, Clone, PartialEq, DomainEvent)]
//! #[event(prefix = "account.", rename_all = "snake_case")]
//! pub enum AccountEvent {
//!     Opened { owner: String },
//!     #[event(version = 2, upcast(from = 1, with = upcasters::deposited_v1))]
//!     Deposited { amount: u64 },
//!     Withdrawn { amount: u64 },
//! }
//!
//! mod upcasters {
//!     use serde_json::Value;
//!     /// Version 1 called the amount `cents`.
//!     pub fn deposited_v1(mut data: Value) -> Result<Value, String> {
//!         let cents = data.get_mut("cents").map(Value::take).ok_or("no cents")?;
//!         Ok(serde_json::json!({ "amount": cents }))
//!     }
//! }
//!
//! /// Every variant carries the id of its account, so `engine.send(cmd)` can route it.
//! #[derive(Debug, Command)]
//! #[command(id = account_id)]
//! pub enum AccountCommand {
//!     Open { account_id: String, owner: String },
//!     Deposit { account_id: String, amount: u64 },
//!     Withdraw { account_id: String, amount: u64 },
//! }
//!
//! #[derive(Debug, thiserror::Error)]
//! pub enum AccountError {
//!     #[error("insufficient funds")]
//!     InsufficientFunds,
//! }
//!
//! /// Stream type `account` (the Rust name in snake_case).
//! #[derive(Default, Serialize, Deserialize, Aggregate)]
//! #[aggregate(command = AccountCommand, event = AccountEvent, error = AccountError)]
//! pub struct Account {
//!     balance: u64,
//! }
//!
//! // The derive forwards `Aggregate::handle` and `Aggregate::apply` to these.
//! impl Account {
//!     async fn handle(&self, cmd: &AccountCommand, _: &()) -> Result<Vec<AccountEvent>, AccountError> {
//!         Ok(match cmd {
//!             AccountCommand::Open { owner, .. } => vec![AccountEvent::Opened { owner: owner.clone() }],
//!             AccountCommand::Deposit { amount, .. } => vec![AccountEvent::Deposited { amount: *amount }],
//!             AccountCommand::Withdraw { amount, .. } if *amount > self.balance => {
//!                 return Err(AccountError::InsufficientFunds)
//!             }
//!             AccountCommand::Withdraw { amount, .. } => vec![AccountEvent::Withdrawn { amount: *amount }],
//!         })
//!     }
//!
//!     fn apply(&mut self, event: &AccountEvent) {
//!         match event {
//!             AccountEvent::Opened { .. } => {}
//!             AccountEvent::Deposited { amount } => self.balance += amount,
//!             AccountEvent::Withdrawn { amount } => self.balance -= amount,
//!         }
//!     }
//! }
//!
//! /// Projection `balances`, version 1, fed only deposits and withdrawals.
//! #[derive(Default, Projection)]
//! #[projection(event = AccountEvent, events(Deposited, Withdrawn))]
//! pub struct Balances {
//!     by_account: Mutex<HashMap<String, i64>>,
//! }
//!
//! impl Balances {
//!     async fn reset(&self) -> Result<(), std::convert::Infallible> {
//!         if let Ok(mut map) = self.by_account.lock() {
//!             map.clear();
//!         }
//!         Ok(())
//!     }
//!
//!     async fn handle(&self, event: &Envelope<AccountEvent>) -> Result<(), std::convert::Infallible> {
//!         let delta = match event.data {
//!             AccountEvent::Deposited { amount } => amount as i64,
//!             AccountEvent::Withdrawn { amount } => -(amount as i64),
//!             AccountEvent::Opened { .. } => 0,
//!         };
//!         if let Ok(mut map) = self.by_account.lock() {
//!             *map.entry(event.stream.id().to_owned()).or_default() += delta;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! assert_eq!(AccountEvent::Withdrawn { amount: 1 }.event_type(), "account.withdrawn");
//! assert_eq!(AccountEvent::version_of("account.deposited"), Some(2));
//! assert_eq!(AccountEvent::Deposited { amount: 5 }.encode()?, serde_json::json!({"amount": 5}));
//! let cmd = AccountCommand::Deposit { account_id: "acc-1".into(), amount: 5 };
//! assert_eq!((cmd.command_name(), cmd.aggregate_id()), ("Deposit", Some("acc-1".to_owned())));
//! assert_eq!(Account::TYPE, "account");
//! assert_eq!(Balances::event_types(), ["account.deposited", "account.withdrawn"]);
//! # Ok::<(), cqrs_core::codec::JsonError>(())
//! ```
//!
//! # Why `Aggregate` forwards to inherent methods
//!
//! The trait's `handle` returns `impl Future + Send`; the derive writes the trait impl
//! (the constants and the five associated types) and forwards `handle` and `apply` to
//! inherent methods of the same names that you write in a plain `impl` block:
//! `async fn handle(&self, &Command, &Services) -> Result<Vec<Event>, Error>` and
//! `fn apply(&mut self, &Event)`. This was chosen over an attribute macro on the `impl`
//! block or over method names in the attribute because the user code is then ordinary
//! Rust: a plain `async fn` that rust-analyzer, rustfmt and error messages treat as
//! such, no restated types, and the same two names as the trait and the design
//! (`handle` decides, `apply` folds). If an inherent method is missing, the call would
//! silently resolve to the trait method itself (endless recursion); the derive prevents
//! that with a second, hidden trait that has methods of the same names, so a missing
//! method is a compile error ("multiple applicable items in scope") naming a trait called
//! `write_inherent_fns_handle_and_apply_for_<Type>`. `Projection` works the same way
//! with `async fn handle(&self, &Envelope<Event>) -> Result<(), Error>` and
//! `async fn reset(&self) -> Result<(), Error>` (guard trait
//! `write_inherent_async_fns_handle_and_reset_for_<Type>`), `PgProjection` with the same
//! two taking `tx: &mut PgConnection` first, and `ProcessManager` with
//! `async fn handle(&self, &Envelope<Event>) -> Result<(), Error>` (guard trait
//! `write_inherent_async_fn_handle_for_<Type>`).
//!
//! # Before and after
//!
#![doc = include_str!("../doc/before_after.md")]
//!
//! # Errors
//!
#![doc = include_str!("../doc/errors.md")]

mod aggregate;
mod attr;
mod case;
mod command;
mod consumer;
mod event;
mod forward;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

// Each derive's documentation is a file of `doc/`, which the guide's derive chapter
// (docs/src/derive.md) includes too: the reference is written once.

/// Derives `cqrs_core::DomainEvent`: the stored names, versions, upcasters and JSON of
/// each event type.
///
#[doc = include_str!("../doc/domain_event.md")]
#[proc_macro_derive(DomainEvent, attributes(event, serde))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::Command`: the command's name and the id of the aggregate it
/// targets.
///
#[doc = include_str!("../doc/command.md")]
#[proc_macro_derive(Command, attributes(command))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    command::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::Aggregate`, forwarding to inherent `handle` and `apply`.
///
#[doc = include_str!("../doc/aggregate.md")]
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    aggregate::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::Projection`, forwarding to inherent `handle` and `reset`.
///
#[doc = include_str!("../doc/projection.md")]
#[proc_macro_derive(Projection, attributes(projection))]
pub fn derive_projection(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    consumer::derive(&input, consumer::Kind::Projection)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::ProcessManager`, forwarding to an inherent `handle`.
///
#[doc = include_str!("../doc/process_manager.md")]
#[proc_macro_derive(ProcessManager, attributes(process_manager))]
pub fn derive_process_manager(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    consumer::derive(&input, consumer::Kind::ProcessManager)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_postgres::PgProjection`, forwarding to inherent `handle` and `reset`
/// that take the transaction. Use it through `cqrs_postgres`, which re-exports it.
///
#[doc = include_str!("../doc/pg_projection.md")]
#[proc_macro_derive(PgProjection, attributes(pg_projection))]
pub fn derive_pg_projection(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    consumer::derive(&input, consumer::Kind::PgProjection)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
