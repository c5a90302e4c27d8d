//! `#[derive(Projection)]`, `#[derive(ProcessManager)]` and `#[derive(PgProjection)]`:
//! parse, validate, expand.
//!
//! The three traits extend one base, `Listener` (a stable name, an event type, an error
//! type, the event and stream types consumed), with an async `handle`; so one derive
//! serves all three and writes both impls. A [`Kind`](ast::Kind) holds what differs: the
//! attribute, the projections' `version` and `reset`, and the transaction that
//! `PgProjection`'s handlers take.

mod ast;
mod expand;
mod valid;

pub use ast::Kind;

use proc_macro2::TokenStream;
use syn::DeriveInput;

pub fn derive(input: &DeriveInput, kind: Kind) -> syn::Result<TokenStream> {
    let parsed = ast::parse(input, kind)?;
    valid::validate(&parsed)?;
    Ok(expand::expand(input, &parsed))
}
