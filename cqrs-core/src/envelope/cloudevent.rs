//! Export of a stored event as a CloudEvents 1.0 JSON document.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::{parse_or_warn, StoredEvent};

/// The attributes this framework writes besides the free metadata keys, in the order it
/// writes them (CloudEvents' own, then its extensions). A free metadata key with one of
/// these names is left out, so it cannot overwrite them.
const ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "streamtype",
    "streamversion",
    "eventversion",
    "position",
    "correlationid",
    "causationid",
    "commandid",
    "traceparent",
    "tracestate",
];

impl StoredEvent {
    /// The event as a [CloudEvents 1.0](https://github.com/cloudevents/spec) JSON document
    /// (structured mode), for publishing to a broker or a webhook.
    ///
    /// `source` is `/{stream type}/{stream id}` (percent-encoded), `subject` the stream
    /// id, `type` the event type, `data` the payload as stored. The envelope travels as
    /// extension attributes: `streamtype`, `streamversion`, `eventversion`, `position`
    /// (`commit.sequence` in the store it came from), `correlationid`, `causationid`,
    /// `commandid`, and `traceparent` and `tracestate` from the Distributed Tracing
    /// extension. Free
    /// metadata keys become extensions too when they are valid extension names (lower-case
    /// letters and digits, at most 20) and not one of those; others are left out, because
    /// CloudEvents forbids them. [`StoredEvent::from_cloudevent`] reads it back.
    ///
    /// ```
    /// # use cqrs_core::{Envelope, Metadata, Position, StreamId};
    /// let event = Envelope {
    ///     event_id: uuid::Uuid::nil(),
    ///     stream: StreamId::new("account", "alice")?,
    ///     stream_version: 1,
    ///     position: Position::from_parts(1, 1),
    ///     event_type: "account.opened".into(),
    ///     event_version: 1,
    ///     recorded_at: chrono::Utc::now(),
    ///     metadata: Metadata::default(),
    ///     data: serde_json::json!({"owner": "Alice"}),
    /// };
    /// let ce = event.to_cloudevent();
    /// assert_eq!(ce["specversion"], "1.0");
    /// assert_eq!(ce["type"], "account.opened");
    /// assert_eq!(ce["source"], "/account/alice");
    /// # Ok::<(), cqrs_core::ident::IdentifierError>(())
    /// ```
    pub fn to_cloudevent(&self) -> Value {
        let mut doc: Map<String, Value> = self
            .cloudevent_attributes()
            .into_iter()
            .map(|(name, value)| {
                let value = match value {
                    Attribute::Text(text) => Value::String(text.into_owned()),
                    Attribute::Number(n) => Value::from(n),
                };
                (name.into_owned(), value)
            })
            .collect();
        doc.insert("data".into(), self.data.clone());
        Value::Object(doc)
    }

    /// The CloudEvents attributes of the event (all of [`to_cloudevent`](Self::to_cloudevent)
    /// but `data`), by name: what a broker's binary content mode sends as headers.
    pub fn cloudevent_attributes(&self) -> Vec<(Cow<'static, str>, Attribute<'_>)> {
        let text = |s: &'static str| Attribute::Text(Cow::Borrowed(s));
        let mut attributes: Vec<(Cow<'static, str>, Attribute<'_>)> = Vec::with_capacity(16);
        let mut push = |name: &'static str, value| attributes.push((Cow::Borrowed(name), value));
        push("specversion", text("1.0"));
        push("id", Attribute::Text(Cow::Owned(self.event_id.to_string())));
        push(
            "source",
            Attribute::Text(Cow::Owned(format!(
                "/{}/{}",
                percent_encode(self.stream.stream_type()),
                percent_encode(self.stream.id())
            ))),
        );
        push("type", Attribute::Text(Cow::Borrowed(&self.event_type)));
        push("subject", Attribute::Text(Cow::Borrowed(self.stream.id())));
        push(
            "time",
            Attribute::Text(Cow::Owned(
                self.recorded_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            )),
        );
        push("datacontenttype", text("application/json"));
        push(
            "streamtype",
            Attribute::Text(Cow::Borrowed(self.stream.stream_type())),
        );
        push("streamversion", Attribute::Number(self.stream_version));
        push(
            "eventversion",
            Attribute::Number(u64::from(self.event_version)),
        );
        push(
            "position",
            Attribute::Text(Cow::Owned(self.position.to_string())),
        );
        let ids = [
            ("correlationid", self.metadata.correlation_id),
            ("causationid", self.metadata.causation_id),
            ("commandid", self.metadata.command_id),
        ];
        for (name, id) in ids {
            if let Some(id) = id {
                push(name, Attribute::Text(Cow::Owned(id.to_string())));
            }
        }
        if let Some(tp) = &self.metadata.traceparent {
            push("traceparent", Attribute::Text(Cow::Borrowed(tp.as_str())));
        }
        if let Some(ts) = &self.metadata.tracestate {
            push("tracestate", Attribute::Text(Cow::Borrowed(ts.as_str())));
        }
        for (key, value) in &self.metadata.extra {
            if is_extension_name(key) && !ATTRIBUTES.contains(&key.as_str()) {
                attributes.push((
                    Cow::Owned(key.clone()),
                    Attribute::Text(Cow::Borrowed(value)),
                ));
            }
        }
        attributes
    }

