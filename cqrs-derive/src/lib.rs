//! Derive macros for `cqrs-core`.
//!
//! Use them through `cqrs-core`, which re-exports them behind its default `derive` feature.

mod aggregate;
mod attr;
mod case;
mod command;
mod event;
mod projection;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `cqrs_core::DomainEvent`.
#[proc_macro_derive(DomainEvent, attributes(event, serde))]
pub fn derive_domain_event(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    event::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::Command`.
#[proc_macro_derive(Command, attributes(command))]
pub fn derive_command(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    command::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::Aggregate`.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    aggregate::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Derives `cqrs_core::Projection`.
#[proc_macro_derive(Projection, attributes(projection))]
pub fn derive_projection(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    projection::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
