//! What every store can hold: JSON that PostgreSQL's `jsonb` accepts and that reads back.
//!
//! Two kinds of JSON are valid for serde but not storable everywhere, and both used to
//! surface late and untyped:
//! - a NUL character (`\u0000`) in a string or an object key: PostgreSQL `jsonb` refuses
//!   it (SQLSTATE 22P05), while the memory store kept it, so a test on memory passed and
//!   production failed;
//! - nesting deeper than serde_json's parser accepts (128 levels): PostgreSQL stored it,
//!   and every later read of the row failed, which stalled every subscription behind it.
//!
//! Every backend checks events and snapshots with [`check_append`] and
//! [`check_snapshot`] before writing, so both are typed errors
//! ([`StoreError::Unstorable`]) on every backend, and nothing is written.
//!
//! A third kind never reaches this check: a NaN or an infinity. A `serde_json::Value`
//! cannot hold one (serde_json turns it into `null` while encoding, without an error), so
//! the codec refuses it while the typed value is still at hand
//! ([`codec::to_json`](crate::codec::to_json), surfacing as
//! [`EngineError::NonFinite`](crate::EngineError::NonFinite)), and the engine does not
//! snapshot a state holding one.

use serde_json::Value;

use super::{Snapshot, StoreError};
use crate::{NewEvent, StreamId};

/// The deepest nesting of arrays and objects accepted in event data, metadata and
/// snapshot state.
///
/// serde_json's parser, which reads the data back from PostgreSQL, refuses 128 levels;
/// 100 leaves room for envelopes that wrap the data (a CloudEvents document adds one
/// level) and for readers with the same limit.
pub const MAX_JSON_DEPTH: usize = 100;

/// Why a JSON value cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnstorableJson {
    /// A string or an object key holds a NUL character, which PostgreSQL `jsonb` and
    /// `text` cannot hold.
    #[error("{what} holds a NUL character (\\u0000), which PostgreSQL cannot store")]
    Nul {
        /// Which value: `"event data"`, `"metadata"`, `"snapshot state"`.
        what: &'static str,
    },
    /// Arrays and objects nested deeper than [`MAX_JSON_DEPTH`].
    #[error("{what} is nested more than {max} levels deep")]
    TooDeep {
        /// Which value.
        what: &'static str,
        /// The limit, [`MAX_JSON_DEPTH`].
        max: usize,
    },
}

/// Checks that `value` can be stored by every backend: no NUL character, at most
/// [`MAX_JSON_DEPTH`] levels of nesting. `what` names the value in the error.
///
/// ```
/// use cqrs_core::store::{check_json, UnstorableJson};
/// assert!(check_json("event data", &serde_json::json!({ "a": ["b"] })).is_ok());
/// assert_eq!(
///     check_json("event data", &serde_json::json!({ "a": "b\u{0}" })),
///     Err(UnstorableJson::Nul { what: "event data" })
/// );
/// ```
pub fn check_json(what: &'static str, value: &Value) -> Result<(), UnstorableJson> {
    check_at(what, value, 0)
}

fn check_at(what: &'static str, value: &Value, depth: usize) -> Result<(), UnstorableJson> {
    let nul = |s: &str| {
        if s.contains('\0') {
            Err(UnstorableJson::Nul { what })
        } else {
            Ok(())
        }
    };
    let inner = depth + 1;
    let too_deep = || UnstorableJson::TooDeep {
        what,
        max: MAX_JSON_DEPTH,
    };
    match value {
        Value::String(s) => nul(s),
        Value::Array(items) => {
            if inner > MAX_JSON_DEPTH {
                return Err(too_deep());
            }
            items.iter().try_for_each(|v| check_at(what, v, inner))
        }
        Value::Object(map) => {
            if inner > MAX_JSON_DEPTH {
                return Err(too_deep());
            }
            map.iter().try_for_each(|(k, v)| {
                nul(k)?;
                check_at(what, v, inner)
            })
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// Checks an event's data, personal values and metadata with [`check_json`]'s rules. The metadata's ids
/// and trace context are valid by construction; its free keys and values are checked.
pub fn check_event(event: &NewEvent) -> Result<(), UnstorableJson> {
    check_json("event data", event.data())?;
    // Personal values are stored sealed, but read back as they are, and their
    // placeholders are stored as they are.
    for value in event.personal() {
        check_json("personal data", &value.value)?;
        check_json("a personal field's placeholder", &value.forgotten)?;
    }
    let nul = event
        .metadata()
        .extra
        .iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'));
    if nul {
        return Err(UnstorableJson::Nul { what: "metadata" });
    }
    Ok(())
}

/// Checks the events of an append to `stream` with [`check_event`]: what a backend calls
/// before it writes anything.
pub fn check_append(stream: &StreamId, events: &[NewEvent]) -> Result<(), StoreError> {
    events
        .iter()
        .try_for_each(check_event)
        .map_err(|reason| unstorable(stream, reason))
}

/// Checks the state of a snapshot of `stream` with [`check_json`]: what a backend calls
/// before it saves it.
pub fn check_snapshot(stream: &StreamId, snapshot: &Snapshot) -> Result<(), StoreError> {
    check_json("snapshot state", &snapshot.state).map_err(|reason| unstorable(stream, reason))
}

fn unstorable(stream: &StreamId, reason: UnstorableJson) -> StoreError {
    StoreError::Unstorable {
        stream: stream.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Metadata;

    fn nested(depth: usize) -> Value {
        (0..depth).fold(json!(1), |v, i| {
            if i % 2 == 0 {
                Value::Array(vec![v])
            } else {
                json!({ "k": v })
            }
        })
    }

    #[test]
    fn accepts_the_deepest_allowed_nesting_and_refuses_one_more() {
        assert_eq!(check_json("x", &nested(MAX_JSON_DEPTH)), Ok(()));
        assert_eq!(
            check_json("x", &nested(MAX_JSON_DEPTH + 1)),
            Err(UnstorableJson::TooDeep {
                what: "x",
                max: MAX_JSON_DEPTH
            })
        );
        // What the limit protects: serde_json reads the allowed depth back.
        let text = nested(MAX_JSON_DEPTH).to_string();
        assert!(serde_json::from_str::<Value>(&text).is_ok());
    }

    #[test]
    fn finds_a_nul_in_strings_keys_and_metadata() {
        for bad in [
            json!("a\u{0}"),
            json!({ "k\u{0}": 1 }),
            json!([[{ "k": ["\u{0}"] }]]),
        ] {
            assert_eq!(
                check_json("event data", &bad),
                Err(UnstorableJson::Nul { what: "event data" })
            );
        }
        for metadata in [
            Metadata::default().with_extra("k\0", "v"),
            Metadata::default().with_extra("k", "v\0"),
        ] {
            let event = NewEvent::new("E", 1, json!({}), metadata).expect("valid type");
            assert_eq!(
                check_event(&event),
                Err(UnstorableJson::Nul { what: "metadata" })
            );
        }
        let fine = NewEvent::new(
            "E",
            1,
            json!({ "": "" }),
            Metadata::default().with_extra("", ""),
        );
        assert_eq!(check_event(&fine.expect("valid type")), Ok(()));
    }
}
