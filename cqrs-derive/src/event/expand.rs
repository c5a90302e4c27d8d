//! Code generation for `#[derive(DomainEvent)]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Field, Meta, Token};

use super::ast::{EventType, Input, Shape};
use crate::attr;

pub fn expand(input: &Input<'_>) -> syn::Result<TokenStream> {
    let krate = attr::crate_path(input.krate.as_ref());
    let krate_str = krate.to_string().replace(' ', "");
    let ident = input.ident;

    let infos = input.types.iter().map(|t| {
        let (name, version) = (&t.name, t.version);
        quote!(#krate::EventTypeInfo { name: #name, version: #version })
    });
    let upcasters = input.types.iter().flat_map(|t| {
        let name = &t.name;
        let krate = &krate;
        t.upcasts.iter().map(move |u| {
            let (from, with) = (u.from, &u.with);
            quote_spanned!(with.span()=> #krate::codec::Upcaster::new(#name, #from, #with))
        })
    });

    let mut type_arms = Vec::new();
    let mut encode_arms = Vec::new();
    let mut decode_arms = Vec::new();
    let mut variant_arms = Vec::new();
    for t in &input.types {
        let name = &t.name;
        let pat = pattern(input, t);
        type_arms.push(quote!(#pat => #name));
        let encode = encode_body(t, &krate, &krate_str)?;
        encode_arms.push(quote!(#pat => { #encode }));
        let decode = decode_body(input, t, &krate, &krate_str)?;
        decode_arms.push(quote!(#name => { #decode }));
        let rust = t.ident.to_string();
        variant_arms.push(quote!(#rust => ::core::option::Option::Some(#name)));
    }

    let hidden = if input.is_enum {
        quote! {
            #[automatically_derived]
            impl #ident {
                /// The stored event type name of a variant, by its Rust name (used by
                /// `#[derive(Projection)]`).
                #[doc(hidden)]
                #[allow(dead_code)]
                pub fn __cqrs_event_type_of_variant(
                    variant: &str,
                ) -> ::core::option::Option<&'static str> {
                    match variant {
                        #(#variant_arms,)*
                        _ => ::core::option::Option::None,
                    }
                }
            }
        }
    } else {
        quote!()
    };

    Ok(quote! {
        #[automatically_derived]
        impl #krate::DomainEvent for #ident {
            const EVENT_TYPES: &'static [#krate::EventTypeInfo] = &[#(#infos),*];
            const UPCASTERS: &'static [#krate::codec::Upcaster] = &[#(#upcasters),*];

            fn event_type(&self) -> &'static str {
                match self {
                    #(#type_arms,)*
                }
            }

            fn encode(
                &self,
            ) -> ::core::result::Result<#krate::serde_json::Value, #krate::serde_json::Error> {
                match self {
                    #(#encode_arms)*
                }
            }

            fn decode(
                event_type: &str,
                data: &#krate::serde_json::Value,
            ) -> ::core::result::Result<Self, #krate::PayloadError> {
                let _ = data;
                match event_type {
                    #(#decode_arms)*
                    _ => ::core::result::Result::Err(#krate::PayloadError::UnknownType),
                }
            }
        }

        #hidden
    })
}

/// The path of the variant (`Self::Opened`) or of the struct (`Self`).
fn path(input: &Input<'_>, t: &EventType<'_>) -> TokenStream {
    if input.is_enum {
        let v = t.ident;
        quote!(Self::#v)
    } else {
        quote!(Self)
    }
}

/// A pattern binding every field by reference.
fn pattern(input: &Input<'_>, t: &EventType<'_>) -> TokenStream {
    let path = path(input, t);
    match &t.shape {
        Shape::Unit => quote!(#path { .. }),
        Shape::Newtype(_) => quote!(#path(__cqrs_f0)),
        Shape::Named(fields) => {
            let names = fields.iter().map(|f| &f.ident);
            quote!(#path { #(#names),* })
        }
        Shape::Tuple(_) => quote!(#path { .. }),
    }
}

/// Which helper a serde attribute is copied to.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Ser,
    De,
}

/// The `#[serde(...)]` attributes of a field, adapted for one side of the helper.
///
/// The serialising helper holds `&T`, so functions named by `with`, `serialize_with`
/// and `skip_serializing_if` (which expect `&T`) get a small adapter that dereferences.
fn serde_attrs(
    field: &Field,
    index: usize,
    side: Side,
    adapters: &mut Vec<TokenStream>,
    krate: &TokenStream,
) -> syn::Result<Vec<TokenStream>> {
    let mut out = Vec::new();
    let ty = &field.ty;
    for a in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        let metas = a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)?;
        let mut kept = Vec::new();
        for meta in metas {
            let key = meta
                .path()
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let value = match &meta {
                Meta::NameValue(nv) => match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => Some(s.clone()),
                    _ => None,
                },
                _ => None,
            };
            match (side, key.as_str(), value) {
                (Side::De, "serialize_with" | "skip_serializing_if", _) => {}
                (Side::Ser, "deserialize_with", _) => {}
                (Side::Ser, "with" | "serialize_with", Some(lit)) => {
                    let target: syn::Path = if key == "with" {
                        let module: syn::Path = lit.parse()?;
                        syn::parse_quote!(#module::serialize)
                    } else {
                        lit.parse()?
                    };
                    let adapter = format_ident!("__cqrs_ser_{}", index);
                    adapters.push(quote! {
                        fn #adapter<__S: #krate::serde::Serializer>(
                            value: &&#ty,
                            serializer: __S,
                        ) -> ::core::result::Result<__S::Ok, __S::Error> {
                            #target(*value, serializer)
                        }
                    });
                    let name = adapter.to_string();
                    kept.push(quote!(serialize_with = #name));
                }
                (Side::Ser, "skip_serializing_if", Some(lit)) => {
                    let target: syn::Path = lit.parse()?;
                    let adapter = format_ident!("__cqrs_skip_{}", index);
                    adapters.push(quote! {
                        fn #adapter(value: &&#ty) -> bool {
                            #target(*value)
                        }
                    });
                    let name = adapter.to_string();
                    kept.push(quote!(skip_serializing_if = #name));
                }
                _ => kept.push(quote!(#meta)),
            }
        }
        if !kept.is_empty() {
            out.push(quote!(#[serde(#(#kept),*)]));
        }
    }
    Ok(out)
}

fn encode_body(
    t: &EventType<'_>,
    krate: &TokenStream,
    krate_str: &str,
) -> syn::Result<TokenStream> {
    let serde_crate = format!("{krate_str}::serde");
    let (fields, newtype): (Vec<&Field>, bool) = match &t.shape {
        Shape::Unit | Shape::Tuple(_) => {
            return Ok(quote!(::core::result::Result::Ok(#krate::serde_json::Value::Null)))
        }
        Shape::Newtype(f) => (vec![*f], true),
        Shape::Named(fs) => (fs.clone(), false),
    };
    let mut adapters = Vec::new();
    let mut decls = Vec::new();
    let mut inits = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let attrs = serde_attrs(f, i, Side::Ser, &mut adapters, krate)?;
        let ty = &f.ty;
        match &f.ident {
            Some(name) => {
                decls.push(quote!(#(#attrs)* #name: &'__cqrs_a #ty));
                inits.push(quote!(#name));
            }
            None => {
                decls.push(quote!(#(#attrs)* &'__cqrs_a #ty));
                inits.push(quote!(__cqrs_f0));
            }
        }
    }
    let (def, init) = if newtype {
        (
            quote!(#[serde(transparent)] struct __CqrsData<'__cqrs_a>(#(#decls),*);),
            quote!(__CqrsData(#(#inits),*)),
        )
    } else {
        (
            quote!(struct __CqrsData<'__cqrs_a> { #(#decls),* }),
            quote!(__CqrsData { #(#inits),* }),
        )
    };
    Ok(quote! {
        #(#adapters)*
        #[derive(#krate::serde::Serialize)]
        #[serde(crate = #serde_crate)]
        #def
        #krate::serde_json::to_value(&#init)
    })
}

fn decode_body(
    input: &Input<'_>,
    t: &EventType<'_>,
    krate: &TokenStream,
    krate_str: &str,
) -> syn::Result<TokenStream> {
    let serde_crate = format!("{krate_str}::serde");
    let path = path(input, t);
    let (fields, newtype): (Vec<&Field>, bool) = match &t.shape {
        Shape::Unit => return Ok(quote!(::core::result::Result::Ok(#path {}))),
        Shape::Tuple(_) => return Ok(quote!(::core::unreachable!())),
        Shape::Newtype(f) => (vec![*f], true),
        Shape::Named(fs) => (fs.clone(), false),
    };
    let mut adapters = Vec::new();
    let mut decls = Vec::new();
    let mut moves = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let attrs = serde_attrs(f, i, Side::De, &mut adapters, krate)?;
        let ty = &f.ty;
        match &f.ident {
            Some(name) => {
                decls.push(quote!(#(#attrs)* #name: #ty));
                moves.push(quote!(#name: __cqrs_data.#name));
            }
            None => {
                decls.push(quote!(#(#attrs)* #ty));
                moves.push(quote!(__cqrs_data.0));
            }
        }
    }
    let (def, value) = if newtype {
        (
            quote!(#[serde(transparent)] struct __CqrsData(#(#decls),*);),
            quote!(#path(#(#moves),*)),
        )
    } else {
        (
            quote!(struct __CqrsData { #(#decls),* }),
            quote!(#path { #(#moves),* }),
        )
    };
    Ok(quote! {
        #[derive(#krate::serde::Deserialize)]
        #[serde(crate = #serde_crate)]
        #def
        let __cqrs_data: __CqrsData =
            <__CqrsData as #krate::serde::Deserialize>::deserialize(data)?;
        ::core::result::Result::Ok(#value)
    })
}
