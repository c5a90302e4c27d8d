//! Personal values on their way to being sealed, and the declarations that name them.

use std::fmt;

use super::Subject;

/// One personal field of an event, taken out of its data and not yet sealed: what
/// [`codec::encode`](crate::codec::encode) attaches to a [`NewEvent`](crate::NewEvent)
/// ([`NewEvent::personal`](crate::NewEvent::personal)) and
/// [`seal`](super::seal) moves into the data, encrypted.
///
/// Its `Debug` does not show `value`.
#[derive(Clone, PartialEq)]
pub struct PersonalValue {
    /// Whom the value is about: its data key seals it.
    pub subject: Subject,
    /// The field's name in the event's JSON data.
    pub field: String,
    /// The value, as JSON: the personal data itself.
    pub value: serde_json::Value,
    /// What every read shows in its place once the subject is forgotten (stored in
    /// plaintext: it is not personal, it is what the event type declared).
    pub forgotten: serde_json::Value,
}

impl PersonalValue {
    /// A value of `field` about `subject`, with its placeholder.
    pub fn new(
        subject: Subject,
        field: impl Into<String>,
        value: serde_json::Value,
        forgotten: serde_json::Value,
    ) -> Self {
        Self {
            subject,
            field: field.into(),
            value,
            forgotten,
        }
    }
}

impl fmt::Debug for PersonalValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalValue")
            .field("subject", &self.subject)
            .field("field", &self.field)
            .field("value", &format_args!("<redacted>"))
            .field("forgotten", &self.forgotten)
            .finish()
    }
}

/// A field of an event type declared personal data about a subject: what
/// [`DomainEvent::personal_fields`](crate::DomainEvent::personal_fields) returns, and
/// what `#[event(personal(subject = ...))]` on a field generates.
///
/// Both names are the JSON names of the fields in the event's data (after any
/// `#[serde(rename)]`).
#[derive(Debug, Clone, Copy)]
pub struct PersonalField {
    /// The personal field.
    pub field: &'static str,
    /// The field that holds the subject id (a JSON string or integer,
    /// [`Subject::from_json`]); it is not personal itself.
    pub subject: &'static str,
    /// The placeholder shown in the field's place once the subject is forgotten. It
    /// should decode as the field's type, or a forgotten event no longer decodes.
    pub forgotten: fn() -> serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_show_the_value() {
        let value = PersonalValue::new(
            Subject::new("c-1").expect("valid"),
            "name",
            serde_json::json!("Ada Lovelace"),
            serde_json::json!("[forgotten]"),
        );
        let shown = format!("{value:?} {value:#?}");
        assert!(!shown.contains("Ada"), "{shown}");
        assert!(shown.contains("c-1") && shown.contains("name") && shown.contains("[forgotten]"));
        assert_eq!(value.clone(), value);
    }
}
