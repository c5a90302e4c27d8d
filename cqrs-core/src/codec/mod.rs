//! Typed events <-> stored events (JSON), with upcasting on read.
//!
//! Writing encodes the current version of an event. Reading looks up the stored type,
//! refuses a version newer than the code knows (an old binary must not misread new
//! data), runs the [upcaster](crate::Upcaster) chain from the stored version to the current one,
//! then decodes. Every failure names the stream, the stream version and the event type,
//! because "cannot decode event" without those is useless at 3 a.m.

pub(crate) mod json;
pub mod serde_enum;
mod upcast;

use std::borrow::Cow;

use crate::personal::{PersonalError, PersonalField, PersonalValue, Subject};
use crate::{DomainEvent, Envelope, Metadata, NewEvent, PayloadError, StoredEvent, StreamId};

pub use json::{to_json, JsonError};

/// Why a stored event could not be turned into a typed one.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode event {event_type:?} v{event_version} at {stream} version {stream_version}: {kind}")]
pub struct DecodeError {
    /// The stream the event belongs to.
    pub stream: StreamId,
    /// Its version within the stream.
    pub stream_version: u64,
    /// Its stored type name.
    pub event_type: String,
    /// Its stored schema version.
    pub event_version: u32,
    /// What went wrong.
    #[source]
    pub kind: DecodeErrorKind,
}

/// What went wrong in a [`DecodeError`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The code knows no event type by this name.
    #[error("unknown event type")]
    UnknownEventType,
    /// The stored version is newer than the code's: a newer binary wrote it.
    #[error("schema version {stored} is newer than the current version {current}")]
    UnknownVersion {
        /// The stored version.
        stored: u32,
        /// The version the code knows.
        current: u32,
    },
    /// The stored version is older, and no upcaster goes on from `from_version`.
    #[error("no upcaster from version {from_version} (current version is {current})")]
    MissingUpcaster {
        /// The version with no way forward.
        from_version: u32,
        /// The version the code knows.
        current: u32,
    },
    /// An upcaster refused the data.
    #[error("upcaster from version {from_version} failed: {reason}")]
    UpcasterFailed {
        /// The version it started from.
        from_version: u32,
        /// Its message.
        reason: String,
    },
    /// The data does not fit the current schema. A `null` where a float is expected
    /// says what probably happened: earlier versions of this crate stored a NaN or an
    /// infinity as `null` (see [`JsonError::NonFinite`]); an upcaster can map it.
    #[error("invalid data: {0}{hint}", hint = null_float_hint(.0))]
    InvalidData(#[source] serde_json::Error),
}

/// The hint for data that has `null` where a float is expected.
fn null_float_hint(error: &serde_json::Error) -> &'static str {
    let text = error.to_string();
    let null_for_float = ["f64", "f32"]
        .iter()
        .any(|float| text.starts_with(&format!("invalid type: null, expected {float}")));
    if null_for_float {
        " (a float stored as null: versions of cqrs-core before NaN and infinities were \
         refused stored them as null; an upcaster can map the null to a value the current \
         version reads, see the guide's chapter on events, \"Versions and upcasting\")"
    } else {
        ""
    }
}

/// Why a typed event could not be encoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The data cannot be turned into JSON that reads back as it was: a NaN or an
    /// infinity in a float field ([`JsonError::NonFinite`], with its path), a map with
    /// keys that are not strings, an integer beyond 64 bits, a failing `Serialize` impl.
    #[error("cannot encode event {event_type:?}: {source}")]
    Json {
        /// The event type.
        event_type: &'static str,
        /// What is wrong, and where in the data.
        #[source]
        source: JsonError,
    },
    /// The event type name is not a valid identifier.
    #[error("invalid event type name: {0}")]
    InvalidName(#[from] crate::ident::IdentifierError),
    /// A personal field's subject cannot be read: the subject field is missing, is not
    /// a JSON string or integer, or is not a valid [`Subject`]
    /// ([`DomainEvent::personal_fields`]).
    #[error("cannot encode event {event_type:?}: {source}")]
    Personal {
        /// The event type.
        event_type: &'static str,
        /// What is wrong.
        #[source]
        source: PersonalError,
    },
}

