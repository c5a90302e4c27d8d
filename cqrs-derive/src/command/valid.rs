//! Checks on a parsed `#[derive(Command)]`.

use super::ast::Input;
use crate::attr::{self, Errors};

pub fn validate(input: &Input<'_>) -> syn::Result<()> {
    let mut errors = Errors::default();
    if input.is_enum && input.targets.is_empty() {
        errors.push(syn::Error::new(
            input.ident.span(),
            "a command enum needs at least one variant, one per command",
        ));
    }
    if let Some(with) = input.targets.iter().find(|t| t.id.is_some()) {
        for t in input.targets.iter().filter(|t| t.id.is_none()) {
            errors.push(syn::Error::new(
                t.ident.span(),
                format!(
                    "variant `{}` names no aggregate id, but `{}` does: mark the field \
                     carrying the id with #[command(id)] in every variant (or in none), \
                     so that `Engine::send` can route every command",
                    t.ident, with.ident
                ),
            ));
        }
    }
    for t in &input.targets {
        errors.take(attr::check_stored_name(
            "command name",
            &t.name,
            t.ident.span(),
        ));
    }
    errors.finish()
}
