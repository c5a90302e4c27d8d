//! The validated schema name.

use std::fmt;

/// A PostgreSQL schema name that is safe to interpolate into SQL.
///
/// Accepted: `^[a-z_][a-z0-9_]{0,62}$` (lower case, so that the quoted and unquoted forms
/// name the same schema; at most 63 bytes, PostgreSQL's identifier limit), and not starting
/// with `pg_` (PostgreSQL reserves those). The name is still written as a quoted identifier
/// in every statement.
///
/// ```
/// use cqrs_postgres::SchemaName;
/// assert!(SchemaName::new("event_store").is_ok());
/// assert!(SchemaName::new("Events; DROP TABLE x").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

/// A schema name that [`SchemaName::new`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid schema name {name:?}: {reason} (expected ^[a-z_][a-z0-9_]{{0,62}}$, not starting with pg_)"
)]
pub struct InvalidSchemaName {
    /// The refused name.
    pub name: String,
    /// Why it was refused.
    pub reason: &'static str,
}

impl SchemaName {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, InvalidSchemaName> {
        let fail = |reason| {
            Err(InvalidSchemaName {
                name: name.to_owned(),
                reason,
            })
        };
        let bytes = name.as_bytes();
        match bytes.first() {
            None => return fail("it is empty"),
            Some(b) if !(b.is_ascii_lowercase() || *b == b'_') => {
                return fail("it must start with a lower-case letter or an underscore")
            }
            Some(_) => {}
        }
        if bytes.len() > 63 {
            return fail("it is longer than 63 bytes");
        }
        if !bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        {
            return fail("it may only hold a-z, 0-9 and _");
        }
        if name.starts_with("pg_") {
            return fail("names starting with pg_ are reserved by PostgreSQL");
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a quoted SQL identifier, e.g. `"event_store"`.
    pub(crate) fn quoted(&self) -> String {
        // The name holds no `"` (validated), so quoting needs no escaping.
        format!("\"{}\"", self.0)
    }
}

impl Default for SchemaName {
    /// `public`.
    fn default() -> Self {
        Self("public".to_owned())
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SchemaName({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses_names() {
        for good in ["a", "_", "events", "t_0123456789abcdef", &"a".repeat(63)] {
            assert!(SchemaName::new(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "",
            "1abc",
            "Abc",
            "a-b",
            "a b",
            "a\"b",
            "é",
            "pg_catalog",
            &"a".repeat(64),
        ] {
            assert!(SchemaName::new(bad).is_err(), "{bad:?} accepted");
        }
    }
}
