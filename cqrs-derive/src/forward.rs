//! Trait impls that forward to the user's inherent methods, guarded against recursion.
//!
//! The `Aggregate` and `Projection` derives generate trait methods that call
//! `Self::handle(...)`, meaning the user's inherent method of that name. Without one,
//! that path would silently name the trait method itself (endless recursion); a second
//! trait with methods of the same names, implemented for the type, makes it an ambiguity
//! error instead, and the guard trait's name says what to write.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// `trait_impl` (an impl of `trait_path` for the input type) inside an anonymous const,
/// next to the guard trait `guard_name` with one method per name in `methods`.
pub fn guarded(
    input: &syn::DeriveInput,
    trait_path: &TokenStream,
    guard_name: &str,
    methods: &[&str],
    trait_impl: TokenStream,
) -> TokenStream {
    let ident = &input.ident;
    let guard = format_ident!("{}_{}", guard_name, ident);
    let fns = methods.iter().map(|m| {
        let m = format_ident!("{}", m);
        quote!(fn #m(&self) {})
    });
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        const _: () = {
            #[allow(unused_imports)]
            use #trait_path as _;
            #[allow(non_camel_case_types, dead_code)]
            trait #guard {
                #(#fns)*
            }
            impl #impl_generics #guard for #ident #ty_generics #where_clause {}

            #trait_impl
        };
    }
}
