//! Derive macros for `cqrs-core`: `DomainEvent`, `Command`, `Aggregate`, `Projection`,
//! `ProcessManager`.
//!
//! Use them through `cqrs-core`, which re-exports them behind its default `derive`
//! feature (as serde does with `serde_derive`): `use cqrs_core::{Aggregate, Command,
//! DomainEvent, ProcessManager, Projection};` imports each trait together with its
//! derive. Generated code
//! names `::cqrs_core` (and its re-exported `serde`, `serde_json`), so an application
//! needs no dependency besides `cqrs-core` (plus `serde` if its own types derive serde
//! traits). A crate that re-exports `cqrs_core` under another path passes it with
//! `crate = "path"` in the derive's attribute, like `#[serde(crate = "...")]`.
//!
//! The full attribute reference is in the guide (`docs/src/derive.md`); a summary:
//!
//! | derive | on | attributes |
//! |---|---|---|
//! | [`DomainEvent`] | enum (one event type per variant) or struct (one event type) | enum: `prefix`, `rename_all`, `crate`; variant (or struct): `name`, `version`, `upcast(from, with)`; newtype variant: `flatten`; fields: `serde(...)` |
//! | [`Command`] | enum or struct | enum: `id = field`, `crate`; variant/struct: `name`; field: `id` |
//! | [`Aggregate`] | struct or enum | `command`, `event`, `error` (required), `services`, `name`, `snapshot_version`, `crate` |
//! | [`Projection`] | struct or enum | `event` (required), `error`, `name`, `version`, `events(...)`, `crate` |
//! | [`ProcessManager`] | struct or enum | `event` (required), `error`, `name`, `events(...)`, `crate` |
//!
//! # A bank, end to end
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//!
//! use cqrs_core::{Aggregate, Command, DomainEvent, Envelope, Projection};
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
//! `write_inherent_async_fns_handle_and_reset_for_<Type>`), and `ProcessManager` with
//! `async fn handle(&self, &Envelope<Event>) -> Result<(), Error>` (guard trait
//! `write_inherent_async_fn_handle_for_<Type>`).
//!
//! # Before and after
//!
//! The same domain — three events (one at schema version 3 with two upcasters), three
//! commands carrying their aggregate id, an aggregate and a projection restricted to two
//! event types — is in `tests/before_after/by_hand.rs` written against the traits, and
//! in `tests/before_after/by_derive.rs` with the derives; `tests/before_after/main.rs`
//! runs the same inputs through both and checks that the outputs are the same (it pins
//! the two differences: serde's wording of the error for data that is not an object, and
//! a JSON array, which only the derive reads as the fields in order).
//! Counting non-blank lines of the domain code (handler bodies, shared, left out; after
//! `rustfmt`): **109 lines by hand, 59 with the derives**. What disappears is exactly
//! what the design forbids users to write: the name strings restating each variant, the
//! `event_type`, `command_name` and `aggregate_id` matches, the versions and upcaster
//! table kept in sync by hand, and the impls that only restate associated types. The
//! hand-written events also lean on `serde_enum`, which serialises the whole enum and
//! unwraps it; the derive encodes and decodes each variant directly.
//!
//! # Errors
//!
//! Every misuse is a compile error pointing at the offending tokens and saying what to
//! do: unknown or duplicate keys, a version of 0, duplicate event names (after prefix and
//! case conversion), an upcaster from a version at or above the current one, a gap in an
//! upcaster chain, a command id on some variants but not others, a variant without the
//! enum-level id field, two id fields, a missing `command`/`event`/`error`, a projection
//! or process manager listing a variant that does not exist, a `version` on a process
//! manager, a missing inherent `handle` or `reset`, unions, generic events, tuple events
//! with more than one field; for `flatten`: on anything but a newtype variant, beside
//! `name`, `version`, `upcast` or `#[serde]`, around a type that is not an event type,
//! and an event type name that two variants share (a `const` evaluation error naming the
//! name and both variants). `tests/ui/*.stderr` pins each message.

