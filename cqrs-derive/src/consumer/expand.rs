//! Code generation for `#[derive(Projection)]` and `#[derive(ProcessManager)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::DeriveInput;

use super::ast::{Input, Kind};
use super::valid::stored_name;
use crate::{attr, forward};

pub fn expand(derive_input: &DeriveInput, input: &Input<'_>) -> TokenStream {
    let krate = attr::crate_path(input.krate.as_ref());
    let ident = input.ident;
    let event = &input.event;
    let error = input
        .error
        .as_ref()
        .map_or_else(|| quote!(::core::convert::Infallible), |t| quote!(#t));
    let (name, _) = stored_name(input);
    let (impl_generics, ty_generics, where_clause) = derive_input.generics.split_for_impl();
    let event_types = event_types(input);
    let span = ident.span();
    let handle_call = quote_spanned!(span=> Self::handle(self, event));
    let handle = quote! {
        // Forwards to the inherent `async fn handle(&self, &Envelope<Event>)`.
        fn handle(
            &self,
            event: &#krate::Envelope<Self::Event>,
        ) -> impl ::core::future::Future<
            Output = ::core::result::Result<(), Self::Error>,
        > + ::core::marker::Send {
            #handle_call
        }
    };
    let (trait_path, extra, guard, methods): (_, _, _, &[&str]) = match input.kind {
        Kind::Projection => {
            let version = input.version.map_or(1, |(v, _)| v);
            let reset_call = quote_spanned!(span=> Self::reset(self));
            (
                quote!(#krate::Projection),
                quote! {
                    const VERSION: u32 = #version;

                    // Forwards to the inherent `async fn reset(&self)`.
                    fn reset(
                        &self,
                    ) -> impl ::core::future::Future<
                        Output = ::core::result::Result<(), Self::Error>,
                    > + ::core::marker::Send {
                        #reset_call
                    }
                },
                "write_inherent_async_fns_handle_and_reset_for",
                &["handle", "reset"],
            )
        }
        Kind::ProcessManager => (
            quote!(#krate::ProcessManager),
            quote!(),
            "write_inherent_async_fn_handle_for",
            &["handle"],
        ),
    };
    let trait_impl = quote! {
        #[automatically_derived]
        impl #impl_generics #trait_path for #ident #ty_generics #where_clause {
            const NAME: &'static str = #name;
            type Event = #event;
            type Error = #error;

            #event_types
            #handle
            #extra
        }
    };
    forward::guarded(derive_input, &trait_path, guard, methods, trait_impl)
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
