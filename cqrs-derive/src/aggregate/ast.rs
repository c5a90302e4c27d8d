//! Parsing `#[aggregate(...)]`.

use proc_macro2::Span;
use syn::{Data, DeriveInput, Ident, LitStr, Path, Type};

use crate::attr::{self, Errors};

const KEYS: &str = "`command`, `event`, `error`, `services`, `name`, `snapshot_version`, `crate`";

/// A type deriving `Aggregate`.
pub struct Input<'a> {
    pub ident: &'a Ident,
    pub krate: Option<Path>,
    pub name: Option<LitStr>,
    pub command: Option<Type>,
    pub event: Option<Type>,
    pub error: Option<Type>,
    pub services: Option<Type>,
    pub snapshot_version: Option<(u32, Span)>,
    /// Whether `#[aggregate(...)]` appears at all, for the message when keys are missing.
    pub seen_attr: bool,
}

pub fn parse(input: &DeriveInput) -> syn::Result<Input<'_>> {
    if let Data::Union(u) = &input.data {
        return Err(syn::Error::new(
            u.union_token.span,
            "#[derive(Aggregate)] supports a struct or an enum, not a union",
        ));
    }
    let mut errors = Errors::default();
    let mut a = Input {
        ident: &input.ident,
        krate: None,
        name: None,
        command: None,
        event: None,
        error: None,
        services: None,
        snapshot_version: None,
        seen_attr: false,
    };
    for at in input
        .attrs
        .iter()
        .filter(|x| x.path().is_ident("aggregate"))
    {
        a.seen_attr = true;
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
    Ok(a)
}
