//! Parsing `#[derive(DomainEvent)]` input into a model.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Data, DeriveInput, Expr, Field, Fields, Ident, LitStr, Meta, Path, Token, Variant,
};

use crate::attr::{self, Errors};
use crate::case::Case;

/// A type deriving `DomainEvent`.
pub struct Input<'a> {
    pub ident: &'a Ident,
    pub krate: Option<Path>,
    /// Whether it is an enum (one event type per variant) or a struct (one event type).
    pub is_enum: bool,
    /// The variants in declaration order (the struct itself: one event type).
    pub members: Vec<Member<'a>>,
}

impl<'a> Input<'a> {
    /// The event types declared here (not those of flattened variants).
    pub fn types(&self) -> impl Iterator<Item = &EventType<'a>> {
        self.members.iter().filter_map(|m| match m {
            Member::Type(t) => Some(t),
            Member::Flatten(_) => None,
        })
    }

    /// The `#[event(flatten)]` variants.
    pub fn flattened(&self) -> impl Iterator<Item = &Flatten<'a>> {
        self.members.iter().filter_map(|m| match m {
            Member::Flatten(f) => Some(f),
            Member::Type(_) => None,
        })
    }
}

/// A variant (or the struct).
pub enum Member<'a> {
    /// One event type.
    Type(EventType<'a>),
    /// `#[event(flatten)] Variant(Inner)`: every event type of `Inner`.
    Flatten(Flatten<'a>),
}

/// `#[event(flatten)] Variant(Inner)`: the event types of another `DomainEvent`, gathered
/// into this enum under their own names, versions and upcasters.
pub struct Flatten<'a> {
    pub ident: &'a Ident,
    /// The `flatten` key.
    pub span: Span,
    /// The variant's fields: valid when they are exactly one unnamed field.
    pub fields: &'a Fields,
    /// `name`, `version` or `upcast` given beside `flatten`, which it does not take.
    pub stray_keys: Vec<(&'static str, Span)>,
    /// `personal` on the variant's field, which it does not take.
    pub personal: Vec<Personal<'a>>,
}

impl<'a> Flatten<'a> {
    /// The single field of a well-formed flattened variant.
    pub fn field(&self) -> Option<&'a Field> {
        match self.fields {
            Fields::Unnamed(f) if f.unnamed.len() == 1 => f.unnamed.first(),
            _ => None,
        }
    }
}

/// One event type: a variant, or the struct itself.
pub struct EventType<'a> {
    /// The variant (for an enum) or the type (for a struct).
    pub ident: &'a Ident,
    /// The stored name.
    pub name: String,
    /// Where the name comes from: the `name = "..."` literal, or the Rust name.
    pub name_span: Span,
    pub version: u32,
    /// The `version = N` literal, or the Rust name when defaulted.
    pub version_span: Span,
    pub upcasts: Vec<Upcast>,
    pub shape: Shape<'a>,
    /// The fields declared personal, in declaration order (valid on named fields only).
    pub personal: Vec<Personal<'a>>,
}

impl<'a> EventType<'a> {
    /// The named field `ident` (compared without `r#`).
    pub fn field_named(&self, ident: &Ident) -> Option<&'a Field> {
        let Shape::Named(fields) = &self.shape else {
            return None;
        };
        let wanted = ident.unraw();
        fields
            .iter()
            .copied()
            .find(|f| f.ident.as_ref().map(IdentExt::unraw).as_ref() == Some(&wanted))
    }
}

/// `#[event(personal(subject = customer_id, forgotten = expr))]` on a field.
pub struct Personal<'a> {
    /// The personal field.
    pub field: &'a Field,
    /// The `personal` key.
    pub span: Span,
    /// The field holding the subject id, as written.
    pub subject: Ident,
    /// The placeholder once the subject is forgotten; `Default::default()` without it.
    pub forgotten: Option<Expr>,
}

