//! Code generation for `#[derive(Projection)]`, `#[derive(ProcessManager)]` and
//! `#[derive(PgProjection)]`: the `Listener` impl they share, and the kind's own.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;

use super::ast::{Input, Kind};
use super::valid::stored_name;
use crate::{attr, forward};

/// Where the generated code finds the traits: `cqrs_core` for the core kinds (or the
/// `crate = ...` path), and `cqrs_postgres` (with `cqrs_core` through its hidden
/// `__private` module, so the application needs no path of its own) for `PgProjection`.
struct Paths {
    core: TokenStream,
    kind_trait: TokenStream,
    /// The `&mut PgConnection` parameter's type, for `PgProjection`.
    connection: Option<TokenStream>,
}

impl Paths {
    fn of(input: &Input<'_>) -> Self {
        match input.kind {
            Kind::Projection | Kind::ProcessManager => {
                let core = attr::crate_path(input.krate.as_ref());
                let name = syn::Ident::new(input.kind.trait_name(), proc_macro2::Span::call_site());
                Self {
                    kind_trait: quote!(#core::#name),
                    core,
                    connection: None,
                }
            }
            Kind::PgProjection => {
                let pg = input
                    .krate
                    .as_ref()
                    .map_or_else(|| quote!(::cqrs_postgres), |p| quote!(#p));
                Self {
                    core: quote!(#pg::__private::cqrs_core),
                    kind_trait: quote!(#pg::PgProjection),
                    connection: Some(quote!(#pg::__private::PgConnection)),
                }
            }
        }
    }
}

pub fn expand(derive_input: &DeriveInput, input: &Input<'_>) -> TokenStream {
    let paths = Paths::of(input);
    let core = &paths.core;
    let kind_trait = &paths.kind_trait;
    let ident = input.ident;
    let event = &input.event;
    let error = input
        .error
        .as_ref()
        .map_or_else(|| quote!(::core::convert::Infallible), |t| quote!(#t));
    let (name, _) = stored_name(input);
    let (impl_generics, ty_generics, where_clause) = derive_input.generics.split_for_impl();
    let event_types = event_types(input);
    let stream_types = stream_types(input);

    let span = ident.span();
    // The transaction parameter, for the kind whose handlers take one.
    let (tx_param, tx_arg) = match &paths.connection {
        Some(conn) => (quote!(tx: &mut #conn,), quote!(tx,)),
        None => (quote!(), quote!()),
    };
    let future = quote! {
        impl ::core::future::Future<
            Output = ::core::result::Result<(), Self::Error>,
        > + ::core::marker::Send
    };
    let handle_call = quote_spanned!(span=> Self::handle(self, #tx_arg event));
    let handle = quote! {
        // Forwards to the inherent `async fn handle`.
        fn handle(
            &self,
            #tx_param
            event: &#core::Envelope<Self::Event>,
        ) -> #future {
            #handle_call
        }
    };
    let (extra, guard, methods): (_, _, &[&str]) = if input.kind.has_version() {
        let version = input.version.map_or(1, |(v, _)| v);
        let reset_call = quote_spanned!(span=> Self::reset(self, #tx_arg));
        let view = quote! {
            const VERSION: u32 = #version;

            // Forwards to the inherent `async fn reset`.
            fn reset(&self, #tx_param) -> #future {
                #reset_call
            }
        };
        match input.on_delete {
            None => (
                view,
                "write_inherent_async_fns_handle_and_reset_for",
                &["handle", "reset"][..],
            ),
            Some(_) => {
                let deleted_call =
                    quote_spanned!(span=> Self::stream_deleted(self, #tx_arg stream));
                (
                    quote! {
                        #view

                        // Forwards to the inherent `async fn stream_deleted`.
                        fn stream_deleted(
                            &self,
                            #tx_param
                            stream: &#core::StreamId,
                        ) -> #future {
                            #deleted_call
                        }
                    },
                    "write_inherent_async_fns_handle_reset_and_stream_deleted_for",
                    &["handle", "reset", "stream_deleted"][..],
                )
            }
        }
    } else {
        (quote!(), "write_inherent_async_fn_handle_for", &["handle"])
    };
    let impls = quote! {
        #[automatically_derived]
        impl #impl_generics #core::Listener for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            type Event = #event;
            type Error = #error;

            #event_types
            #stream_types
        }

        #[automatically_derived]
        impl #impl_generics #kind_trait for #ident #ty_generics #where_clause {
            #extra
            #handle
        }
    };
    forward::guarded(derive_input, kind_trait, guard, methods, impls)
}

/// `fn event_types()` for `events(...)`, or nothing (the trait's default: all).
fn event_types(input: &Input<'_>) -> TokenStream {
    let Some(list) = &input.events else {
        return quote!();
    };
    let event = &input.event;
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

/// `fn stream_types()` for `streams(...)`, or nothing (the trait's default: all).
fn stream_types(input: &Input<'_>) -> TokenStream {
    let Some(list) = &input.streams else {
        return quote!();
    };
    quote! {
        fn stream_types() -> ::std::vec::Vec<&'static str> {
            ::std::vec![#(#list),*]
        }
    }
}
