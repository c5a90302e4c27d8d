//! `#[derive(Aggregate)]`: parse, validate, expand.
//!
//! The derive writes the `Aggregate` impl (constants and associated types) and forwards
//! `handle` and `apply` to inherent methods of the same names, which the user writes in a
//! plain `impl` block.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput, LitStr, Path, Type};

use crate::attr::{self, Errors};
use crate::case::Case;
use crate::forward;

const KEYS: &str = "`command`, `event`, `error`, `services`, `name`, `snapshot_version`, `crate`";
const USAGE: &str = "#[aggregate(command = MyCommand, event = MyEvent, error = MyError)]";

#[derive(Default)]
struct Attrs {
    krate: Option<Path>,
    name: Option<LitStr>,
    command: Option<Type>,
    event: Option<Type>,
    error: Option<Type>,
    services: Option<Type>,
    snapshot_version: Option<(u32, Span)>,
}

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    if let Data::Union(u) = &input.data {
        return Err(syn::Error::new(
            u.union_token.span,
            "#[derive(Aggregate)] supports a struct or an enum, not a union",
        ));
    }
    // ---- parse
    let mut errors = Errors::default();
    let mut a = Attrs::default();
    let mut seen_attr = false;
    for at in input
        .attrs
        .iter()
        .filter(|x| x.path().is_ident("aggregate"))
    {
        seen_attr = true;
        errors.take(at.parse_nested_meta(|meta| {
            let m = &meta;
            if m.path.is_ident("crate") {
                attr::set_once(&mut a.krate, attr::parse_crate(m)?, m)
            } else if m.path.is_ident("name") {
                attr::set_once(&mut a.name, attr::parse_str(m)?, m)
            } else if m.path.is_ident("command") {
                attr::set_once(&mut a.command, attr::parse_type(m)?, m)
            } else if m.path.is_ident("event") {
                attr::set_once(&mut a.event, attr::parse_type(m)?, m)
            } else if m.path.is_ident("error") {
                attr::set_once(&mut a.error, attr::parse_type(m)?, m)
            } else if m.path.is_ident("services") {
                attr::set_once(&mut a.services, attr::parse_type(m)?, m)
            } else if m.path.is_ident("snapshot_version") {
                attr::set_once(&mut a.snapshot_version, attr::parse_version(m)?, m)
            } else {
                Err(attr::unknown_key(m, "#[aggregate(...)]", KEYS))
            }
        }));
    }
    errors.finish()?;

    // ---- validate
    let mut errors = Errors::default();
    let ident = &input.ident;
    let missing: Vec<&str> = [
        ("command", a.command.is_none()),
        ("event", a.event.is_none()),
        ("error", a.error.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(k, _)| *k)
    .collect();
    if !missing.is_empty() {
        let what = if seen_attr {
            format!(
                "#[aggregate(...)] is missing {}: write {USAGE}",
                missing
                    .iter()
                    .map(|k| format!("`{k} = ...`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("#[derive(Aggregate)] needs its types: add {USAGE} to `{ident}`")
        };
        errors.push(syn::Error::new(ident.span(), what));
    }
    let (name, name_span) = match &a.name {
        Some(lit) => (lit.value(), lit.span()),
        None => (Case::Snake.apply(&ident.to_string()), ident.span()),
    };
    errors.take(attr::check_stored_name(
        "aggregate type name",
        &name,
        name_span,
    ));
    errors.finish()?;

    // ---- expand
    let krate = attr::crate_path(a.krate.as_ref());
    let (command, event, error) = (&a.command, &a.event, &a.error);
    let services = a.services.map_or_else(|| quote!(()), |t| quote!(#t));
    let snapshot_version = a.snapshot_version.map_or(1, |(v, _)| v);
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
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
    Ok(forward::guarded(
        input,
        &quote!(#krate::Aggregate),
        "write_inherent_fns_handle_and_apply_for",
        &["handle", "apply"],
        trait_impl,
    ))
}
