//! The event trait.

use super::Upcaster;
use crate::codec::JsonError;
use crate::personal::PersonalField;

/// The name and current schema version of one event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTypeInfo {
    /// Stable name, stored with every event of this type (e.g. `"account.opened"`).
    pub name: &'static str,
    /// Current schema version: what [`DomainEvent::encode`] writes and
    /// [`DomainEvent::decode`] reads.
    pub version: u32,
}

/// Why [`DomainEvent::decode`] could not build an event from its data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The type name is not one of [`DomainEvent::EVENT_TYPES`].
    #[error("unknown event type")]
    UnknownType,
    /// The JSON does not fit the event type.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// A family of events (usually an enum, one variant per event) that can be stored.
///
/// Each variant has a **stable name**, stored beside the data so that renaming a Rust
/// variant does not orphan history, and a **schema version**, so that old data can be
/// upcast on read. The derive generates all of this from the type; by hand, the
/// [`serde_enum`](crate::codec::serde_enum) helpers do the JSON part for a serde enum.
///
/// ```
/// use cqrs_core::codec::serde_enum;
/// use cqrs_core::{DomainEvent, EventTypeInfo, PayloadError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, PartialEq, Serialize, Deserialize)]
/// enum Light {
///     SwitchedOn,
///     Dimmed { percent: u8 },
/// }
///
/// impl DomainEvent for Light {
///     const EVENT_TYPES: &'static [EventTypeInfo] = &[
///         EventTypeInfo { name: "SwitchedOn", version: 1 },
///         EventTypeInfo { name: "Dimmed", version: 1 },
///     ];
///     fn event_type(&self) -> &'static str {
///         match self {
///             Light::SwitchedOn => "SwitchedOn",
///             Light::Dimmed { .. } => "Dimmed",
///         }
///     }
///     fn encode(&self) -> Result<serde_json::Value, cqrs_core::codec::JsonError> {
///         serde_enum::encode(self)
///     }
///     fn decode(event_type: &str, data: &serde_json::Value) -> Result<Self, PayloadError> {
///         serde_enum::decode(event_type, data)
///     }
/// }
///
/// let dimmed = Light::Dimmed { percent: 40 };
/// let data = dimmed.encode()?;
/// assert_eq!(data, serde_json::json!({"percent": 40}));
/// assert_eq!(Light::decode("Dimmed", &data)?, dimmed);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event type: it does not implement `DomainEvent`",
    label = "not an event type",
    note = "add `#[derive(DomainEvent)]` to the event enum or struct (or implement the trait)"
)]
pub trait DomainEvent: Sized + Send + Sync + 'static {
    /// Every event type this family can produce, with its current schema version.
    const EVENT_TYPES: &'static [EventTypeInfo];

    /// Functions that turn data of an older schema version into the next one; the codec
    /// chains them on read. Empty when no event type ever changed.
    const UPCASTERS: &'static [Upcaster] = &[];

    /// The stable name of this event's type. Must be one of [`Self::EVENT_TYPES`].
    fn event_type(&self) -> &'static str;

    /// The data of this event as JSON, without its type name (the envelope carries that).
    ///
    /// Build it with [`codec::to_json`](crate::codec::to_json) (or
    /// [`serde_enum::encode`](crate::codec::serde_enum::encode), which uses it), not with
    /// `serde_json::to_value`: serde_json writes a NaN or an infinity as `null` without an
    /// error, and an event stored that way never decodes again. `to_json` refuses them
    /// with the path of the field ([`JsonError::NonFinite`]).
    fn encode(&self) -> Result<serde_json::Value, JsonError>;

    /// Builds an event of the named type from data at the current schema version.
    fn decode(event_type: &str, data: &serde_json::Value) -> Result<Self, PayloadError>;

    /// The current schema version of this event's type.
    fn event_version(&self) -> u32 {
        Self::version_of(self.event_type()).unwrap_or(1)
    }

    /// The current schema version of a type name, or `None` if the family has no such
    /// type.
    fn version_of(event_type: &str) -> Option<u32> {
        Self::EVENT_TYPES
            .iter()
            .find(|t| t.name == event_type)
            .map(|t| t.version)
    }

    /// The names of all event types of the family.
    fn event_type_names() -> Vec<&'static str> {
        Self::EVENT_TYPES.iter().map(|t| t.name).collect()
    }

    /// The fields of the event type `event_type` that hold personal data, each with the
    /// field that names its subject and the placeholder shown once the subject is
    /// forgotten; empty (the default) for a type with none, or a name not of the family.
    /// Names are the JSON names in the data (after any `#[serde(rename)]`).
    ///
    /// [`codec::encode`](crate::codec::encode) takes these fields out of the data, and a
    /// store seals them with the subject's key, so that forgetting the subject makes them
    /// unreadable (see [`personal`](crate::personal)). The derive generates it from
    /// `#[event(personal(subject = customer_id, forgotten = "[forgotten]"))]` on fields.
    ///
    /// By hand (a `fn` per placeholder, since it is a `fn() -> Value`):
    ///
    /// ```
    /// use cqrs_core::codec::{self, serde_enum};
    /// use cqrs_core::personal::PersonalField;
    /// use cqrs_core::{DomainEvent, EventTypeInfo, Metadata, PayloadError};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize)]
    /// enum Customer {
    ///     Registered { customer_id: String, name: String },
    /// }
    ///
    /// fn forgotten_name() -> serde_json::Value {
    ///     serde_json::json!("[forgotten]")
    /// }
    ///
    /// impl DomainEvent for Customer {
    ///     const EVENT_TYPES: &'static [EventTypeInfo] =
    ///         &[EventTypeInfo { name: "Registered", version: 1 }];
    ///     fn event_type(&self) -> &'static str {
    ///         "Registered"
    ///     }
    ///     fn encode(&self) -> Result<serde_json::Value, codec::JsonError> {
    ///         serde_enum::encode(self)
    ///     }
    ///     fn decode(event_type: &str, data: &serde_json::Value) -> Result<Self, PayloadError> {
    ///         serde_enum::decode(event_type, data)
    ///     }
    ///     fn personal_fields(event_type: &str) -> &'static [PersonalField] {
    ///         const REGISTERED: &[PersonalField] = &[PersonalField {
    ///             field: "name",
    ///             subject: "customer_id",
    ///             forgotten: forgotten_name,
    ///         }];
    ///         match event_type {
    ///             "Registered" => REGISTERED,
    ///             _ => &[],
    ///         }
    ///     }
    /// }
    ///
    /// let registered = Customer::Registered { customer_id: "c-1".into(), name: "Ada".into() };
    /// let new = codec::encode(&registered, Metadata::default())?;
    /// assert_eq!(new.data(), &serde_json::json!({ "customer_id": "c-1" }));
    /// assert_eq!(new.personal()[0].subject.as_str(), "c-1");
    /// assert_eq!(new.personal()[0].forgotten, serde_json::json!("[forgotten]"));
    /// # Ok::<(), codec::EncodeError>(())
    /// ```
    fn personal_fields(event_type: &str) -> &'static [PersonalField] {
        let _ = event_type;
        &[]
    }
}
