//! A stored event as a bus message (CloudEvents 1.0), and back.

use std::borrow::Cow;

use serde_json::Value;

use crate::envelope::CloudEventError;
use crate::{StoredEvent, StreamId};

/// How a message carries its CloudEvent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ContentMode {
    /// The attributes as headers (`ce-id`, `ce-type`, ...), the event's data as the body:
    /// a consumer can route and filter on headers without parsing the body.
    #[default]
    Binary,
    /// The whole CloudEvent as one JSON document in the body
    /// (`application/cloudevents+json`), for consumers that read bodies only.
    Structured,
}

/// How a broker's CloudEvents binding names the headers: NATS uses `ce-id`, Kafka
/// `ce_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderNames {
    /// What comes before an attribute's name.
    pub prefix: &'static str,
    /// The header name of each attribute this framework writes, prefixed, in the order
    /// of `ATTRIBUTES`: written once rather than formatted for every message.
    known: &'static [&'static str],
}

impl HeaderNames {
    /// The CloudEvents NATS binding: `ce-`.
    pub const NATS: HeaderNames = HeaderNames {
        prefix: "ce-",
        known: &[
            "ce-specversion",
            "ce-id",
            "ce-source",
            "ce-type",
            "ce-subject",
            "ce-time",
            "ce-datacontenttype",
            "ce-streamtype",
            "ce-streamversion",
            "ce-eventversion",
            "ce-position",
            "ce-correlationid",
            "ce-causationid",
            "ce-commandid",
            "ce-traceparent",
            "ce-tracestate",
        ],
    };
    /// The CloudEvents Kafka binding: `ce_`.
    pub const KAFKA: HeaderNames = HeaderNames {
        prefix: "ce_",
        known: &[
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_subject",
            "ce_time",
            "ce_datacontenttype",
            "ce_streamtype",
            "ce_streamversion",
            "ce_eventversion",
            "ce_position",
            "ce_correlationid",
            "ce_causationid",
            "ce_commandid",
            "ce_traceparent",
            "ce_tracestate",
        ],
    };

    /// The header name of `attribute`.
    pub fn header(&self, attribute: &str) -> Cow<'static, str> {
        let known = self
            .known
            .iter()
            .find(|name| &name[self.prefix.len()..] == attribute);
        match known {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(format!("{}{attribute}", self.prefix)),
        }
    }
}

/// The content type of a structured-mode message.
const STRUCTURED: &str = "application/cloudevents+json";
/// The content type of the data (and of a binary-mode body).
const JSON: &str = "application/json";

/// A stored event ready for a bus: a CloudEvent whose id is the event id, which the
/// broker uses as the message id for de-duplication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusMessage {
    /// The event id: the message id.
    pub id: uuid::Uuid,
    /// The event's stream: the key that keeps its events in order (a subject, a
    /// partition key).
    pub stream: StreamId,
    /// The headers, `content-type` included. The names this framework writes are
    /// static strings, so that a client can take them without parsing.
    pub headers: Vec<(Cow<'static, str>, String)>,
    /// The body.
    pub payload: Vec<u8>,
}

impl BusMessage {
    /// `event` as a message in `mode`, with headers named as `names` says.
    ///
    /// ```
    /// use cqrs_core::bus::{BusMessage, ContentMode, HeaderNames};
    /// # use cqrs_core::{Envelope, Metadata, Position, StreamId};
    /// # let event = Envelope {
    /// #     event_id: uuid::Uuid::now_v7(),
    /// #     stream: StreamId::new("account", "alice")?,
    /// #     stream_version: 1,
    /// #     position: Position::from_parts(1, 1),
    /// #     event_type: "account.opened".into(),
    /// #     event_version: 1,
    /// #     recorded_at: chrono::Utc::now(),
    /// #     metadata: Metadata::default(),
    /// #     data: serde_json::json!({"owner": "Alice"}),
    /// # };
    /// let message = BusMessage::encode(&event, ContentMode::Binary, HeaderNames::NATS);
    /// assert!(message.headers.contains(&("ce-type".into(), "account.opened".into())));
    /// let back = message.decode(HeaderNames::NATS)?;
    /// assert_eq!(back.event_id, event.event_id);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn encode(event: &StoredEvent, mode: ContentMode, names: HeaderNames) -> Self {
        let (headers, payload) = match mode {
            ContentMode::Binary => {
                let attributes = event.cloudevent_attributes();
                let mut headers = Vec::with_capacity(attributes.len());
                headers.push((Cow::Borrowed("content-type"), JSON.to_owned()));
                for (name, value) in &attributes {
                    if name == "datacontenttype" {
                        continue; // it is the content-type header in binary mode
                    }
                    headers.push((names.header(name), value.to_text().into_owned()));
                }
                (headers, event.data.to_string().into_bytes())
            }
            ContentMode::Structured => (
                vec![(Cow::Borrowed("content-type"), STRUCTURED.to_owned())],
                event.to_cloudevent().to_string().into_bytes(),
            ),
        };
        Self {
            id: event.event_id,
            stream: event.stream.clone(),
            headers,
            payload,
        }
    }

    /// The event this message carries: see [`decode`].
    pub fn decode(&self, names: HeaderNames) -> Result<StoredEvent, CloudEventError> {
        decode(&self.headers, &self.payload, names)
    }
}

