//! `#[derive(Aggregate)]`: parse, validate, expand.
//!
//! The derive writes the `Aggregate` impl (constants and associated types) and forwards
//! `handle` and `apply` to inherent methods of the same names, which the user writes in a
//! plain `impl` block.

mod ast;
mod expand;
mod valid;

use proc_macro2::TokenStream;
use syn::DeriveInput;

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let parsed = ast::parse(input)?;
    let checked = valid::validate(&parsed)?;
    Ok(expand::expand(input, &parsed, &checked))
}
