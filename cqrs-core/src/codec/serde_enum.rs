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

use super::json::{self, JsonError};
use crate::PayloadError;

/// Serialises `event` with [`to_json`](super::to_json) and returns the data of its
/// variant (`null` for a unit variant). A path in an error starts inside the variant's
/// data (`amount`, not `Noted.amount`), as the data is stored.
pub fn encode<E: Serialize>(event: &E) -> Result<Value, JsonError> {
    let value = json::encode(event).map_err(|failure| {
        let skip = usize::from(failure.starts_with_variant());
        failure.into_error(skip)
    })?;
    match value {
        // A struct, tuple or newtype variant: {"Variant": data}.
        Value::Object(map) if map.len() == 1 => Ok(map
            .into_iter()
            .next()
            .map(|(_, v)| v)
            .unwrap_or(Value::Null)),
        // A unit variant: "Variant".
        Value::String(_) => Ok(Value::Null),
        other => Err(JsonError::from(
            <serde_json::Error as serde::ser::Error>::custom(format!(
                "expected an externally tagged enum, got {other}"
            )),
        )),
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
        // An unknown variant may be one inside the data (a field of enum type holding a
        // value it does not know): that is invalid data, not an unknown event type. The
        // name alone, without data, tells whether the event type itself is unknown.
        let unknown_type = is_unknown_variant(&e)
            && serde_json::from_value::<E>(Value::String(event_type.to_owned()))
                .err()
                .is_some_and(|probe| is_unknown_variant(&probe));
        if unknown_type {
            PayloadError::UnknownType
        } else {
            PayloadError::Json(e)
        }
    })
}

fn is_unknown_variant(e: &serde_json::Error) -> bool {
    e.to_string().starts_with("unknown variant")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize)]
    enum Currency {
        Eur,
    }

    #[derive(Debug, Deserialize)]
    enum Event {
        Paid { currency: Currency },
        Refunded,
    }

    #[test]
    fn an_unknown_variant_inside_the_data_is_invalid_data_not_an_unknown_type() {
        let nested = decode::<Event>("Paid", &json!({ "currency": "Gbp" }));
        assert!(matches!(nested, Err(PayloadError::Json(_))), "{nested:?}");
        let unknown = decode::<Event>("Vanished", &json!({ "currency": "Eur" }));
        assert!(
            matches!(unknown, Err(PayloadError::UnknownType)),
            "{unknown:?}"
        );
        let known = decode::<Event>("Paid", &json!({ "currency": "Eur" }));
        assert!(matches!(
            known,
            Ok(Event::Paid {
                currency: Currency::Eur
            })
        ));
        assert!(decode::<Event>("Refunded", &Value::Null).is_ok());
    }
}