/// The event a received message carries, in either content mode (told apart by the
/// `content-type` header), exactly as it was stored.
///
/// A message that is not one this framework wrote is refused with a typed
/// [`CloudEventError`]: a body that is not JSON, missing `ce-` headers, another spec
/// version, an attribute that does not parse.
pub fn decode<N: AsRef<str>, V: AsRef<str>>(
    headers: &[(N, V)],
    payload: &[u8],
    names: HeaderNames,
) -> Result<StoredEvent, CloudEventError> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref().to_owned())
    };
    let body = || -> Result<Value, CloudEventError> {
        serde_json::from_slice(payload)
            .map_err(|e| CloudEventError::NotACloudEvent(format!("the body is not JSON: {e}")))
    };
    let content_type = header("content-type").unwrap_or_default();
    if content_type.starts_with(STRUCTURED) {
        return StoredEvent::from_cloudevent(&body()?);
    }
    let prefix = names.prefix;
    let attribute = |name: &str| header(&format!("{prefix}{name}"));
    if attribute("specversion").is_none() {
        return Err(CloudEventError::NotACloudEvent(format!(
            "no `{prefix}specversion` header, and content-type {content_type:?} is not \
             {STRUCTURED}"
        )));
    }
    let names = headers.iter().filter_map(|(n, _)| {
        let n = n.as_ref();
        n.get(..prefix.len())
            .filter(|p| p.eq_ignore_ascii_case(prefix))
            .map(|_| &n[prefix.len()..])
    });
    let mut event = StoredEvent::from_cloudevent_attributes(attribute, names, Value::Null)?;
    event.data = body()?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, Metadata, Position};

    fn event() -> StoredEvent {
        Envelope {
            event_id: uuid::Uuid::now_v7(),
            stream: StreamId::new("order", "a.b c/*>").expect("valid"),
            stream_version: 7,
            position: Position::from_parts(123, 4),
            event_type: "order.placed".into(),
            event_version: 2,
            recorded_at: chrono::DateTime::from_timestamp_micros(1_765_000_000_123_456)
                .expect("time"),
            metadata: Metadata::default()
                .with_correlation_id(uuid::Uuid::now_v7())
                .with_causation_id(uuid::Uuid::now_v7())
                .with_traceparent(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                        .parse()
                        .expect("traceparent"),
                )
                .with_extra("tenant", "acme"),
            data: serde_json::json!({"total": 10.5, "lines": [1, 2]}),
        }
    }

    #[test]
    fn both_modes_and_both_bindings_round_trip_exactly() {
        let mut original = event();
        original.metadata.command_id = Some(uuid::Uuid::now_v7());
        for mode in [ContentMode::Binary, ContentMode::Structured] {
            for names in [HeaderNames::NATS, HeaderNames::KAFKA] {
                let message = BusMessage::encode(&original, mode, names);
                assert_eq!(message.id, original.event_id);
                assert_eq!(
                    message.decode(names),
                    Ok(original.clone()),
                    "{mode:?} {names:?}"
                );
            }
        }
    }

    #[test]
    fn a_free_metadata_key_that_is_not_an_extension_name_is_left_out() {
        let mut original = event();
        original
            .metadata
            .extra
            .insert("Not-Valid".into(), "x".into());
        let back = BusMessage::encode(&original, ContentMode::Binary, HeaderNames::NATS)
            .decode(HeaderNames::NATS)
            .expect("decode");
        assert_eq!(
            back.metadata.extra.get("tenant").map(String::as_str),
            Some("acme")
        );
        assert!(!back.metadata.extra.contains_key("Not-Valid"));
    }

    #[test]
    fn foreign_messages_are_typed_errors() {
        let names = HeaderNames::NATS;
        let plain = decode::<&str, &str>(&[], b"hello", names);
        assert!(
            matches!(plain, Err(CloudEventError::NotACloudEvent(_))),
            "{plain:?}"
        );

        let mut message = BusMessage::encode(&event(), ContentMode::Binary, names);
        message.payload = b"{not json".to_vec();
        assert!(matches!(
            message.decode(names),
            Err(CloudEventError::NotACloudEvent(_))
        ));

        let mut message = BusMessage::encode(&event(), ContentMode::Binary, names);
        message.headers.retain(|(n, _)| n != "ce-streamtype");
        assert_eq!(
            message.decode(names),
            Err(CloudEventError::Missing("streamtype"))
        );

        let mut message = BusMessage::encode(&event(), ContentMode::Binary, names);
        for (n, v) in &mut message.headers {
            if n == "ce-specversion" {
                *v = "0.3".into();
            }
        }
        assert_eq!(
            message.decode(names),
            Err(CloudEventError::SpecVersion("0.3".into()))
        );

        let mut message = BusMessage::encode(&event(), ContentMode::Binary, names);
        for (n, v) in &mut message.headers {
            if n == "ce-id" {
                *v = "not-a-uuid".into();
            }
        }
        assert!(matches!(
            message.decode(names),
            Err(CloudEventError::Invalid { name: "id", .. })
        ));

        let structured = decode(
            &[("content-type", STRUCTURED)],
            br#"{"specversion": "1.0", "id": "x"}"#,
            names,
        );
        assert!(matches!(
            structured,
            Err(CloudEventError::Invalid { name: "id", .. })
        ));
    }
}