/// The fields of an event type.
pub enum Shape<'a> {
    Unit,
    /// One unnamed field: the data is the field's own JSON.
    Newtype(&'a Field),
    /// Named fields: the data is a JSON object.
    Named(Vec<&'a Field>),
    /// Unsupported: more than one unnamed field.
    Tuple(Span),
}

/// `upcast(from = N, with = path)`.
pub struct Upcast {
    pub from: u32,
    pub from_span: Span,
    pub with: Path,
    pub span: Span,
}

const ENUM_KEYS: &str = "`prefix`, `rename_all`, `crate`";
const STRUCT_KEYS: &str = "`name`, `version`, `upcast`, `prefix`, `rename_all`, `crate`";
const VARIANT_KEYS: &str = "`name`, `version`, `upcast`, `flatten`";
const FIELD_KEYS: &str = "`personal`";
const PERSONAL_USAGE: &str = "write `personal(subject = customer_id)` or \
`personal(subject = customer_id, forgotten = \"[forgotten]\")`, naming the field of the same \
event that holds the id of the person the data is about";

/// Attributes that may appear on the container.
#[derive(Default)]
struct Container {
    krate: Option<Path>,
    prefix: Option<LitStr>,
    rename_all: Option<Case>,
    own: Own,
}

/// Attributes of one event type (a variant, or a struct).
#[derive(Default)]
struct Own {
    name: Option<LitStr>,
    version: Option<(u32, Span)>,
    upcasts: Vec<Upcast>,
    /// `flatten`, on a variant only.
    flatten: Option<Span>,
}

pub fn parse(input: &DeriveInput) -> syn::Result<Input<'_>> {
    let mut errors = Errors::default();
    let is_enum = match &input.data {
        Data::Enum(_) => true,
        Data::Struct(_) => false,
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "#[derive(DomainEvent)] supports an enum (one event type per variant) or a \
                 struct (one event type), not a union",
            ))
        }
    };
    errors.take(attr::refuse_generics(&input.generics, "DomainEvent"));
    let container = errors
        .take(parse_container(&input.attrs, is_enum))
        .unwrap_or_default();
    let rename = |ident: &Ident| {
        let base = container
            .rename_all
            .unwrap_or(Case::Pascal)
            .apply(&ident.to_string());
        match &container.prefix {
            Some(prefix) => format!("{}{base}", prefix.value()),
            None => base,
        }
    };
    let mut members = Vec::new();
    match &input.data {
        Data::Enum(data) => {
            if data.variants.is_empty() {
                errors.push(syn::Error::new(
                    input.ident.span(),
                    "an event enum needs at least one variant, one per event type",
                ));
            }
            for variant in &data.variants {
                let own = errors.take(parse_own(&variant.attrs)).unwrap_or_default();
                let personal = parse_fields(&variant.fields, &mut errors);
                members.push(match own.flatten {
                    Some(span) => Member::Flatten(flatten(variant, span, &own, personal)),
                    None => Member::Type(event_type(
                        &variant.ident,
                        &variant.fields,
                        own,
                        personal,
                        &rename,
                    )),
                });
            }
        }
        Data::Struct(data) => {
            let personal = parse_fields(&data.fields, &mut errors);
            members.push(Member::Type(event_type(
                &input.ident,
                &data.fields,
                container.own,
                personal,
                &rename,
            )));
        }
        Data::Union(_) => {}
    }
    errors.finish()?;
    Ok(Input {
        ident: &input.ident,
        krate: container.krate,
        is_enum,
        members,
    })
}

fn flatten<'a>(
    variant: &'a Variant,
    span: Span,
    own: &Own,
    personal: Vec<Personal<'a>>,
) -> Flatten<'a> {
    let mut stray_keys = Vec::new();
    if let Some(lit) = &own.name {
        stray_keys.push(("name", lit.span()));
    }
    if let Some((_, span)) = own.version {
        stray_keys.push(("version", span));
    }
    stray_keys.extend(own.upcasts.iter().map(|u| ("upcast", u.span)));
    Flatten {
        ident: &variant.ident,
        span,
        fields: &variant.fields,
        stray_keys,
        personal,
    }
}

fn event_type<'a>(
    ident: &'a Ident,
    fields: &'a Fields,
    own: Own,
    personal: Vec<Personal<'a>>,
    rename: &dyn Fn(&Ident) -> String,
) -> EventType<'a> {
    let (name, name_span) = match &own.name {
        Some(lit) => (lit.value(), lit.span()),
        None => (rename(ident), ident.span()),
    };
    let (version, version_span) = own.version.unwrap_or((1, ident.span()));
    let shape = match fields {
        Fields::Unit => Shape::Unit,
        Fields::Named(named) => Shape::Named(named.named.iter().collect()),
        Fields::Unnamed(unnamed) if unnamed.unnamed.len() == 1 => {
            Shape::Newtype(&unnamed.unnamed[0])
        }
        Fields::Unnamed(unnamed) if unnamed.unnamed.is_empty() => Shape::Unit,
        Fields::Unnamed(unnamed) => Shape::Tuple(unnamed.span()),
    };
    EventType {
        ident,
        name,
        name_span,
        version,
        version_span,
        upcasts: own.upcasts,
        shape,
        personal,
    }
}