    /// Reads back a CloudEvents JSON document (structured mode) that
    /// [`to_cloudevent`](Self::to_cloudevent) wrote: the event as it was stored, with its
    /// metadata (free keys that were valid extension names included).
    ///
    /// Anything else is refused with a typed [`CloudEventError`] naming the attribute: a
    /// document that is not a CloudEvent, another spec version, a missing or invalid
    /// attribute (a CloudEvent from another publisher lacks this framework's extensions).
    ///
    /// ```
    /// # use cqrs_core::{Envelope, Metadata, Position, StoredEvent, StreamId};
    /// # let event = Envelope {
    /// #     event_id: uuid::Uuid::now_v7(),
    /// #     stream: StreamId::new("account", "alice")?,
    /// #     stream_version: 1,
    /// #     position: Position::from_parts(1, 1),
    /// #     event_type: "account.opened".into(),
    /// #     event_version: 1,
    /// #     recorded_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap(),
    /// #     metadata: Metadata::default().with_extra("tenant", "acme"),
    /// #     data: serde_json::json!({"owner": "Alice"}),
    /// # };
    /// let back = StoredEvent::from_cloudevent(&event.to_cloudevent())?;
    /// assert_eq!(back, event);
    /// assert!(StoredEvent::from_cloudevent(&serde_json::json!({"id": "1"})).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_cloudevent(doc: &Value) -> Result<StoredEvent, CloudEventError> {
        let Value::Object(doc) = doc else {
            return Err(CloudEventError::NotACloudEvent(
                "not a JSON object".to_owned(),
            ));
        };
        let data = doc.get("data").cloned().unwrap_or(Value::Null);
        Self::from_cloudevent_attributes(
            |name| doc.get(name).map(attribute_text),
            doc.keys().map(String::as_str),
            data,
        )
    }

    /// Reads an event back from its CloudEvents attributes (`attribute` returns one by
    /// name, as text; `names` lists every attribute present, for the free metadata keys)
    /// and its `data`: what a broker's binary content mode receives as headers and body.
    pub fn from_cloudevent_attributes<'a>(
        attribute: impl Fn(&str) -> Option<String>,
        names: impl IntoIterator<Item = &'a str>,
        data: Value,
    ) -> Result<StoredEvent, CloudEventError> {
        let required = |name: &'static str| attribute(name).ok_or(CloudEventError::Missing(name));
        let spec = attribute("specversion").ok_or_else(|| {
            CloudEventError::NotACloudEvent("no `specversion` attribute".to_owned())
        })?;
        if spec != "1.0" {
            return Err(CloudEventError::SpecVersion(spec));
        }
        let event_id = parse_uuid("id", required("id")?)?;
        let event_type = required("type")?;
        if event_type.is_empty() {
            return Err(invalid("type", event_type, "empty"));
        }
        let stream_type = required("streamtype")?;
        let subject = required("subject")?;
        let stream = crate::StreamId::new(&stream_type, &subject)
            .map_err(|e| invalid("subject", format!("{stream_type}/{subject}"), e))?;
        let stream_version = parse_number("streamversion", required("streamversion")?)?;
        let event_version = parse_number("eventversion", required("eventversion")?)?;
        let position = parse_position(required("position")?)?;
        let time = required("time")?;
        let recorded_at = chrono::DateTime::parse_from_rfc3339(&time)
            .map_err(|e| invalid("time", time.clone(), e))?
            .with_timezone(&chrono::Utc);
        if let Some(content) = attribute("datacontenttype") {
            if content != "application/json" {
                return Err(invalid("datacontenttype", content, "not application/json"));
            }
        }
        let mut metadata = crate::Metadata::default();
        let optional_id =
            |name: &'static str| attribute(name).map(|v| parse_uuid(name, v)).transpose();
        metadata.correlation_id = optional_id("correlationid")?;
        metadata.causation_id = optional_id("causationid")?;
        metadata.command_id = optional_id("commandid")?;
        // A malformed trace context is dropped with a warning, as in stored metadata: the
        // event is worth more than the trace.
        metadata.traceparent = attribute("traceparent").and_then(|tp| parse_or_warn(&tp));
        metadata.tracestate = attribute("tracestate").and_then(|ts| parse_or_warn(&ts));
        for name in names {
            if name != "data" && !ATTRIBUTES.contains(&name) && is_extension_name(name) {
                if let Some(value) = attribute(name) {
                    metadata.extra.insert(name.to_owned(), value);
                }
            }
        }
        Ok(StoredEvent {
            event_id,
            stream,
            stream_version,
            position,
            event_type,
            event_version,
            recorded_at,
            metadata,
            data,
        })
    }
}

/// The value of a CloudEvents attribute: text, or an integer (the versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute<'a> {
    /// A string attribute.
    Text(Cow<'a, str>),
    /// An integer attribute.
    Number(u64),
}