/// Encodes a typed event for appending.
///
/// The fields its type declares personal ([`DomainEvent::personal_fields`]) are taken
/// out of the data and attached to the event as [`PersonalValue`]s
/// ([`NewEvent::personal`]), each with the subject read from its subject field, for the
/// store to seal ([`NewEvent::seal`]); a declared field missing from the data (skipped by
/// serde) has nothing to seal.
///
/// ```
/// # use cqrs_core::codec::{self, serde_enum};
/// # use cqrs_core::{DomainEvent, EventTypeInfo, Metadata, PayloadError};
/// # #[derive(serde::Serialize, serde::Deserialize)]
/// # enum E { Happened { n: u32 } }
/// # impl DomainEvent for E {
/// #     const EVENT_TYPES: &'static [EventTypeInfo] = &[EventTypeInfo { name: "Happened", version: 1 }];
/// #     fn event_type(&self) -> &'static str { "Happened" }
/// #     fn encode(&self) -> Result<serde_json::Value, codec::JsonError> { serde_enum::encode(self) }
/// #     fn decode(t: &str, d: &serde_json::Value) -> Result<Self, PayloadError> { serde_enum::decode(t, d) }
/// # }
/// let new = codec::encode(&E::Happened { n: 1 }, Metadata::default())?;
/// assert_eq!(new.event_type(), "Happened");
/// assert_eq!(new.data(), &serde_json::json!({"n": 1}));
/// assert!(new.personal().is_empty());
/// # Ok::<(), codec::EncodeError>(())
/// ```
pub fn encode<E: DomainEvent>(event: &E, metadata: Metadata) -> Result<NewEvent, EncodeError> {
    let event_type = event.event_type();
    let mut data = event
        .encode()
        .map_err(|source| EncodeError::Json { event_type, source })?;
    let fields = E::personal_fields(event_type);
    let personal = if fields.is_empty() {
        Vec::new()
    } else {
        take_personal(&mut data, fields)
            .map_err(|source| EncodeError::Personal { event_type, source })?
    };
    let new = NewEvent::new(event_type, event.event_version(), data, metadata)?;
    Ok(personal.into_iter().fold(new, NewEvent::with_personal))
}

/// Takes the personal `fields` out of `data`, with their subjects; `data` is unchanged on
/// an error.
fn take_personal(
    data: &mut serde_json::Value,
    fields: &[PersonalField],
) -> Result<Vec<PersonalValue>, PersonalError> {
    let serde_json::Value::Object(map) = data else {
        return Err(PersonalError::Malformed {
            reason: "an event with personal fields must encode as a JSON object".to_owned(),
        });
    };
    // Every subject first, so that a failure leaves the data whole.
    let mut subjects = Vec::with_capacity(fields.len());
    for entry in fields {
        if fields.iter().any(|f| f.field == entry.subject) {
            return Err(PersonalError::InvalidSubject {
                reason: format!(
                    "the subject field {:?} is itself personal, and a subject id is stored \
                     in plaintext",
                    entry.subject
                ),
            });
        }
        let subject = match map.get(entry.subject) {
            Some(value) => Subject::from_json(value).map_err(|e| match e {
                PersonalError::InvalidSubject { reason } => PersonalError::InvalidSubject {
                    reason: format!("field {:?}: {reason}", entry.subject),
                },
                other => other,
            })?,
            None => {
                return Err(PersonalError::InvalidSubject {
                    reason: format!(
                        "the data has no subject field {:?} (for the personal field {:?})",
                        entry.subject, entry.field
                    ),
                })
            }
        };
        subjects.push(subject);
    }
    Ok(fields
        .iter()
        .zip(subjects)
        .filter_map(|(entry, subject)| {
            let value = map.remove(entry.field)?;
            Some(PersonalValue::new(
                subject,
                entry.field,
                value,
                (entry.forgotten)(),
            ))
        })
        .collect())
}

