//! Attribute parsing shared by the derives.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::{LitInt, LitStr, Path};

/// The path to `cqrs_core` in generated code: `::cqrs_core` unless overridden with
/// `crate = "..."`.
pub fn crate_path(custom: Option<&Path>) -> TokenStream {
    match custom {
        Some(path) => quote!(#path),
        None => quote!(::cqrs_core),
    }
}

/// Stores a value parsed for `key`, refusing a second one.
pub fn set_once<T>(slot: &mut Option<T>, value: T, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if slot.is_some() {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        return Err(meta.error(format!("duplicate `{key}`: give it once")));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses `crate = "path"`.
pub fn parse_crate(meta: &ParseNestedMeta<'_>) -> syn::Result<Path> {
    let lit: LitStr = meta.value()?.parse()?;
    lit.parse::<Path>().map_err(|_| {
        syn::Error::new(
            lit.span(),
            "expected a path to cqrs_core, e.g. `crate = \"my_app::cqrs\"`",
        )
    })
}

/// Parses `key = "text"`.
pub fn parse_str(meta: &ParseNestedMeta<'_>) -> syn::Result<LitStr> {
    let key = key_of(meta);
    meta.value()?
        .parse::<LitStr>()
        .map_err(|e| syn::Error::new(e.span(), format!("expected a string: `{key} = \"...\"`")))
}

/// Parses `key = <integer >= 1>`, as for schema versions.
pub fn parse_version(meta: &ParseNestedMeta<'_>) -> syn::Result<(u32, Span)> {
    let key = key_of(meta);
    let lit: LitInt = meta
        .value()?
        .parse()
        .map_err(|e| syn::Error::new(e.span(), format!("expected an integer: `{key} = 2`")))?;
    let value: u32 = lit.base10_parse()?;
    if value == 0 {
        return Err(syn::Error::new(
            lit.span(),
            format!("`{key}` starts at 1; use `{key} = 1` (the default) or more"),
        ));
    }
    Ok((value, lit.span()))
}

/// Parses `key = Type`.
pub fn parse_type(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Type> {
    let key = key_of(meta);
    meta.value()?
        .parse::<syn::Type>()
        .map_err(|e| syn::Error::new(e.span(), format!("expected a type: `{key} = MyType`")))
}

/// The key of a nested meta item, for messages.
pub fn key_of(meta: &ParseNestedMeta<'_>) -> String {
    let path = &meta.path;
    quote!(#path).to_string().replace(' ', "")
}

/// The error for an unknown key.
pub fn unknown_key(meta: &ParseNestedMeta<'_>, attr: &str, known: &str) -> syn::Error {
    meta.error(format!(
        "unknown key `{}` in {attr}; expected one of: {known}",
        key_of(meta)
    ))
}

/// Checks a name that will be stored (an event type, a stream type, a projection name)
/// with the rules of `cqrs_core::ident`: not empty, at most 255 bytes, no NUL.
pub fn check_stored_name(what: &str, name: &str, span: Span) -> syn::Result<()> {
    if name.is_empty() {
        return Err(syn::Error::new(
            span,
            format!("the {what} must not be empty"),
        ));
    }
    if name.len() > 255 {
        return Err(syn::Error::new(
            span,
            format!("the {what} is {} bytes long; the limit is 255", name.len()),
        ));
    }
    if name.contains('\0') {
        return Err(syn::Error::new(
            span,
            format!("the {what} must not contain a NUL character"),
        ));
    }
    Ok(())
}

/// Accumulates errors so that one compile shows every mistake.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Keeps the error of a result, if any, and returns its value.
    pub fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }

    /// `Err` with every error pushed, or `Ok`.
    pub fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Refuses generic parameters, for derives that do not support them.
pub fn refuse_generics(generics: &syn::Generics, derive: &str) -> syn::Result<()> {
    if generics.params.is_empty() && generics.where_clause.is_none() {
        return Ok(());
    }
    let span = if generics.params.is_empty() {
        generics
            .where_clause
            .as_ref()
            .map(|w| w.where_token.span)
            .unwrap_or_else(Span::call_site)
    } else {
        syn::spanned::Spanned::span(&generics.params)
    };
    Err(syn::Error::new(
        span,
        format!(
            "#[derive({derive})] does not support generic parameters or where clauses: \
             events are stored by name, so declare a concrete type"
        ),
    ))
}
