//! Code generation for `#[derive(Command)]`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use super::ast::{Input, Target};
use crate::attr;

pub fn expand(input: &Input<'_>) -> TokenStream {
    let krate = attr::crate_path(input.krate.as_ref());
    let ident = input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let path = |t: &Target<'_>| {
        if input.is_enum {
            let v = t.ident;
            quote!(Self::#v)
        } else {
            quote!(Self)
        }
    };
    let name_arms = input.targets.iter().map(|t| {
        let (p, name) = (path(t), &t.name);
        quote!(#p { .. } => #name)
    });
    let any_id = input.targets.iter().any(|t| t.id.is_some());
    let id_fn = if any_id {
        let arms = input.targets.iter().map(|t| {
            let p = path(t);
            match &t.id {
                Some((member, span)) => {
                    quote_spanned! {*span=>
                        #p { #member: __cqrs_id, .. } => ::core::option::Option::Some(
                            ::std::string::ToString::to_string(__cqrs_id),
                        )
                    }
                }
                None => quote!(#p { .. } => ::core::option::Option::None),
            }
        });
        quote! {
            fn aggregate_id(&self) -> ::core::option::Option<::std::string::String> {
                match self {
                    #(#arms,)*
                }
            }
        }
    } else {
        quote!()
    };
    quote! {
        #[automatically_derived]
        impl #impl_generics #krate::Command for #ident #ty_generics #where_clause {
            fn command_name(&self) -> &'static str {
                match self {
                    #(#name_arms,)*
                }
            }

            #id_fn
        }
    }
}
