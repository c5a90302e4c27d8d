//! Code generation for `#[derive(DomainEvent)]`.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Field, Meta, Token};

use super::ast::{self, EventType, Flatten, Input, Member, Shape};
use crate::attr;

pub fn expand(input: &Input<'_>) -> syn::Result<TokenStream> {
    let krate = attr::crate_path(input.krate.as_ref());
    let krate_str = krate.to_string().replace(' ', "");
    let ident = input.ident;
    let domain_event = quote!(#krate::DomainEvent);

    let mut type_arms = Vec::new();
    let mut version_arms = Vec::new();
    let mut encode_arms = Vec::new();
    let mut decode_arms = Vec::new();
    let mut decode_flattened = Vec::new();
    let mut variant_arms = Vec::new();
    for member in &input.members {
        match member {
            Member::Type(t) => {
                let (name, version) = (&t.name, t.version);
                let pat = pattern(input, t);
                type_arms.push(quote!(#pat => #name));
                version_arms.push(quote!(#pat => #version));
                let encode = encode_body(t, &krate, &krate_str)?;
                encode_arms.push(quote!(#pat => { #encode }));
                let decode = decode_body(input, t, &krate, &krate_str)?;
                decode_arms.push(quote!(#name => { #decode }));
                let rust = t.ident.to_string();
                let info = info(t, &krate);
                variant_arms.push(quote!(#rust => &[#info]));
            }
            Member::Flatten(f) => {
                let (v, inner) = flattened(f)?;
                // Spanned at the inner type, so that a type which is not a `DomainEvent`
                // gets one error, there.
                let domain_event = respan(&domain_event, inner.span());
                let pat = quote!(Self::#v(__cqrs_inner));
                let sp = inner.span();
                type_arms
                    .push(quote_spanned!(sp=> #pat => #domain_event::event_type(__cqrs_inner)));
                version_arms
                    .push(quote_spanned!(sp=> #pat => #domain_event::event_version(__cqrs_inner)));
                encode_arms.push(quote_spanned!(sp=> #pat => #domain_event::encode(__cqrs_inner),));
                // Own names are matched first; a name that two variants share does not
                // compile (see `clash_check`), so the order cannot change the outcome.
                decode_flattened.push(quote_spanned! {sp=>
                    if <#inner as #domain_event>::version_of(event_type).is_some() {
                        ::core::result::Result::map(
                            <#inner as #domain_event>::decode(event_type, data),
                            Self::#v,
                        )
                    } else
                });
                let rust = v.to_string();
                variant_arms
                    .push(quote_spanned!(sp=> #rust => <#inner as #domain_event>::EVENT_TYPES));
            }
        }
    }
    let (event_types, upcasters, check) = if input.flattened().next().is_none() {
        let infos = input.types().map(|t| info(t, &krate));
        let upcasters = input.types().flat_map(|t| upcasters(t, &krate));
        (quote!(&[#(#infos),*]), quote!(&[#(#upcasters),*]), quote!())
    } else {
        let (event_types, upcasters) = concatenated(input, &krate)?;
        (event_types, upcasters, clash_check(input, &krate)?)
    };

    let personal_fields = personal_fields(input, &krate)?;

    let hidden = if input.is_enum {
        quote! {
            #[automatically_derived]
            impl #ident {
                /// The event types of a variant, by its Rust name: one, or all of a
                /// flattened enum's (used by `#[derive(Projection)]`).
                #[doc(hidden)]
                #[allow(dead_code)]
                pub fn __cqrs_event_types_of_variant(
                    variant: &str,
                ) -> &'static [#krate::EventTypeInfo] {
                    match variant {
                        #(#variant_arms,)*
                        _ => &[],
                    }
                }
            }
        }
    } else {
        quote!()
    };

    Ok(quote! {
        #[automatically_derived]
        impl #domain_event for #ident {
            const EVENT_TYPES: &'static [#krate::EventTypeInfo] = #event_types;
            const UPCASTERS: &'static [#krate::Upcaster] = #upcasters;

            fn event_type(&self) -> &'static str {
                match self {
                    #(#type_arms,)*
                }
            }

            fn event_version(&self) -> u32 {
                match self {
                    #(#version_arms,)*
                }
            }

            fn encode(
                &self,
            ) -> ::core::result::Result<#krate::__private::serde_json::Value, #krate::codec::JsonError> {
                match self {
                    #(#encode_arms)*
                }
            }

            fn decode(
                event_type: &str,
                data: &#krate::__private::serde_json::Value,
            ) -> ::core::result::Result<Self, #krate::PayloadError> {
                let _ = data;
                match event_type {
                    #(#decode_arms)*
                    _ => #(#decode_flattened)* {
                        ::core::result::Result::Err(#krate::PayloadError::UnknownType)
                    }
                }
            }

            #personal_fields
        }

        #hidden
        #check
    })
}

/// `DomainEvent::personal_fields`: one constant slice per event type with personal
/// fields, a `fn` per placeholder, and the flattened types' own answer for their names.
/// Nothing (the trait's default, no fields) when no type has any.
fn personal_fields(input: &Input<'_>, krate: &TokenStream) -> syn::Result<TokenStream> {
    let has_own = input.types().any(|t| !t.personal.is_empty());
    if !has_own && input.flattened().next().is_none() {
        return Ok(quote!());
    }
    let field_ty = quote!(#krate::personal::PersonalField);
    let value = quote!(#krate::__private::serde_json::Value);
    let domain_event = quote!(#krate::DomainEvent);
    let mut items = Vec::new();
    let mut arms = Vec::new();
    for (ti, t) in input.types().enumerate() {
        if t.personal.is_empty() {
            continue;
        }
        let mut entries = Vec::new();
        for (pi, p) in t.personal.iter().enumerate() {
            // Validated: the subject names a field of this type.
            let Some(subject) = t.field_named(&p.subject) else {
                continue;
            };
            let placeholder = match &p.forgotten {
                Some(expr) => quote_spanned!(expr.span()=> #krate::codec::to_json(&(#expr))),
                None => {
                    // Spanned at the field's type: a type without `Default` is an error
                    // there.
                    let ty = &p.field.ty;
                    quote_spanned! {ty.span()=>
                        #krate::codec::to_json(&<#ty as ::core::default::Default>::default())
                    }
                }
            };
            let forgotten = format_ident!("__cqrs_forgotten_{}_{}", ti, pi);
            items.push(quote! {
                fn #forgotten() -> #value {
                    ::core::result::Result::unwrap_or(#placeholder, #value::Null)
                }
            });
            let (field, subject) = (ast::json_name(p.field), ast::json_name(subject));
            entries.push(
                quote!(#field_ty { field: #field, subject: #subject, forgotten: #forgotten }),
            );
        }
        let slice = format_ident!("__CQRS_PERSONAL_{}", ti);
        items.push(quote!(const #slice: &[#field_ty] = &[#(#entries),*];));
        let name = &t.name;
        arms.push(quote!(#name => return #slice,));
    }
    let mut flattened_arms = Vec::new();
    for f in input.flattened() {
        let (_, inner) = flattened(f)?;
        let domain_event = respan(&domain_event, inner.span());
        flattened_arms.push(quote_spanned! {inner.span()=>
            if <#inner as #domain_event>::version_of(event_type).is_some() {
                return <#inner as #domain_event>::personal_fields(event_type);
            }
        });
    }
    let own = if arms.is_empty() {
        quote!()
    } else {
        quote! {
            match event_type {
                #(#arms)*
                _ => {}
            }
        }
    };
    Ok(quote! {
        fn personal_fields(event_type: &str) -> &'static [#field_ty] {
            #(#items)*
            #own
            #(#flattened_arms)*
            &[]
        }
    })
}

/// `EventTypeInfo { name, version }` of a type declared here.
fn info(t: &EventType<'_>, krate: &TokenStream) -> TokenStream {
    let (name, version) = (&t.name, t.version);
    quote!(#krate::EventTypeInfo { name: #name, version: #version })
}

/// The `Upcaster`s of a type declared here.
fn upcasters<'a>(
    t: &'a EventType<'_>,
    krate: &'a TokenStream,
) -> impl Iterator<Item = TokenStream> + 'a {
    let name = &t.name;
    t.upcasts.iter().map(move |u| {
        let (from, with) = (u.from, &u.with);
        quote_spanned!(with.span()=> #krate::Upcaster::new(#name, #from, #with))
    })
}

/// `tokens` with every span set to `span` (interpolated tokens keep theirs in
/// `quote_spanned!`).
fn respan(tokens: &TokenStream, span: proc_macro2::Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(&g.stream(), span));
                group.set_span(span);
                return proc_macro2::TokenTree::Group(group);
            }
            tt.set_span(span);
            tt
        })
        .collect()
}

/// The variant and the inner type of a flattened variant (validated: a newtype).
fn flattened<'a>(f: &'a Flatten<'_>) -> syn::Result<(&'a syn::Ident, &'a syn::Type)> {
    match f.field() {
        Some(field) => Ok((f.ident, &field.ty)),
        None => Err(syn::Error::new(f.span, "flatten needs a newtype variant")),
    }
}

/// One slice per variant: its own event type, or the flattened enum's constant. A type
/// declared here contributes `&[info]`; its length (1) and the flattened constants'
/// `.len()` size the array, all evaluated at compile time.
fn concatenated(input: &Input<'_>, krate: &TokenStream) -> syn::Result<(TokenStream, TokenStream)> {
    let support = quote!(#krate::__private::flatten);
    let domain_event = quote!(#krate::DomainEvent);
    let mut type_parts = Vec::new();
    let mut type_lens = Vec::new();
    let mut up_parts = Vec::new();
    let mut up_lens = Vec::new();
    for member in &input.members {
        match member {
            Member::Type(t) => {
                let info = info(t, krate);
                type_parts.push(quote!(&[#info]));
                type_lens.push(quote!(1));
                let ups: Vec<_> = upcasters(t, krate).collect();
                if !ups.is_empty() {
                    let n = ups.len();
                    up_parts.push(quote!(&[#(#ups),*]));
                    up_lens.push(quote!(#n));
                }
            }
            Member::Flatten(f) => {
                let (_, inner) = flattened(f)?;
                let domain_event = respan(&domain_event, inner.span());
                let sp = inner.span();
                let inner = quote_spanned!(sp=> <#inner as #domain_event>);
                type_parts.push(quote_spanned!(sp=> #inner::EVENT_TYPES));
                type_lens.push(quote_spanned!(sp=> #inner::EVENT_TYPES.len()));
                up_parts.push(quote_spanned!(sp=> #inner::UPCASTERS));
                up_lens.push(quote_spanned!(sp=> #inner::UPCASTERS.len()));
            }
        }
    }
    Ok((
        quote!(&#support::concat_event_types::<{ 0 #(+ #type_lens)* }>(&[#(#type_parts),*])),
        quote!(&#support::concat_upcasters::<{ 0 #(+ #up_lens)* }>(&[#(#up_parts),*])),
    ))
}

/// A `const` that fails to compile when two variants produce the same event type name,
/// with a message naming it and both variants. Names declared here were checked by
/// `valid`; a flattened enum's names are only known as constants, hence a `const` panic.
fn clash_check(input: &Input<'_>, krate: &TokenStream) -> syn::Result<TokenStream> {
    let support = quote!(#krate::__private::flatten);
    let domain_event = quote!(#krate::DomainEvent);
    let ident = input.ident;
    let mut groups = Vec::new();
    for member in &input.members {
        let (label, types) = match member {
            Member::Type(t) => {
                let info = info(t, krate);
                (format!("variant `{}`", t.ident), quote!(&[#info]))
            }
            Member::Flatten(f) => {
                let (v, inner) = flattened(f)?;
                let inner_str = quote!(#inner).to_string().replace(' ', "");
                let domain_event = respan(&domain_event, inner.span());
                (
                    format!("variant `{v}` (flattened `{inner_str}`)"),
                    quote_spanned!(inner.span()=> <#inner as #domain_event>::EVENT_TYPES),
                )
            }
        };
        groups.push(quote!(#support::Group { label: #label, types: #types }));
    }
    let before = "duplicate event type name \"";
    let middle = format!("\" in `{ident}`: ");
    let after = "; each stored name must decode to exactly one variant: rename the event \
                 type in one of them with #[event(name = \"...\")]";
    let panic = quote_spanned!(ident.span()=> ::core::panic!("{}", __CQRS_MESSAGE.as_str()));
    Ok(quote! {
        const _: () = {
            const __CQRS_CLASH: #support::Clash = #support::clash(&[#(#groups),*]);
            const __CQRS_PARTS: &[&str] = &[
                #before,
                __CQRS_CLASH.name,
                #middle,
                __CQRS_CLASH.first,
                " and ",
                __CQRS_CLASH.second,
                " both have it",
                #after,
            ];
            const __CQRS_MESSAGE: #support::Message<{ #support::message_len(__CQRS_PARTS) }> =
                #support::Message::new(__CQRS_PARTS);
            if __CQRS_CLASH.found {
                #panic
            }
        };
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
                        fn #adapter<__S: #krate::__private::serde::Serializer>(
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
    let serde_crate = format!("{krate_str}::__private::serde");
    let (fields, newtype): (Vec<&Field>, bool) = match &t.shape {
        Shape::Unit | Shape::Tuple(_) => {
            return Ok(
                quote!(::core::result::Result::Ok(#krate::__private::serde_json::Value::Null)),
            )
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
        #[derive(#krate::__private::serde::Serialize)]
        #[serde(crate = #serde_crate)]
        #def
        #krate::codec::to_json(&#init)
    })
}

fn decode_body(
    input: &Input<'_>,
    t: &EventType<'_>,
    krate: &TokenStream,
    krate_str: &str,
) -> syn::Result<TokenStream> {
    let serde_crate = format!("{krate_str}::__private::serde");
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
        #[derive(#krate::__private::serde::Deserialize)]
        #[serde(crate = #serde_crate)]
        #def
        let __cqrs_data: __CqrsData =
            <__CqrsData as #krate::__private::serde::Deserialize>::deserialize(data)?;
        ::core::result::Result::Ok(#value)
    })
}
