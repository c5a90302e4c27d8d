//! Code generation for `#[derive(Aggregate)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;

use super::ast::Input;
use super::valid::Checked;
use crate::{attr, forward};

pub fn expand(derive_input: &DeriveInput, input: &Input<'_>, checked: &Checked<'_>) -> TokenStream {
    let krate = attr::crate_path(input.krate.as_ref());
    let ident = input.ident;
    let (command, event, error, name) =
        (checked.command, checked.event, checked.error, &checked.name);
    let services = input
        .services
        .as_ref()
        .map_or_else(|| quote!(()), |t| quote!(#t));
    let snapshot_version = input.snapshot_version.map_or(1, |(v, _)| v);
    let (impl_generics, ty_generics, where_clause) = derive_input.generics.split_for_impl();
    let span = ident.span();
    let handle_call = quote_spanned!(span=> Self::handle(self, command, services));
    let apply_call = quote_spanned!(span=> Self::apply(self, event));
    let trait_impl = quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Aggregate for #ident #ty_generics #where_clause {
            const TYPE: &'static str = #name;
            const SNAPSHOT_VERSION: u32 = #snapshot_version;
            type Command = #command;
            type Event = #event;
            type Error = #error;
            type Services = #services;

            // Forwards to the inherent `async fn handle(&self, &Command, &Services)`.
            fn handle(
                &self,
                command: &Self::Command,
                services: &Self::Services,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<::std::vec::Vec<Self::Event>, Self::Error>,
            > + ::core::marker::Send {
                #handle_call
            }

            // Forwards to the inherent `fn apply(&mut self, &Event)`.
            fn apply(&mut self, event: &Self::Event) {
                #apply_call
            }
        }
    };
    forward::guarded(
        derive_input,
        &quote!(#krate::Aggregate),
        "write_inherent_fns_handle_and_apply_for",
        &["handle", "apply"],
        trait_impl,
    )
}
