//! `#[derive(Command)]`: parse, validate, expand.

mod ast;
mod expand;
mod valid;

use proc_macro2::TokenStream;
use syn::DeriveInput;

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    let input = ast::parse(input)?;
    valid::validate(&input)?;
    Ok(expand::expand(&input))
}
