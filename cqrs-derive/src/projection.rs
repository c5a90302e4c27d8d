//! `#[derive(Projection)]`: parse, validate, expand.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Data, DeriveInput, Ident, LitStr, Path, Type};

use crate::attr::{self, Errors};
use crate::case::Case;
use crate::forward;

const KEYS: &str = "`event`, `error`, `name`, `version`, `events(...)`, `crate`";
const USAGE: &str = "#[projection(event = MyEvent)]";

#[derive(Default)]
struct Attrs {
    krate: Option<Path>,
    name: Option<LitStr>,
    version: Option<(u32, Span)>,
    event: Option<Type>,
    error: Option<Type>,
    events: Option<Vec<Ident>>,
}

pub fn derive(input: &DeriveInput) -> syn::Result<TokenStream> {
    if let Data::Union(u) = &input.data {
        return Err(syn::Error::new(
            u.union_token.span,
            "#[derive(Projection)] supports a struct or an enum, not a union",
        ));
    }
    // ---- parse
    let mut errors = Errors::default();
    let mut a = Attrs::default();
    for at in input
        .attrs
        .iter()
        .filter(|x| x.path().is_ident("projection"))
    {
        errors.take(at.parse_nested_meta(|meta| {
            let m = &meta;
            if m.path.is_ident("crate") {
                attr::set_once(&mut a.krate, attr::parse_crate(m)?, m)
            } else if m.path.is_ident("name") {
                attr::set_once(&mut a.name, attr::parse_str(m)?, m)
            } else if m.path.is_ident("version") {
                attr::set_once(&mut a.version, attr::parse_version(m)?, m)
            } else if m.path.is_ident("event") {
                attr::set_once(&mut a.event, attr::parse_type(m)?, m)
            } else if m.path.is_ident("error") {
                attr::set_once(&mut a.error, attr::parse_type(m)?, m)
            } else if m.path.is_ident("events") {
                let mut list = Vec::new();
                m.parse_nested_meta(|v| match v.path.get_ident() {
                    Some(ident) if v.input.is_empty() || v.input.peek(syn::Token![,]) => {
                        list.push(ident.clone());
                        Ok(())
                    }
                    _ => Err(v.error(
                        "expected variant names of the event enum: `events(Opened, Deposited)`",
                    )),
                })?;
                if list.is_empty() {
                    return Err(m.error(
                        "an empty list would consume nothing: name variants, or remove \
                         `events(...)` to consume every event type",
                    ));
                }
                attr::set_once(&mut a.events, list, m)
            } else {
                Err(attr::unknown_key(m, "#[projection(...)]", KEYS))
            }
        }));
    }
    errors.finish()?;

    // ---- validate
    let mut errors = Errors::default();
    let ident = &input.ident;
    if a.event.is_none() {
        errors.push(syn::Error::new(
            ident.span(),
            format!(
                "#[derive(Projection)] needs the event type it reads: add {USAGE} to `{ident}`"
            ),
        ));
    }
    let (name, name_span) = match &a.name {
        Some(lit) => (lit.value(), lit.span()),
        None => (Case::Snake.apply(&ident.to_string()), ident.span()),
    };
    errors.take(attr::check_stored_name("projection name", &name, name_span));
    if let Some(list) = &a.events {
        for (i, v) in list.iter().enumerate() {
            if list[..i].contains(v) {
                errors.push(syn::Error::new(
                    v.span(),
                    format!("`{v}` is listed twice in `events(...)`: keep one"),
                ));
            }
        }
    }
    errors.finish()?;

    // ---- expand
    let krate = attr::crate_path(a.krate.as_ref());
    let event = &a.event;
    let error = a
        .error
        .map_or_else(|| quote!(::core::convert::Infallible), |t| quote!(#t));
    let version = a.version.map_or(1, |(v, _)| v);
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let event_types = match &a.events {
        None => quote!(),
        Some(list) => {
            // A pattern per variant: a name that is not a variant fails to compile here,
            // pointing at the name.
            let checks = list
                .iter()
                .map(|v| quote_spanned!(v.span()=> #event::#v { .. } => {}));
            let names = list.iter().map(|v| v.to_string());
            quote! {
                fn event_types() -> ::std::vec::Vec<&'static str> {
                    #[allow(unreachable_patterns)]
                    fn __cqrs_check(event: &#event) {
                        match event {
                            #(#checks)*
                            _ => {}
                        }
                    }
                    let _ = __cqrs_check;
                    // A flattened variant stands for every event type of its enum.
                    [#(#names),*]
                        .iter()
                        .flat_map(|v| <#event>::__cqrs_event_types_of_variant(v))
                        .map(|t| t.name)
                        .collect()
                }
            }
        }
    };
    let span = ident.span();
    let handle_call = quote_spanned!(span=> Self::handle(self, event));
    let reset_call = quote_spanned!(span=> Self::reset(self));
    let trait_impl = quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Projection for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            const VERSION: u32 = #version;
            type Event = #event;
            type Error = #error;

            #event_types

            // Forwards to the inherent `async fn handle(&self, &Envelope<Event>)`.
            fn handle(
                &self,
                event: &#krate::Envelope<Self::Event>,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), Self::Error>,
            > + ::core::marker::Send {
                #handle_call
            }

            // Forwards to the inherent `async fn reset(&self)`.
            fn reset(
                &self,
            ) -> impl ::core::future::Future<
                Output = ::core::result::Result<(), Self::Error>,
            > + ::core::marker::Send {
                #reset_call
            }
        }
    };
    Ok(forward::guarded(
        input,
        &quote!(#krate::Projection),
        "write_inherent_async_fns_handle_and_reset_for",
        &["handle", "reset"],
        trait_impl,
    ))
}
