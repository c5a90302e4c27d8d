//! Metadata carried by every event: correlation, causation, trace context and free
//! key/values.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an event carries besides its data: where it came from and why.
///
/// - `correlation_id` ties together everything one user action caused, across
///   aggregates and process managers. The engine gives each command a fresh one when the
///   caller passes none, so every event has one.
/// - `causation_id` names the immediate cause: the id of the event (or command) that led
///   to this event.
/// - `traceparent` is the W3C trace context of the request that wrote the event, so
///   that a trace can continue through a subscription.
/// - `extra` holds application key/values (user id, tenant, client version).
///
/// ```
/// use cqrs_core::Metadata;
/// let metadata = Metadata::default()
///     .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?)
///     .with_extra("user", "alice");
/// assert_eq!(metadata.extra["user"], "alice");
/// # Ok::<(), cqrs_core::envelope::InvalidTraceParent>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Ties together all events caused by one original request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The id of the event or command that directly caused this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The id of the command that wrote this event, when the caller gave one: a command
    /// repeated with the same id returns the events of the first one instead of running
    /// again (see [`Engine::execute_with_metadata`](crate::Engine::execute_with_metadata)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<Uuid>,
    /// W3C trace context of the writer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceParent>,
    /// Free application key/values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

impl Metadata {
    /// Sets the correlation id.
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Sets the command id, making the command idempotent: executed again with the same
    /// id, it returns what it wrote the first time.
    pub fn with_command_id(mut self, id: Uuid) -> Self {
        self.command_id = Some(id);
        self
    }

    /// Sets the W3C trace context.
    pub fn with_traceparent(mut self, traceparent: TraceParent) -> Self {
        self.traceparent = Some(traceparent);
        self
    }

    /// Adds one application key/value.
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

/// A W3C `traceparent` header value (`version-traceid-parentid-flags`), checked on parse.
///
/// ```
/// use cqrs_core::envelope::TraceParent;
/// let tp: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".parse()?;
/// assert_eq!(tp.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert!("not a trace".parse::<TraceParent>().is_err());
/// # Ok::<(), cqrs_core::envelope::InvalidTraceParent>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceParent(String);

/// A string that is not a valid W3C `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid traceparent {0:?}: expected `00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero")]
pub struct InvalidTraceParent(pub String);

impl TraceParent {
    /// The 32-hex-digit trace id.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }

    /// The 16-hex-digit id of the parent span.
    pub fn parent_id(&self) -> &str {
        &self.0[36..52]
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TraceParent {
    type Err = InvalidTraceParent;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower_hex = |part: &str, len: usize| {
            part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        };
        let not_zero = |part: &str| part.bytes().any(|b| b != b'0');
        let parts: Vec<&str> = s.split('-').collect();
        let valid = match parts.as_slice() {
            [version, trace, parent, flags] => {
                lower_hex(version, 2)
                    && *version != "ff"
                    && lower_hex(trace, 32)
                    && not_zero(trace)
                    && lower_hex(parent, 16)
                    && not_zero(parent)
                    && lower_hex(flags, 2)
            }
            _ => false,
        };
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidTraceParent(s.to_owned()))
        }
    }
}

impl TryFrom<String> for TraceParent {
    type Error = InvalidTraceParent;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<TraceParent> for String {
    fn from(value: TraceParent) -> Self {
        value.0
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_json_and_omits_empty_fields() {
        let empty = serde_json::to_value(Metadata::default()).unwrap();
        assert_eq!(empty, serde_json::json!({}));
        let full = Metadata::default()
            .with_correlation_id(Uuid::nil())
            .with_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                    .parse()
                    .unwrap(),
            )
            .with_extra("k", "v");
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(serde_json::from_value::<Metadata>(json).unwrap(), full);
    }

    #[test]
    fn traceparent_rejects_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?} accepted");
        }
        let bad_json = serde_json::json!({ "traceparent": "nope" });
        assert!(serde_json::from_value::<Metadata>(bad_json).is_err());
    }
}
