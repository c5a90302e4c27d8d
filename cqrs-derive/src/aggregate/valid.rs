//! Checks on a parsed `#[derive(Aggregate)]`.

use syn::Type;

use super::ast::Input;
use crate::attr::{self, Errors};
use crate::case::Case;

const USAGE: &str = "#[aggregate(command = MyCommand, event = MyEvent, error = MyError)]";

/// What expansion needs once the required keys are known to be there.
pub struct Checked<'a> {
    pub command: &'a Type,
    pub event: &'a Type,
    pub error: &'a Type,
    /// The stream type: given, or the Rust name in snake_case.
    pub name: String,
}

pub fn validate<'a>(input: &'a Input<'_>) -> syn::Result<Checked<'a>> {
    let mut errors = Errors::default();
    let ident = input.ident;
    let missing: Vec<&str> = [
        ("command", input.command.is_none()),
        ("event", input.event.is_none()),
        ("error", input.error.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(k, _)| *k)
    .collect();
    if !missing.is_empty() {
        let what = if input.seen_attr {
            format!(
                "#[aggregate(...)] is missing {}: write {USAGE}",
                missing
                    .iter()
                    .map(|k| format!("`{k} = ...`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("#[derive(Aggregate)] needs its types: add {USAGE} to `{ident}`")
        };
        errors.push(syn::Error::new(ident.span(), what));
    }
    let (name, name_span) = match &input.name {
        Some(lit) => (lit.value(), lit.span()),
        None => (Case::Snake.apply(&ident.to_string()), ident.span()),
    };
    errors.take(attr::check_stored_name(
        "aggregate type name",
        &name,
        name_span,
    ));
    errors.finish()?;
    match (&input.command, &input.event, &input.error) {
        (Some(command), Some(event), Some(error)) => Ok(Checked {
            command,
            event,
            error,
            name,
        }),
        // Reported above.
        _ => Err(syn::Error::new(ident.span(), USAGE)),
    }
}