/// Decodes the data of a stored event into the current typed event, upcasting as needed.
/// The stored event is not changed.
pub fn decode_data<E: DomainEvent>(stored: &StoredEvent) -> Result<E, DecodeError> {
    let fail = |kind| DecodeError {
        stream: stored.stream.clone(),
        stream_version: stored.stream_version,
        event_type: stored.event_type.clone(),
        event_version: stored.event_version,
        kind,
    };
    let current =
        E::version_of(&stored.event_type).ok_or_else(|| fail(DecodeErrorKind::UnknownEventType))?;
    let data: Cow<'_, serde_json::Value> = match stored.event_version.cmp(&current) {
        std::cmp::Ordering::Equal => Cow::Borrowed(&stored.data),
        std::cmp::Ordering::Greater => {
            return Err(fail(DecodeErrorKind::UnknownVersion {
                stored: stored.event_version,
                current,
            }))
        }
        std::cmp::Ordering::Less => Cow::Owned(
            upcast::run_chain(
                E::UPCASTERS,
                &stored.event_type,
                stored.event_version,
                current,
                stored.data.clone(),
            )
            .map_err(fail)?,
        ),
    };
    E::decode(&stored.event_type, &data).map_err(|e| {
        fail(match e {
            PayloadError::UnknownType => DecodeErrorKind::UnknownEventType,
            PayloadError::Json(e) => DecodeErrorKind::InvalidData(e),
        })
    })
}

