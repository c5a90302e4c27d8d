//! JSON for a serde-derived enum, for implementing [`DomainEvent`](crate::DomainEvent) by
//! hand.
//!
//! serde writes an enum as `{"Variant": data}`; a stored event keeps the name in its
//! envelope and only `data` in its payload. These two functions convert between the two,
//! so that a hand-written `DomainEvent` needs no per-variant code. The serde variant
//! names (after any `#[serde(rename)]`) must equal the event type names.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::PayloadError;

/// Serialises `event` and returns the data of its variant (`null` for a unit variant).
pub fn encode<E: Serialize>(event: &E) -> Result<Value, serde_json::Error> {
    match serde_json::to_value(event)? {
        // A struct, tuple or newtype variant: {"Variant": data}.
        Value::Object(map) if map.len() == 1 => Ok(map
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null)),
        // A unit variant: "Variant".
        Value::String(_) => Ok(Value::Null),
        other => Err(serde::ser::Error::custom(format!(
            "expected an externally tagged enum, got {other}"
        ))),
    }
}

/// Deserialises the variant named `event_type` from its data.
pub fn decode<E: DeserializeOwned>(event_type: &str, data: &Value) -> Result<E, PayloadError> {
    let tagged = if data.is_null() {
        Value::String(event_type.to_owned())
    } else {
        let mut map = serde_json::Map::with_capacity(1);
        map.insert(event_type.to_owned(), data.clone());
        Value::Object(map)
    };
    serde_json::from_value(tagged).map_err(|e| {
        if e.to_string().starts_with("unknown variant") {
            PayloadError::UnknownType
        } else {
            PayloadError::Json(e)
        }
    })
}
