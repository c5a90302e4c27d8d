//! Subject ids: whom personal data is about.

use std::fmt;

use super::PersonalError;

/// The longest subject id accepted, in bytes of UTF-8 (as for the other identifiers,
/// [`MAX_IDENTIFIER_LEN`](crate::ident::MAX_IDENTIFIER_LEN)).
const MAX_SUBJECT_LEN: usize = crate::ident::MAX_IDENTIFIER_LEN;

/// The subject under which [`kek_check`](super::kek_check) wraps its check value: no
/// application subject may have it ([`Subject::new`] refuses it), so that a store can keep
/// the check beside the data keys.
pub const KEK_CHECK_SUBJECT: &str = "$kek-check";

/// The id of the person (or other party) that personal data is about, and whose data key
/// seals it: one key per subject, destroyed to forget the subject.
///
/// Valid when it is not empty, at most 255 bytes of UTF-8, and holds no control
/// character (NUL included); [`KEK_CHECK_SUBJECT`] is reserved. It is stored in
/// plaintext beside the sealed fields and in the store's key table.
///
/// ```
/// use cqrs_core::personal::Subject;
/// let subject = Subject::new("customer-17")?;
/// assert_eq!(subject.as_str(), "customer-17");
/// assert_eq!(Subject::from_json(&serde_json::json!(17))?.as_str(), "17");
/// assert!(Subject::new("").is_err());
/// # Ok::<(), cqrs_core::personal::PersonalError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject(String);

impl Subject {
    /// Checks and wraps a subject id.
    pub fn new(id: impl Into<String>) -> Result<Self, PersonalError> {
        let id = id.into();
        if id == KEK_CHECK_SUBJECT {
            return Err(invalid(format!(
                "{KEK_CHECK_SUBJECT:?} is reserved for the key-encryption key check"
            )));
        }
        validate(&id)?;
        Ok(Self(id))
    }

    /// The subject id of a JSON value, as an event's subject field holds it: a string as
    /// it is (a `Uuid` serialises as one), an integer as its decimal text. Anything else
    /// (a float, a boolean, null, an array, an object) is refused.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, PersonalError> {
        match value {
            serde_json::Value::String(s) => Self::new(s.as_str()),
            serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => Self::new(n.to_string()),
            other => Err(invalid(format!(
                "a subject id is a JSON string or integer, not {}",
                kind(other)
            ))),
        }
    }

    /// The reserved subject of the key-encryption key check.
    pub(crate) fn kek_check() -> Self {
        Self(KEK_CHECK_SUBJECT.to_owned())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Subject {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn validate(id: &str) -> Result<(), PersonalError> {
    if id.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    if id.len() > MAX_SUBJECT_LEN {
        return Err(invalid(format!(
            "it is {} bytes long; the limit is {MAX_SUBJECT_LEN}",
            id.len()
        )));
    }
    if let Some(at) = id.find(char::is_control) {
        return Err(invalid(format!("it has a control character at byte {at}")));
    }
    Ok(())
}

fn invalid(reason: String) -> PersonalError {
    PersonalError::InvalidSubject { reason }
}

/// The JSON type of a value, for messages (never the value: it may be personal).
pub(super) fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a non-integer number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn valid_and_invalid_ids() {
        assert_eq!(Subject::new("c-1").expect("valid").to_string(), "c-1");
        assert!(Subject::new("ü".repeat(127)).is_ok()); // 254 bytes
        for bad in [
            String::new(),
            "x".repeat(256),
            "a\0b".to_owned(),
            "a\nb".to_owned(),
            "\u{7f}".to_owned(),
            KEK_CHECK_SUBJECT.to_owned(),
        ] {
            assert!(
                matches!(
                    Subject::new(bad.clone()),
                    Err(PersonalError::InvalidSubject { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn from_json_takes_strings_and_integers() {
        let of = |v| Subject::from_json(&v).map(|s| s.as_str().to_owned());
        assert_eq!(of(json!("c-1")), Ok("c-1".to_owned()));
        assert_eq!(of(json!(42)), Ok("42".to_owned()));
        assert_eq!(of(json!(-7)), Ok("-7".to_owned()));
        assert_eq!(of(json!(u64::MAX)), Ok(u64::MAX.to_string()));
        assert_eq!(
            of(json!("67e55044-10b1-426f-9247-bb680e5fe0c8")),
            Ok("67e55044-10b1-426f-9247-bb680e5fe0c8".to_owned())
        );
        for bad in [
            json!(1.5),
            json!(null),
            json!(true),
            json!([]),
            json!({}),
            json!(""),
        ] {
            assert!(of(bad.clone()).is_err(), "{bad} accepted");
        }
    }
}