/// Decodes a stored event into a typed envelope, upcasting as needed.
pub fn decode<E: DomainEvent>(stored: &StoredEvent) -> Result<Envelope<E>, DecodeError> {
    let data = decode_data::<E>(stored)?;
    Ok(stored.with_data(data))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::{EventTypeInfo, Position, Upcaster};

    /// At version 3 with only the 2 -> 3 upcaster: version-1 data has no way forward.
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    enum Gap {
        Moved { to: u32 },
        Tagged { tags: BTreeMap<Vec<u8>, u8> },
    }

    fn v2_to_v3(data: serde_json::Value) -> Result<serde_json::Value, String> {
        Ok(data)
    }

    impl DomainEvent for Gap {
        const EVENT_TYPES: &'static [EventTypeInfo] = &[
            EventTypeInfo {
                name: "Moved",
                version: 3,
            },
            EventTypeInfo {
                name: "Tagged",
                version: 1,
            },
        ];
        const UPCASTERS: &'static [Upcaster] = &[Upcaster::new("Moved", 2, v2_to_v3)];

        fn event_type(&self) -> &'static str {
            match self {
                Gap::Moved { .. } => "Moved",
                Gap::Tagged { .. } => "Tagged",
            }
        }

        fn encode(&self) -> Result<serde_json::Value, JsonError> {
            serde_enum::encode(self)
        }

        fn decode(event_type: &str, data: &serde_json::Value) -> Result<Self, PayloadError> {
            serde_enum::decode(event_type, data)
        }
    }

    fn stored(event_version: u32, data: serde_json::Value) -> StoredEvent {
        NewEvent::new("Moved", event_version, data, Metadata::default())
            .expect("valid")
            .into_stored(
                StreamId::new("mover", "m").expect("valid"),
                4,
                Position::from_parts(1, 1),
                chrono::Utc::now(),
            )
    }

    #[test]
    fn a_gap_in_the_upcaster_chain_is_a_typed_error() {
        let err = decode::<Gap>(&stored(1, json!({ "to": 1 }))).expect_err("no 1 -> 2 upcaster");
        assert!(
            matches!(
                err.kind,
                DecodeErrorKind::MissingUpcaster {
                    from_version: 1,
                    current: 3
                }
            ),
            "got {:?}",
            err.kind
        );
        assert_eq!((err.stream_version, err.event_type.as_str()), (4, "Moved"));
        let upcast = decode::<Gap>(&stored(2, json!({ "to": 7 }))).expect("2 -> 3 exists");
        assert!(matches!(upcast.data, Gap::Moved { to: 7 }));
    }

    #[test]
    fn a_null_where_a_float_is_expected_gets_a_hint() {
        #[derive(Debug, serde::Deserialize)]
        struct Reading {
            _celsius: f64,
            _factor: f32,
            _count: u32,
        }
        let null_at = |field: &str| {
            let mut data = json!({ "_celsius": 1.0, "_factor": 1.0, "_count": 1 });
            data[field] = serde_json::Value::Null;
            let error = serde_json::from_value::<Reading>(data).expect_err("a null");
            DecodeErrorKind::InvalidData(error).to_string()
        };
        for float in ["_celsius", "_factor"] {
            let message = null_at(float);
            assert!(message.contains("expected f"), "{message}");
            assert!(message.contains("stored them as null"), "{message}");
        }
        let message = null_at("_count");
        assert!(!message.contains("stored them as null"), "{message}");
    }

    /// A hand-written event with personal fields: `Registered` has `name` and `email`
    /// about `customer_id`; `Odd` declares a subject field that is missing, `Bad` one
    /// that is a float.
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    enum Customer {
        Registered {
            customer_id: u64,
            name: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            email: Option<String>,
        },
        Odd {
            name: String,
        },
        Bad {
            customer_id: f64,
            name: String,
        },
    }

    fn gone() -> serde_json::Value {
        json!("[gone]")
    }

    fn null() -> serde_json::Value {
        serde_json::Value::Null
    }

    impl DomainEvent for Customer {
        const EVENT_TYPES: &'static [EventTypeInfo] = &[
            EventTypeInfo {
                name: "Registered",
                version: 1,
            },
            EventTypeInfo {
                name: "Odd",
                version: 1,
            },
            EventTypeInfo {
                name: "Bad",
                version: 1,
            },
        ];

        fn event_type(&self) -> &'static str {
            match self {
                Customer::Registered { .. } => "Registered",
                Customer::Odd { .. } => "Odd",
                Customer::Bad { .. } => "Bad",
            }
        }

        fn encode(&self) -> Result<serde_json::Value, JsonError> {
            serde_enum::encode(self)
        }

        fn decode(event_type: &str, data: &serde_json::Value) -> Result<Self, PayloadError> {
            serde_enum::decode(event_type, data)
        }

        fn personal_fields(event_type: &str) -> &'static [PersonalField] {
            const NAME: PersonalField = PersonalField {
                field: "name",
                subject: "customer_id",
                forgotten: gone,
            };
            match event_type {
                "Registered" => &[
                    NAME,
                    PersonalField {
                        field: "email",
                        subject: "customer_id",
                        forgotten: null,
                    },
                ],
                "Odd" | "Bad" => &[NAME],
                _ => &[],
            }
        }
    }

    #[test]
    fn personal_fields_are_taken_out_of_the_data() {
        let event = Customer::Registered {
            customer_id: 17,
            name: "Ada".into(),
            email: Some("ada@example.com".into()),
        };
        let new = encode(&event, Metadata::default()).expect("encoded");
        assert_eq!(new.data(), &json!({ "customer_id": 17 }));
        let subject = Subject::new("17").expect("valid");
        assert_eq!(
            new.personal(),
            [
                PersonalValue::new(subject.clone(), "name", json!("Ada"), json!("[gone]")),
                PersonalValue::new(
                    subject.clone(),
                    "email",
                    json!("ada@example.com"),
                    serde_json::Value::Null
                ),
            ]
        );

        // A field serde skipped has nothing to seal.
        let event = Customer::Registered {
            customer_id: 17,
            name: "Ada".into(),
            email: None,
        };
        let new = encode(&event, Metadata::default()).expect("encoded");
        assert_eq!(new.data(), &json!({ "customer_id": 17 }));
        assert_eq!(new.personal().len(), 1);
    }

    #[test]
    fn a_subject_missing_or_not_an_id_is_an_encode_error() {
        let odd = encode(&Customer::Odd { name: "Ada".into() }, Metadata::default());
        match odd {
            Err(EncodeError::Personal {
                event_type: "Odd",
                source: PersonalError::InvalidSubject { reason },
            }) => assert!(
                reason.contains("no subject field \"customer_id\""),
                "{reason}"
            ),
            other => panic!("expected a missing subject, got {other:?}"),
        }
        let bad = Customer::Bad {
            customer_id: 1.5,
            name: "Ada".into(),
        };
        let err = encode(&bad, Metadata::default()).expect_err("a float subject");
        assert!(
            matches!(
                &err,
                EncodeError::Personal {
                    event_type: "Bad",
                    source: PersonalError::InvalidSubject { .. }
                }
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains("Ada"), "{err}");
    }

    #[test]
    fn an_event_that_does_not_serialise_is_an_encode_error() {
        let tags = BTreeMap::from([(vec![1u8], 1u8)]);
        match encode(&Gap::Tagged { tags }, Metadata::default()) {
            Err(EncodeError::Json {
                event_type: "Tagged",
                ..
            }) => {}
            other => panic!("expected an encode error, got {other:?}"),
        }
    }
}
