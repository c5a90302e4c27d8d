//! Checks on a parsed `#[derive(Projection)]`, `#[derive(ProcessManager)]` or
//! `#[derive(PgProjection)]`.

use super::ast::Input;
use crate::attr::{self, Errors};
use crate::case::Case;

pub fn validate(input: &Input<'_>) -> syn::Result<()> {
    let mut errors = Errors::default();
    let ident = input.ident;
    if input.event.is_none() {
        let (derive, attr) = (input.kind.trait_name(), input.kind.attr());
        errors.push(syn::Error::new(
            ident.span(),
            format!(
                "#[derive({derive})] needs the event type it reads: add \
                 #[{attr}(event = MyEvent)] to `{ident}`"
            ),
        ));
    }
    let (name, span) = stored_name(input);
    let what = match input.kind {
        super::Kind::Projection | super::Kind::PgProjection => "projection name",
        super::Kind::ProcessManager => "process manager name",
    };
    errors.take(attr::check_stored_name(what, &name, span));
    if let Some(list) = &input.events {
        for (i, v) in list.iter().enumerate() {
            if list[..i].contains(v) {
                errors.push(syn::Error::new(
                    v.span(),
                    format!("`{v}` is listed twice in `events(...)`: keep one"),
                ));
            }
        }
    }
    if let Some(list) = &input.streams {
        for (i, lit) in list.iter().enumerate() {
            let value = lit.value();
            errors.take(attr::check_stored_name("stream type", &value, lit.span()));
            if list[..i].iter().any(|l| l.value() == value) {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!("\"{value}\" is listed twice in `streams(...)`: keep one"),
                ));
            }
        }
    }
    errors.finish()
}

/// The `NAME`: given, or the Rust name in snake_case.
pub fn stored_name(input: &Input<'_>) -> (String, proc_macro2::Span) {
    match &input.name {
        Some(lit) => (lit.value(), lit.span()),
        None => (
            Case::Snake.apply(&input.ident.to_string()),
            input.ident.span(),
        ),
    }
}