fn parse_container(attrs: &[Attribute], is_enum: bool) -> syn::Result<Container> {
    let mut c = Container::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let path = attr::parse_crate(&meta)?;
                attr::set_once(&mut c.krate, path, &meta)
            } else if meta.path.is_ident("prefix") {
                let lit = attr::parse_str(&meta)?;
                attr::set_once(&mut c.prefix, lit, &meta)
            } else if meta.path.is_ident("rename_all") {
                let case = Case::parse(&attr::parse_str(&meta)?)?;
                attr::set_once(&mut c.rename_all, case, &meta)
            } else if !is_enum && parse_own_key(&meta, &mut c.own)? {
                Ok(())
            } else if meta.path.is_ident("flatten") {
                Err(meta.error(
                    "`flatten` belongs on a newtype variant of an event enum, \
                     `#[event(flatten)] Orders(OrderEvent)`, where it gathers the event \
                     types of `OrderEvent` into the enum",
                ))
            } else if is_enum
                && ["name", "version", "upcast"]
                    .iter()
                    .any(|k| meta.path.is_ident(k))
            {
                Err(meta.error(format!(
                    "`{}` belongs on a variant of the enum: each variant is one event type",
                    attr::key_of(&meta)
                )))
            } else {
                Err(attr::unknown_key(
                    &meta,
                    "#[event(...)]",
                    if is_enum { ENUM_KEYS } else { STRUCT_KEYS },
                ))
            }
        })?;
    }
    Ok(c)
}

fn parse_own(attrs: &[Attribute]) -> syn::Result<Own> {
    let mut own = Own::default();
    for attr in attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_nested_meta(|meta| {
            if parse_own_key(&meta, &mut own)? {
                Ok(())
            } else if meta.path.is_ident("flatten") {
                let span = meta.path.span();
                attr::set_once(&mut own.flatten, span, &meta)
            } else if ["prefix", "rename_all", "crate"]
                .iter()
                .any(|k| meta.path.is_ident(k))
            {
                Err(meta.error(format!(
                    "`{}` belongs on the enum, not on a variant",
                    attr::key_of(&meta)
                )))
            } else {
                Err(attr::unknown_key(&meta, "#[event(...)]", VARIANT_KEYS))
            }
        })?;
    }
    Ok(own)
}

/// Parses `name`, `version` or `upcast`; `Ok(false)` for another key.
fn parse_own_key(meta: &syn::meta::ParseNestedMeta<'_>, own: &mut Own) -> syn::Result<bool> {
    if meta.path.is_ident("name") {
        let lit = attr::parse_str(meta)?;
        attr::set_once(&mut own.name, lit, meta)?;
    } else if meta.path.is_ident("version") {
        let version = attr::parse_version(meta)?;
        attr::set_once(&mut own.version, version, meta)?;
    } else if meta.path.is_ident("upcast") {
        own.upcasts.push(parse_upcast(meta)?);
    } else {
        return Ok(false);
    }
    Ok(true)
}

fn parse_upcast(meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<Upcast> {
    const USAGE: &str = "write `upcast(from = 1, with = path::to::fn)`";
    let span = meta.path.span();
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!("expected a list: {USAGE}")));
    }
    let mut from = None;
    let mut with = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("from") {
            let (v, s) = attr::parse_version(&inner)?;
            attr::set_once(&mut from, (v, s), &inner)
        } else if inner.path.is_ident("with") {
            let path: Path = inner.value()?.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected the path of a `fn(serde_json::Value) -> Result<serde_json::Value, String>`",
                )
            })?;
            attr::set_once(&mut with, path, &inner)
        } else {
            Err(attr::unknown_key(&inner, "upcast(...)", "`from`, `with`"))
        }
    })?;
    match (from, with) {
        (Some((from, from_span)), Some(with)) => Ok(Upcast {
            from,
            from_span,
            with,
            span,
        }),
        (None, _) => Err(syn::Error::new(span, format!("missing `from`: {USAGE}"))),
        (_, None) => Err(syn::Error::new(span, format!("missing `with`: {USAGE}"))),
    }
}