impl Attribute<'_> {
    /// The value as a header carries it.
    pub fn to_text(&self) -> Cow<'_, str> {
        match self {
            Attribute::Text(text) => Cow::Borrowed(text),
            Attribute::Number(n) => Cow::Owned(n.to_string()),
        }
    }
}

/// Why a document or a message is not an event that [`StoredEvent::to_cloudevent`] (or a
/// relay) wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloudEventError {
    /// It is not a CloudEvent at all (no `specversion`, not a JSON object, a body that is
    /// not JSON).
    #[error("not a CloudEvent: {0}")]
    NotACloudEvent(String),
    /// A CloudEvent of another spec version than 1.0.
    #[error("CloudEvents spec version {0:?}, not 1.0")]
    SpecVersion(String),
    /// An attribute this framework writes is missing (a CloudEvent from another
    /// publisher).
    #[error("attribute `{0}` is missing")]
    Missing(&'static str),
    /// An attribute does not hold what it should.
    #[error("attribute `{name}` is invalid ({value:?}): {reason}")]
    Invalid {
        /// The attribute.
        name: &'static str,
        /// Its value, as received.
        value: String,
        /// Why it is invalid.
        reason: String,
    },
}

fn invalid(name: &'static str, value: String, reason: impl std::fmt::Display) -> CloudEventError {
    CloudEventError::Invalid {
        name,
        value,
        reason: reason.to_string(),
    }
}

fn parse_uuid(name: &'static str, value: String) -> Result<uuid::Uuid, CloudEventError> {
    value.parse().map_err(|e| invalid(name, value.clone(), e))
}

fn parse_number<N: std::str::FromStr>(
    name: &'static str,
    value: String,
) -> Result<N, CloudEventError>
where
    N::Err: std::fmt::Display,
{
    value.parse().map_err(|e| invalid(name, value.clone(), e))
}

fn parse_position(value: String) -> Result<crate::Position, CloudEventError> {
    let parts = value
        .split_once('.')
        .and_then(|(c, s)| Some((c.parse().ok()?, s.parse().ok()?)));
    match parts {
        Some((commit, sequence)) => Ok(crate::Position::from_parts(commit, sequence)),
        None => Err(invalid("position", value, "expected `commit.sequence`")),
    }
}

/// An attribute's value as text: strings as they are, numbers and booleans printed.
fn attribute_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// CloudEvents attribute names: lower-case ASCII letters and digits, 1 to 20 of them.
fn is_extension_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 20
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && key != "data"
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any stream id
/// yields a valid URI-reference.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, Metadata, Position, StreamId};
    use serde_json::json;

    fn event(metadata: Metadata) -> StoredEvent {
        Envelope {
            event_id: uuid::Uuid::now_v7(),
            stream: StreamId::new("order", "a/b c").unwrap(),
            stream_version: 3,
            position: Position::from_parts(9, 9),
            event_type: "order.placed".into(),
            event_version: 2,
            recorded_at: chrono::Utc::now(),
            metadata,
            data: json!({"total": 10}),
        }
    }

    #[test]
    fn carries_the_envelope_as_extensions() {
        let correlation = uuid::Uuid::now_v7();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let e = event(
            Metadata::default()
                .with_correlation_id(correlation)
                .with_traceparent(tp.parse().unwrap())
                .with_extra("tenant", "acme")
                .with_extra("Not-Valid", "dropped")
                .with_extra("type", "cannot override"),
        );
        let ce = e.to_cloudevent();
        assert_eq!(ce["source"], "/order/a%2Fb%20c");
        assert_eq!(ce["subject"], "a/b c");
        assert_eq!(ce["type"], "order.placed");
        assert_eq!(ce["streamversion"], 3);
        assert_eq!(ce["eventversion"], 2);
        assert_eq!(ce["correlationid"], correlation.to_string());
        assert_eq!(ce["traceparent"], tp);
        assert_eq!(ce["tenant"], "acme");
        assert!(ce.get("Not-Valid").is_none());
        assert_eq!(ce["data"], json!({"total": 10}));
        assert!(chrono::DateTime::parse_from_rfc3339(ce["time"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn trace_context_round_trips_and_a_malformed_one_is_dropped() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let e = event(
            Metadata::default()
                .with_traceparent(tp.parse().unwrap())
                .with_tracestate("rojo=00f067aa0ba902b7".parse().unwrap()),
        );
        let mut ce = e.to_cloudevent();
        assert_eq!(ce["tracestate"], "rojo=00f067aa0ba902b7");
        let back = StoredEvent::from_cloudevent(&ce).expect("round trip");
        assert_eq!(back.metadata, e.metadata);
        ce["traceparent"] = json!("00-not-a-trace-01");
        ce["tracestate"] = json!("=");
        let back = StoredEvent::from_cloudevent(&ce).expect("the event is kept");
        assert_eq!(
            (back.metadata.traceparent, back.metadata.tracestate),
            (None, None)
        );
        assert_eq!(back.event_id, e.event_id);
    }
}
