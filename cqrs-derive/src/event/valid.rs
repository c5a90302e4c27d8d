//! Checks on a parsed `#[derive(DomainEvent)]`.

use std::collections::BTreeMap;

use syn::spanned::Spanned;

use super::ast::{self, EventType, Flatten, Input, Shape};
use crate::attr::{self, Errors};

pub fn validate(input: &Input<'_>) -> syn::Result<()> {
    let mut errors = Errors::default();
    let mut seen: BTreeMap<&str, &EventType<'_>> = BTreeMap::new();
    for ty in input.types() {
        errors.take(attr::check_stored_name(
            "event type name",
            &ty.name,
            ty.name_span,
        ));
        if let Some(first) = seen.get(ty.name.as_str()) {
            errors.push(syn::Error::new(
                ty.name_span,
                format!(
                    "duplicate event type name {:?}: variant `{}` has it too; \
                     give one of them another name with #[event(name = \"...\")]",
                    ty.name, first.ident
                ),
            ));
        } else {
            seen.insert(&ty.name, ty);
        }
        if let Shape::Tuple(span) = ty.shape {
            errors.push(syn::Error::new(
                span,
                "an event with several unnamed fields is not supported: name the fields \
                 (`Variant { a: A, b: B }`) or wrap them in one type (`Variant(Data)`)",
            ));
        }
        check_upcasts(ty, &mut errors);
        check_personal(ty, &mut errors);
    }
    // A name shared with, or between, flattened enums is only known once their constants
    // are: the expansion checks it in a `const` (see `expand::clash_check`).
    for flat in input.flattened() {
        check_flatten(flat, &mut errors);
    }
    errors.finish()
}

fn check_flatten(flat: &Flatten<'_>, errors: &mut Errors) {
    let variant = flat.ident;
    let Some(field) = flat.field() else {
        let span = match flat.fields {
            syn::Fields::Unit => variant.span(),
            fields => fields.span(),
        };
        errors.push(syn::Error::new(
            span,
            format!(
                "`#[event(flatten)]` needs a newtype variant holding another event type, \
                 `{variant}(OrderEvent)`: its event types become this enum's; remove \
                 `flatten` to make `{variant}` one event type of its own"
            ),
        ));
        return;
    };
    let inner = &field.ty;
    let inner = quote::quote!(#inner).to_string().replace(' ', "");
    for (key, span) in &flat.stray_keys {
        errors.push(syn::Error::new(
            *span,
            format!(
                "`{key}` does not apply to a flattened variant: `{variant}` takes the names, \
                 versions and upcasters of `{inner}`; set them on `{inner}`'s variants"
            ),
        ));
    }
    for a in field.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        errors.push(syn::Error::new(
            a.span(),
            format!(
                "#[serde(...)] has no effect on a flattened variant: `{inner}` encodes and \
                 decodes its own events; remove it"
            ),
        ));
    }
    for p in &flat.personal {
        errors.push(syn::Error::new(
            p.span,
            format!(
                "`personal` does not apply to a flattened variant: `{inner}` declares its \
                 own personal fields; put `personal` on the fields of `{inner}`"
            ),
        ));
    }
}

/// Personal fields: named fields of this event type, each about a field of the same
/// type that exists and is not personal itself.
fn check_personal(ty: &EventType<'_>, errors: &mut Errors) {
    if !matches!(ty.shape, Shape::Named(_)) {
        for p in &ty.personal {
            errors.push(syn::Error::new(
                p.span,
                format!(
                    "`personal` applies to a named field, `{} {{ customer_id: String, \
                     #[event(personal(subject = customer_id))] name: String }}`: the data \
                     must be a JSON object for the field to be taken out of it and sealed",
                    ty.ident
                ),
            ));
        }
        return;
    }
    for p in &ty.personal {
        let subject = &p.subject;
        match ty.field_named(subject) {
            None => errors.push(syn::Error::new(
                subject.span(),
                format!(
                    "no field `{subject}` in `{}`: `subject` names the field of the same event \
                     that holds the id of the person the data is about",
                    ty.ident
                ),
            )),
            Some(field) if ty.personal.iter().any(|q| std::ptr::eq(q.field, field)) => {
                errors.push(syn::Error::new(
                    subject.span(),
                    format!(
                        "the subject field `{subject}` is itself personal: the subject id is \
                         stored in plaintext beside the sealed fields (it finds their key), so \
                         it cannot be sealed; remove `personal` from `{subject}` or name \
                         another field"
                    ),
                ))
            }
            Some(_) => {}
        }
        if let Some(span) = ast::serde_flatten(p.field) {
            errors.push(syn::Error::new(
                span,
                "a personal field cannot be `#[serde(flatten)]`: its JSON would have no key \
                 of its own to take out of the data and seal; wrap it in a named field",
            ));
        }
    }
}

/// The upcasters of a type must start below its version, be unique, and form an
/// unbroken chain that ends at `version - 1`.
fn check_upcasts(ty: &EventType<'_>, errors: &mut Errors) {
    let mut froms: BTreeMap<u32, &super::ast::Upcast> = BTreeMap::new();
    for up in &ty.upcasts {
        if up.from >= ty.version {
            errors.push(syn::Error::new(
                up.from_span,
                format!(
                    "no upcaster can start at version {}: `{}` is at version {}, so `from` \
                     must be below it; raise `version` if the schema changed again",
                    up.from, ty.ident, ty.version
                ),
            ));
        } else if froms.insert(up.from, up).is_some() {
            errors.push(syn::Error::new(
                up.span,
                format!(
                    "two upcasters from version {} of `{}`: keep one",
                    up.from, ty.ident
                ),
            ));
        }
    }
    let Some((&lowest, _)) = froms.iter().next() else {
        return;
    };
    for missing in lowest..ty.version {
        if froms.contains_key(&missing) {
            continue;
        }
        // Point at the first upcaster after the hole, or at the version.
        let span = froms
            .range(missing..)
            .next()
            .map(|(_, up)| up.span)
            .unwrap_or(ty.version_span);
        errors.push(syn::Error::new(
            span,
            format!(
                "the upcaster chain of `{}` has a gap: nothing upcasts version {missing} to \
                 {}; add `upcast(from = {missing}, with = ...)`",
                ty.ident,
                missing + 1
            ),
        ));
        break;
    }
}
