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
/// - `traceparent` and `tracestate` are the W3C trace context of the command that wrote
///   the event, so that a trace continues through every handling of it (a subscription,
///   a process manager, the bus): see [`observe`](crate::observe). A malformed value
///   read back (from a database or a bus) is dropped with a warning, never an error:
///   trace context is for following a request, not worth losing an event over.
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub traceparent: Option<TraceParent>,
    /// The vendors' part of the W3C trace context, carried with `traceparent`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub tracestate: Option<TraceState>,
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

    /// Sets the vendors' part of the W3C trace context.
    pub fn with_tracestate(mut self, tracestate: TraceState) -> Self {
        self.tracestate = Some(tracestate);
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
/// assert_eq!(tp.parent_id(), "00f067aa0ba902b7");
/// assert_eq!(tp.flags(), "01");
/// assert!("not a trace".parse::<TraceParent>().is_err());
/// # Ok::<(), cqrs_core::envelope::InvalidTraceParent>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceParent(Box<str>); // not a String: every event's metadata holds the Option

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

    /// The 2-hex-digit trace flags (`01`: sampled).
    pub fn flags(&self) -> &str {
        &self.0[53..55]
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
            Ok(Self(s.into()))
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
        value.0.into()
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

/// A W3C `tracestate` header value: up to 32 comma-separated `key=value` members with
/// the keys and values the W3C Trace Context recommendation allows, at most 512 bytes;
/// checked on parse.
///
/// ```
/// use cqrs_core::envelope::TraceState;
/// let ts: TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".parse()?;
/// assert_eq!(ts.as_str(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
/// assert!("no equals sign".parse::<TraceState>().is_err());
/// # Ok::<(), cqrs_core::envelope::InvalidTraceState>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceState(Box<str>); // not a String: every event's metadata holds the Option

/// A string that is not a valid W3C `tracestate`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tracestate {0:?}: expected at most 32 `key=value` members, at most 512 bytes")]
pub struct InvalidTraceState(pub String);

impl TraceState {
    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TraceState {
    type Err = InvalidTraceState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key_char = |c: char| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-' | '*' | '/' | '@');
        let member = |m: &str| {
            let Some((key, value)) = m.trim_matches([' ', '\t']).split_once('=') else {
                return false;
            };
            let key_ok = (1..=256).contains(&key.len())
                && key.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && key.chars().all(key_char)
                && key.matches('@').count() <= 1;
            let value_ok = (1..=256).contains(&value.len())
                && value
                    .bytes()
                    .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
                && !value.ends_with(' ');
            key_ok && value_ok
        };
        let members: Vec<&str> = s.split(',').collect();
        if !s.is_empty()
            && s.len() <= 512
            && members.len() <= 32
            && members.iter().all(|m| member(m))
        {
            Ok(Self(s.into()))
        } else {
            Err(InvalidTraceState(s.to_owned()))
        }
    }
}

impl TryFrom<String> for TraceState {
    type Error = InvalidTraceState;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<TraceState> for String {
    fn from(value: TraceState) -> Self {
        value.0.into()
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({})", self.0)
    }
}

/// Reads a trace-context field, dropping a malformed value with a warning: metadata read
/// back from a store or a bus is never refused for its trace context, and the handling of
/// the event starts a fresh trace instead.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Field {
        Text(String),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Option::<Field>::deserialize(deserializer)? {
        None => None,
        Some(Field::Text(value)) => parse_or_warn(&value),
        Some(Field::Other(_)) => {
            tracing::warn!("trace context ignored (not a string): a fresh trace starts here");
            None
        }
    })
}

/// `value` parsed, or `None` with a warning naming why: for trace context arriving from
/// outside (a stored event, a message, a request header).
pub(crate) fn parse_or_warn<T>(value: &str) -> Option<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match value.parse() {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            tracing::warn!(%error, "trace context ignored: a fresh trace starts here");
            None
        }
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
    }

    #[test]
    fn malformed_trace_context_read_back_is_dropped_not_refused() {
        let bad = serde_json::json!({
            "traceparent": "nope",
            "tracestate": "no equals",
            "correlation_id": Uuid::nil(),
        });
        let metadata: Metadata = serde_json::from_value(bad).expect("read anyway");
        assert_eq!(metadata.traceparent, None);
        assert_eq!(metadata.tracestate, None);
        assert_eq!(metadata.correlation_id, Some(Uuid::nil()));
        let not_a_string = serde_json::json!({ "traceparent": 7, "tracestate": {} });
        let metadata: Metadata = serde_json::from_value(not_a_string).expect("read anyway");
        assert_eq!((metadata.traceparent, metadata.tracestate), (None, None));
    }

    #[test]
    fn tracestate_accepts_the_recommendation_s_examples_and_refuses_the_rest() {
        for good in [
            "rojo=00f067aa0ba902b7",
            "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
            "a@vendor=x",
        ] {
            assert!(good.parse::<TraceState>().is_ok(), "{good:?} refused");
        }
        let too_many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        for bad in ["", "=v", "Key=v", "k=", "k=a,b", "k=a=b", too_many.as_str()] {
            assert!(bad.parse::<TraceState>().is_err(), "{bad:?} accepted");
        }
    }
}
