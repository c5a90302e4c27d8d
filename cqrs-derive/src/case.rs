//! Case conventions for names derived from Rust identifiers.

use syn::LitStr;

/// A naming convention, as in serde's `rename_all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// `AccountOpened` (the Rust name, unchanged).
    Pascal,
    /// `accountOpened`.
    Camel,
    /// `account_opened`.
    Snake,
    /// `ACCOUNT_OPENED`.
    ScreamingSnake,
    /// `account-opened`.
    Kebab,
    /// `accountopened`.
    Lower,
    /// `ACCOUNTOPENED`.
    Upper,
}

/// The accepted spellings, for error messages.
pub const CASES: &str = "\"PascalCase\", \"camelCase\", \"snake_case\", \
\"SCREAMING_SNAKE_CASE\", \"kebab-case\", \"lowercase\", \"UPPERCASE\"";

impl Case {
    /// Parses a `rename_all = "..."` value.
    pub fn parse(lit: &LitStr) -> syn::Result<Self> {
        Ok(match lit.value().as_str() {
            "PascalCase" => Case::Pascal,
            "camelCase" => Case::Camel,
            "snake_case" => Case::Snake,
            "SCREAMING_SNAKE_CASE" => Case::ScreamingSnake,
            "kebab-case" => Case::Kebab,
            "lowercase" => Case::Lower,
            "UPPERCASE" => Case::Upper,
            other => {
                return Err(syn::Error::new(
                    lit.span(),
                    format!("unknown case convention {other:?}; expected one of {CASES}"),
                ))
            }
        })
    }

    /// Applies the convention to a Rust identifier written in `PascalCase`.
    pub fn apply(self, ident: &str) -> String {
        let ident = ident.strip_prefix("r#").unwrap_or(ident);
        let words = words(ident);
        match self {
            Case::Pascal => ident.to_owned(),
            Case::Camel => {
                let mut out = String::new();
                for (i, w) in words.iter().enumerate() {
                    if i == 0 {
                        out.push_str(&w.to_lowercase());
                    } else {
                        out.push_str(&capitalise(w));
                    }
                }
                out
            }
            Case::Snake => join(&words, "_").to_lowercase(),
            Case::ScreamingSnake => join(&words, "_").to_uppercase(),
            Case::Kebab => join(&words, "-").to_lowercase(),
            Case::Lower => ident.replace('_', "").to_lowercase(),
            Case::Upper => ident.replace('_', "").to_uppercase(),
        }
    }
}

fn join(words: &[String], sep: &str) -> String {
    words.join(sep)
}

fn capitalise(word: &str) -> String {
    let lower = word.to_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Splits `HTTPRequestSent` into `HTTP`, `Request`, `Sent`, and `snake_case` at `_`.
fn words(ident: &str) -> Vec<String> {
    let chars: Vec<char> = ident.chars().collect();
    let mut words = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            continue;
        }
        let boundary = c.is_uppercase()
            && !current.is_empty()
            && (chars[i - 1].is_lowercase()
                || chars[i - 1].is_ascii_digit()
                || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if boundary {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::Case;

    #[test]
    fn conventions() {
        assert_eq!(Case::Snake.apply("AccountOpened"), "account_opened");
        assert_eq!(Case::Snake.apply("HTTPRequestSent"), "http_request_sent");
        assert_eq!(Case::Kebab.apply("AccountOpened"), "account-opened");
        assert_eq!(Case::Camel.apply("AccountOpened"), "accountOpened");
        assert_eq!(Case::ScreamingSnake.apply("Opened"), "OPENED");
        assert_eq!(Case::Lower.apply("BankAccount"), "bankaccount");
        assert_eq!(Case::Pascal.apply("Opened"), "Opened");
        assert_eq!(Case::Snake.apply("Version2Sent"), "version2_sent");
    }
}
