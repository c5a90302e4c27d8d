//! `#[derive(Projection)]` and `#[derive(ProcessManager)]`: parse, validate, expand.
//!
//! Both traits are consumers of a subscription with the same shape (a stable name, an
//! event type, an error type, the event types consumed, and an async `handle`), so one
//! derive serves both; a [`Kind`](ast::Kind) holds what differs: the attribute, the
//! projection's `version` and `reset`.

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
