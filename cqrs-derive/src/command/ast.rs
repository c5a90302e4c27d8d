//! Parsing `#[derive(Command)]` input into a model.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, Ident, LitStr, Member, Path};

use crate::attr::{self, Errors};

/// One command: a variant, or the struct itself.
pub struct Target<'a> {
    pub ident: &'a Ident,
    pub name: String,
    /// The field carrying the aggregate id, and the span to blame.
    pub id: Option<(Member, Span)>,
}

/// A type deriving `Command`.
pub struct Input<'a> {
    pub ident: &'a Ident,
    pub generics: &'a syn::Generics,
    pub krate: Option<Path>,
    pub is_enum: bool,
    pub targets: Vec<Target<'a>>,
}

#[derive(Default)]
struct Container {
    krate: Option<Path>,
    id: Option<Ident>,
    name: Option<LitStr>,
}

const ENUM_KEYS: &str = "`id = field`, `crate`";
const STRUCT_KEYS: &str = "`name`, `crate`";
const VARIANT_KEYS: &str = "`name`";

pub fn parse(input: &DeriveInput) -> syn::Result<Input<'_>> {
    let mut errors = Errors::default();
    let is_enum = match &input.data {
        Data::Enum(_) => true,
        Data::Struct(_) => false,
        Data::Union(u) => {
            return Err(syn::Error::new(
                u.union_token.span,
                "#[derive(Command)] supports an enum (one command per variant) or a struct, \
                 not a union",
            ))
        }
    };
    let mut c = Container::default();
    for a in input.attrs.iter().filter(|a| a.path().is_ident("command")) {
        errors.take(a.parse_nested_meta(|meta| {
            if meta.path.is_ident("crate") {
                let p = attr::parse_crate(&meta)?;
                attr::set_once(&mut c.krate, p, &meta)
            } else if is_enum && meta.path.is_ident("id") {
                let ident: Ident = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "expected the name of the field that every variant has: `id = account_id`",
                    )
                })?;
                attr::set_once(&mut c.id, ident, &meta)
            } else if !is_enum && meta.path.is_ident("name") {
                let lit = attr::parse_str(&meta)?;
                attr::set_once(&mut c.name, lit, &meta)
            } else if !is_enum && meta.path.is_ident("id") {
                Err(meta.error(
                    "on a struct, mark the field instead: `#[command(id)] account_id: String`",
                ))
            } else {
                Err(attr::unknown_key(
                    &meta,
                    "#[command(...)]",
                    if is_enum { ENUM_KEYS } else { STRUCT_KEYS },
                ))
            }
        }));
    }
    let mut targets = Vec::new();
    match &input.data {
        Data::Enum(data) => {
            for v in &data.variants {
                let mut name = None;
                for a in v.attrs.iter().filter(|a| a.path().is_ident("command")) {
                    errors.take(a.parse_nested_meta(|meta| {
                        if meta.path.is_ident("name") {
                            let lit = attr::parse_str(&meta)?;
                            attr::set_once(&mut name, lit, &meta)
                        } else {
                            Err(attr::unknown_key(&meta, "#[command(...)]", VARIANT_KEYS))
                        }
                    }));
                }
                let id = match &c.id {
                    Some(field) => container_id(field, &v.ident, &v.fields, &mut errors),
                    None => field_id(&v.fields, &mut errors),
                };
                targets.push(Target {
                    ident: &v.ident,
                    name: name.map_or_else(|| v.ident.to_string(), |l| l.value()),
                    id,
                });
            }
        }
        Data::Struct(data) => {
            let id = field_id(&data.fields, &mut errors);
            targets.push(Target {
                ident: &input.ident,
                name: c
                    .name
                    .as_ref()
                    .map_or_else(|| input.ident.to_string(), LitStr::value),
                id,
            });
        }
        Data::Union(_) => {}
    }
    errors.finish()?;
    Ok(Input {
        ident: &input.ident,
        generics: &input.generics,
        krate: c.krate,
        is_enum,
        targets,
    })
}

/// `#[command(id = field)]` on the enum: the variant must have that field, and must not
/// also mark one.
fn container_id(
    field: &Ident,
    variant: &Ident,
    fields: &Fields,
    errors: &mut Errors,
) -> Option<(Member, Span)> {
    if let Some((_, span)) = field_id(fields, errors) {
        errors.push(syn::Error::new(
            span,
            format!(
                "the enum already names the id field with #[command(id = {field})]; \
                 remove this #[command(id)] or the enum-level one"
            ),
        ));
    }
    let found = fields.iter().any(|f| f.ident.as_ref() == Some(field));
    if found {
        Some((Member::Named(field.clone()), field.span()))
    } else {
        errors.push(syn::Error::new(
            variant.span(),
            format!(
                "variant `{variant}` has no field `{field}`, which #[command(id = {field})] \
                 on the enum names: add the field, or mark each variant's id field with \
                 #[command(id)] instead"
            ),
        ));
        None
    }
}

/// The field marked `#[command(id)]`, if any.
fn field_id(fields: &Fields, errors: &mut Errors) -> Option<(Member, Span)> {
    let mut found: Option<(Member, Span)> = None;
    for (i, f) in fields.iter().enumerate() {
        for a in f.attrs.iter().filter(|a| a.path().is_ident("command")) {
            let mut is_id = false;
            errors.take(a.parse_nested_meta(|meta| {
                if meta.path.is_ident("id") {
                    is_id = true;
                    Ok(())
                } else {
                    Err(attr::unknown_key(
                        &meta,
                        "#[command(...)]",
                        "`id` (on a field)",
                    ))
                }
            }));
            if !is_id {
                continue;
            }
            if found.is_some() {
                errors.push(syn::Error::new(
                    a.span(),
                    "only one field can carry the aggregate id: remove one #[command(id)]",
                ));
                continue;
            }
            let member = match &f.ident {
                Some(ident) => Member::Named(ident.clone()),
                None => Member::Unnamed(syn::Index::from(i)),
            };
            found = Some((member, a.span()));
        }
    }
    found
}
