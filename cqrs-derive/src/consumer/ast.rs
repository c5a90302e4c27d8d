//! Parsing `#[projection(...)]`, `#[process_manager(...)]` and `#[pg_projection(...)]`.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Ident, LitStr, Path, Type};

use crate::attr::{self, Errors};

/// Which trait is derived.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Projection,
    ProcessManager,
    /// `cqrs_postgres::PgProjection`: a projection whose handlers take the transaction.
    PgProjection,
}

impl Kind {
    /// The trait (and derive) name.
    pub fn trait_name(self) -> &'static str {
        match self {
            Kind::Projection => "Projection",
            Kind::ProcessManager => "ProcessManager",
            Kind::PgProjection => "PgProjection",
        }
    }

    /// Whether it has a `version` (a view that a new version rebuilds).
    pub fn has_version(self) -> bool {
        self != Kind::ProcessManager
    }

    /// The helper attribute.
    pub fn attr(self) -> &'static str {
        match self {
            Kind::Projection => "projection",
            Kind::ProcessManager => "process_manager",
            Kind::PgProjection => "pg_projection",
        }
    }

    fn keys(self) -> &'static str {
        match self {
            Kind::Projection | Kind::PgProjection => {
                "`event`, `error`, `name`, `version`, `events(...)`, `streams(...)`, `on_delete`, \
                 `crate`"
            }
            Kind::ProcessManager => {
                "`event`, `error`, `name`, `events(...)`, `streams(...)`, `crate`"
            }
        }
    }
}

/// A type deriving `Projection`, `ProcessManager` or `PgProjection`.
pub struct Input<'a> {
    pub kind: Kind,
    pub ident: &'a Ident,
    pub krate: Option<Path>,
    pub name: Option<LitStr>,
    /// `version = N`: projections only (both kinds).
    pub version: Option<(u32, Span)>,
    pub event: Option<Type>,
    pub error: Option<Type>,
    /// `events(Variant, ...)`: the variants of the event enum consumed.
    pub events: Option<Vec<Ident>>,
    /// `streams("account", ...)`: the stream (aggregate) types consumed.
    pub streams: Option<Vec<LitStr>>,
    /// `on_delete`: projections only; a deleted stream is passed to the inherent
    /// `async fn stream_deleted`.
    pub on_delete: Option<Span>,
}

pub fn parse(input: &DeriveInput, kind: Kind) -> syn::Result<Input<'_>> {
    let derive = kind.trait_name();
    if let Data::Union(u) = &input.data {
        return Err(syn::Error::new(
            u.union_token.span,
            format!("#[derive({derive})] supports a struct or an enum, not a union"),
        ));
    }
    let mut errors = Errors::default();
    let mut a = Input {
        kind,
        ident: &input.ident,
        krate: None,
        name: None,
        version: None,
        event: None,
        error: None,
        events: None,
        streams: None,
        on_delete: None,
    };
    let attr_name = format!("#[{}(...)]", kind.attr());
    for at in input
        .attrs
        .iter()
        .filter(|x| x.path().is_ident(kind.attr()))
    {
        errors.take(at.parse_nested_meta(|meta| {
            let m = &meta;
            if m.path.is_ident("crate") {
                attr::set_once(&mut a.krate, attr::parse_crate(m)?, m)
            } else if m.path.is_ident("name") {
                attr::set_once(&mut a.name, attr::parse_str(m)?, m)
            } else if m.path.is_ident("version") && kind.has_version() {
                attr::set_once(&mut a.version, attr::parse_version(m)?, m)
            } else if m.path.is_ident("version") {
                Err(m.error(
                    "a process manager has no `version`: it keeps no view that a new \
                     version would rebuild; remove it",
                ))
            } else if m.path.is_ident("on_delete") && kind.has_version() {
                attr::set_once(&mut a.on_delete, m.path.span(), m)
            } else if m.path.is_ident("on_delete") {
                Err(m.error(
                    "a process manager has no `on_delete`: it keeps no view of a stream to \
                     drop when the stream is deleted; remove it",
                ))
            } else if m.path.is_ident("event") {
                attr::set_once(&mut a.event, attr::parse_type(m)?, m)
            } else if m.path.is_ident("error") {
                attr::set_once(&mut a.error, attr::parse_type(m)?, m)
            } else if m.path.is_ident("events") {
                let list = parse_events(m)?;
                attr::set_once(&mut a.events, list, m)
            } else if m.path.is_ident("streams") {
                let list = parse_streams(m)?;
                attr::set_once(&mut a.streams, list, m)
            } else {
                Err(attr::unknown_key(m, &attr_name, kind.keys()))
            }
        }));
    }
    errors.finish()?;
    Ok(a)
}

/// `events(Opened, Deposited)`.
fn parse_events(m: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Vec<Ident>> {
    let mut list = Vec::new();
    m.parse_nested_meta(|v| match v.path.get_ident() {
        Some(ident) if v.input.is_empty() || v.input.peek(syn::Token![,]) => {
            list.push(ident.clone());
            Ok(())
        }
        _ => Err(v.error("expected variant names of the event enum: `events(Opened, Deposited)`")),
    })?;
    if list.is_empty() {
        return Err(m.error(
            "an empty list would consume nothing: name variants, or remove `events(...)` to \
             consume every event type",
        ));
    }
    Ok(list)
}

/// `streams("account", "order")`.
fn parse_streams(m: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Vec<LitStr>> {
    let content;
    syn::parenthesized!(content in m.input);
    let list = content.parse_terminated(|input| input.parse::<LitStr>(), syn::Token![,])?;
    if list.is_empty() {
        return Err(m.error(
            "an empty list would consume nothing: name stream types, or remove \
             `streams(...)` to consume every stream",
        ));
    }
    Ok(list.into_iter().collect())
}