mod aggregate;
mod attr;
mod case;
mod command;
mod consumer;
mod event;
mod forward;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `cqrs_core::DomainEvent` for an enum (one event type per variant: unit,
/// named-field or newtype variants) or a struct (one event type).
///
/// - **Name**: the Rust name of the variant (or struct), converted by
///   `rename_all = "snake_case"` (also `camelCase`, `kebab-case`, `SCREAMING_SNAKE_CASE`,
///   `lowercase`, `UPPERCASE`, `PascalCase`; default: unchanged), then prefixed by
///   `prefix = "account."`. `#[event(name = "...")]` on a variant gives the exact stored
///   name: neither prefix nor case conversion applies to it.
/// - **Version**: `#[event(version = 2)]`, default 1.
/// - **Upcasters**: `#[event(version = 3, upcast(from = 1, with = path::v1_to_v2),
///   upcast(from = 2, with = path::v2_to_v3))]`; each `with` is a
///   `fn(serde_json::Value) -> Result<serde_json::Value, String>`. The `from` versions
///   must be below `version` and form an unbroken chain up to `version - 1`.
/// - **Data**: named fields become a JSON object, a newtype its inner value, a unit
///   variant `null`. Each variant is encoded and decoded directly (through a private
///   serde helper struct), never through the whole enum; encoding is
///   `cqrs_core::codec::to_json`, which refuses a NaN or an infinity with the path of its
///   field (`JsonError::NonFinite`). Field attributes `#[serde(...)]`
///   are honoured (`rename`, `default`, `with`, `serialize_with`, `deserialize_with`,
///   `skip_serializing_if`, `alias`, `flatten`, ...); the enum itself needs no serde
///   derive. Unknown fields are ignored when decoding (a tolerant reader).
/// - **Several aggregates' events in one type**: `#[event(flatten)]` on a newtype variant
///   `Orders(OrderEvent)` gathers every event type of `OrderEvent` (any `DomainEvent`)
///   into the enum, under their own names, versions and upcasters: `event_type`,
///   `event_version` and `encode` delegate to the inner value, `decode` hands a name to
///   the variant whose type has it, and `EVENT_TYPES` and `UPCASTERS` are the inner lists
///   one after the other, computed at compile time. `prefix` and `rename_all` apply only to
///   the enum's own variants, which may sit beside flattened ones. A name that two
///   variants share fails to compile. This is the event type of a view or a process
///   manager fed by several aggregates, which list the flattened variant in
///   `events(...)` to consume all its types (the name echoes `#[serde(flatten)]`: the
///   inner type's entries appear at the outer level).
/// - Generic events are refused: an event is stored by name, so declare a concrete type.
///
/// ```
/// use cqrs_core::DomainEvent;
///
/// #[derive(Debug, PartialEq, DomainEvent)]
/// #[event(prefix = "account.", rename_all = "snake_case")]
/// enum AccountEvent {
///     Opened { owner: String },
///     Deposited(u64),
///     #[event(name = "account.closed", version = 2, upcast(from = 1, with = closed_v1))]
///     Closed,
/// }
///
/// fn closed_v1(_: serde_json::Value) -> Result<serde_json::Value, String> {
///     Ok(serde_json::Value::Null)
/// }
///
/// assert_eq!(AccountEvent::Deposited(5).event_type(), "account.deposited");
/// assert_eq!(AccountEvent::Closed.event_version(), 2);
/// assert_eq!(AccountEvent::Deposited(5).encode()?, serde_json::json!(5));
///
/// #[derive(Debug, PartialEq, DomainEvent)]
/// #[event(prefix = "card.", rename_all = "snake_case")]
/// enum CardEvent {
///     Issued,
/// }
///
/// /// What a customer view reads: accounts and cards, restating none of their events.
/// #[derive(Debug, PartialEq, DomainEvent)]
/// enum CustomerEvent {
///     #[event(flatten)]
///     Account(AccountEvent),
///     #[event(flatten)]
///     Card(CardEvent),
/// }
///
/// assert_eq!(
///     CustomerEvent::event_type_names(),
///     ["account.opened", "account.deposited", "account.closed", "card.issued"]
/// );
/// let issued = CustomerEvent::Card(CardEvent::Issued);
/// assert_eq!(issued.event_type(), "card.issued");
/// assert_eq!(CustomerEvent::decode("card.issued", &serde_json::Value::Null)?, issued);
/// assert_eq!(CustomerEvent::UPCASTERS.len(), 1); // account.closed's, from version 1
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[proc_macro_derive(DomainEvent, attributes(event, serde))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::Command` for an enum (one command per variant) or a struct.
///
/// - `command_name()` is the Rust name of the variant (or struct); override with
///   `#[command(name = "...")]` on the variant (or struct).
/// - The aggregate id: `#[command(id)]` on the field that carries it (any `Display`
///   type; a tuple field works too), or `#[command(id = account_id)]` on the enum when
///   every variant has a field of that name. If one variant names an id, every variant
///   must. Without any, `aggregate_id()` is `None`.
/// - Generics are supported; the impl carries the type's bounds.
///
/// ```
/// use cqrs_core::Command;
///
/// #[derive(Command)]
/// #[command(id = account_id)]
/// enum AccountCommand {
///     Open { account_id: String, owner: String },
///     Deposit { account_id: String, amount: u64 },
/// }
///
/// #[derive(Command)]
/// struct Close {
///     #[command(id)]
///     account: u64,
/// }
///
/// let c = AccountCommand::Deposit { account_id: "a1".into(), amount: 3 };
/// assert_eq!(c.command_name(), "Deposit");
/// assert_eq!(c.aggregate_id().as_deref(), Some("a1"));
/// assert_eq!(Close { account: 7 }.aggregate_id().as_deref(), Some("7"));
/// ```
#[proc_macro_derive(Command, attributes(command))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    command::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::Aggregate` for a struct or an enum that also derives (or
/// implements) `Default`, `Serialize` and `Deserialize`.
///
/// `#[aggregate(command = C, event = E, error = Err)]` are required; optional:
/// `services = S` (default `()`), `name = "..."` (the stream type; default: the Rust
/// name in snake_case, `BankAccount` -> `bank_account`), `snapshot_version = N`
/// (default 1; bump it when the state's shape changes), `crate = "..."`.
///
/// You write, in a plain `impl` block, `async fn handle(&self, command: &C, services:
/// &S) -> Result<Vec<E>, Err>` and `fn apply(&mut self, event: &E)`; the derived trait
/// impl forwards to them. Forgetting one is a compile error naming
/// `write_inherent_fns_handle_and_apply_for_<Type>`.
///
/// ```
/// use cqrs_core::{Aggregate, Command, DomainEvent};
///
/// #[derive(DomainEvent)]
/// enum CounterEvent { Incremented }
///
/// #[derive(Command)]
/// struct Increment;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the counter is full")]
/// struct Full;
///
/// #[derive(Default, serde::Serialize, serde::Deserialize, Aggregate)]
/// #[aggregate(command = Increment, event = CounterEvent, error = Full, snapshot_version = 2)]
/// struct Counter { value: u32 }
///
/// impl Counter {
///     async fn handle(&self, _: &Increment, _: &()) -> Result<Vec<CounterEvent>, Full> {
///         if self.value == u32::MAX { Err(Full) } else { Ok(vec![CounterEvent::Incremented]) }
///     }
///     fn apply(&mut self, event: &CounterEvent) {
///         match event { CounterEvent::Incremented => self.value += 1 }
///     }
/// }
///
/// assert_eq!(Counter::TYPE, "counter");
/// assert_eq!(Counter::SNAPSHOT_VERSION, 2);
/// ```
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    aggregate::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::Projection` for a read-model type.
///
/// `#[projection(event = E)]` is required; optional: `error = Err` (default
/// `std::convert::Infallible`), `name = "..."` (default: the Rust name in snake_case),
/// `version = N` (default 1; bump it to rebuild the view), `events(Variant, ...)` (the
/// variants of `E` it consumes, by Rust name; a `#[event(flatten)]` variant stands for
/// every event type of its inner enum; default: all; a name that is not a variant fails
/// to compile; `E` must derive `DomainEvent`), `crate = "..."`.
///
/// You write, in a plain `impl` block, `async fn handle(&self, event: &Envelope<E>) ->
/// Result<(), Err>` (update the view with one event) and `async fn reset(&self) ->
/// Result<(), Err>` (empty it, before a subscription rebuilds it from the first event);
/// the derived trait impl forwards to them. Forgetting one is a compile error naming
/// `write_inherent_async_fns_handle_and_reset_for_<Type>`.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use cqrs_core::{DomainEvent, Envelope, Projection};
///
/// #[derive(DomainEvent)]
/// #[event(prefix = "account.", rename_all = "snake_case")]
/// enum AccountEvent { Opened, Deposited { amount: u64 } }
///
/// #[derive(Default, Projection)]
/// #[projection(event = AccountEvent, version = 2, events(Deposited))]
/// struct TotalDeposits(AtomicU64);
///
/// impl TotalDeposits {
///     async fn reset(&self) -> Result<(), std::convert::Infallible> {
///         Ok(())
///     }
///
///     async fn handle(&self, e: &Envelope<AccountEvent>) -> Result<(), std::convert::Infallible> {
///         if let AccountEvent::Deposited { amount } = e.data {
///             self.0.fetch_add(amount, Ordering::Relaxed);
///         }
///         Ok(())
///     }
/// }
///
/// assert_eq!(TotalDeposits::NAME, "total_deposits");
/// assert_eq!(TotalDeposits::VERSION, 2);
/// assert_eq!(TotalDeposits::event_types(), ["account.deposited"]);
/// ```
#[proc_macro_derive(Projection, attributes(projection))]
pub fn derive_projection(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    consumer::derive(&input, consumer::Kind::Projection)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::ProcessManager` for an event handler that sends commands.
///
/// `#[process_manager(event = E)]` is required; optional: `error = Err` (default
/// `std::convert::Infallible`), `name = "..."` (the key of its checkpoint; default: the
/// Rust name in snake_case), `events(Variant, ...)` (the variants of `E` it reacts to, as
/// for `Projection`, flattened variants included), `crate = "..."`. There is no
/// `version`: a process manager keeps no view to rebuild.
///
/// You write `async fn handle(&self, event: &Envelope<E>) -> Result<(), Err>` in a plain
/// `impl` block; the derived trait impl forwards to it. Forgetting it is a compile error
/// naming `write_inherent_async_fn_handle_for_<Type>`. Send commands from it with
/// `Engine::execute_caused_by`, so that a redelivered event does not act twice.
///
/// ```
/// use std::sync::Mutex;
/// use cqrs_core::{DomainEvent, Envelope, ProcessManager};
///
/// #[derive(DomainEvent)]
/// #[event(prefix = "order.", rename_all = "snake_case")]
/// enum OrderEvent { Placed { dish: String }, Confirmed { dish: String }, Cancelled }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the kitchen is closed")]
/// struct KitchenClosed;
///
/// /// Stands in for an `Engine` of the kitchen aggregate.
/// #[derive(Default, ProcessManager)]
/// #[process_manager(event = OrderEvent, error = KitchenClosed, events(Confirmed))]
/// struct SendToKitchen {
///     sent: Mutex<Vec<String>>,
/// }
///
/// impl SendToKitchen {
///     async fn handle(&self, event: &Envelope<OrderEvent>) -> Result<(), KitchenClosed> {
///         if let OrderEvent::Confirmed { dish } = &event.data {
///             self.sent.lock().map_err(|_| KitchenClosed)?.push(dish.clone());
///         }
///         Ok(())
///     }
/// }
///
/// assert_eq!(SendToKitchen::NAME, "send_to_kitchen");
/// assert_eq!(SendToKitchen::event_types(), ["order.confirmed"]);
/// ```
#[proc_macro_derive(ProcessManager, attributes(process_manager))]
pub fn derive_process_manager(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    consumer::derive(&input, consumer::Kind::ProcessManager)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