/// The `personal` declarations on `fields`, whatever their shape (`valid` refuses them
/// on unnamed fields); errors go to `errors`.
fn parse_fields<'a>(fields: &'a Fields, errors: &mut Errors) -> Vec<Personal<'a>> {
    fields
        .iter()
        .filter_map(|field| errors.take(parse_field(field)).flatten())
        .collect()
}

/// The field attributes of one field: `#[event(personal(...))]`, at most once.
fn parse_field(field: &Field) -> syn::Result<Option<Personal<'_>>> {
    let mut personal = None;
    for attr in field.attrs.iter().filter(|a| a.path().is_ident("event")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("personal") {
                let declared = parse_personal(&meta, field)?;
                attr::set_once(&mut personal, declared, &meta)
            } else {
                Err(attr::unknown_key(
                    &meta,
                    "#[event(...)] on a field",
                    FIELD_KEYS,
                ))
            }
        })?;
    }
    Ok(personal)
}

/// `personal(subject = field, forgotten = expr)`.
fn parse_personal<'a>(
    meta: &syn::meta::ParseNestedMeta<'_>,
    field: &'a Field,
) -> syn::Result<Personal<'a>> {
    let span = meta.path.span();
    if !meta.input.peek(syn::token::Paren) {
        return Err(meta.error(format!("expected a list: {PERSONAL_USAGE}")));
    }
    let mut subject: Option<Ident> = None;
    let mut forgotten: Option<Expr> = None;
    meta.parse_nested_meta(|inner| {
        if inner.path.is_ident("subject") {
            let ident = inner.value()?.call(Ident::parse_any).map_err(|e| {
                syn::Error::new(e.span(), format!("expected a field name: {PERSONAL_USAGE}"))
            })?;
            attr::set_once(&mut subject, ident, &inner)
        } else if inner.path.is_ident("forgotten") {
            let expr: Expr = inner.value()?.parse()?;
            attr::set_once(&mut forgotten, expr, &inner)
        } else {
            Err(attr::unknown_key(
                &inner,
                "personal(...)",
                "`subject`, `forgotten`",
            ))
        }
    })?;
    let subject = subject
        .ok_or_else(|| syn::Error::new(span, format!("missing `subject`: {PERSONAL_USAGE}")))?;
    Ok(Personal {
        field,
        span,
        subject,
        forgotten,
    })
}

/// The name of a field in the event's JSON data: its `#[serde(rename = "...")]` (or the
/// `serialize` name of `rename(...)`), else its Rust name without `r#`.
pub fn json_name(field: &Field) -> String {
    serde_rename(field).unwrap_or_else(|| {
        field
            .ident
            .as_ref()
            .map(|i| i.unraw().to_string())
            .unwrap_or_default()
    })
}

/// Whether the field has `#[serde(flatten)]`: its JSON has no key of its own.
pub fn serde_flatten(field: &Field) -> Option<Span> {
    serde_metas(field)
        .into_iter()
        .find(|m| matches!(m, Meta::Path(p) if p.is_ident("flatten")))
        .map(|m| m.span())
}

fn serde_rename(field: &Field) -> Option<String> {
    let mut name = None;
    for meta in serde_metas(field) {
        match &meta {
            Meta::NameValue(nv) if nv.path.is_ident("rename") => {
                if let Some(lit) = str_lit(&nv.value) {
                    name = Some(lit);
                }
            }
            Meta::List(list) if list.path.is_ident("rename") => {
                let inner = list.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated);
                for m in inner.into_iter().flatten() {
                    if let Meta::NameValue(nv) = &m {
                        if nv.path.is_ident("serialize") {
                            if let Some(lit) = str_lit(&nv.value) {
                                name = Some(lit);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    name
}

/// The items of every `#[serde(...)]` of a field (those that parse: serde reports the
/// others).
fn serde_metas(field: &Field) -> Vec<Meta> {
    field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .filter_map(|a| {
            a.parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                .ok()
        })
        .flatten()
        .collect()
}

fn str_lit(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) => Some(s.value()),
        _ => None,
    }
}
