//! Export of a stored event as a CloudEvents 1.0 JSON document.

use serde_json::{json, Map, Value};

use super::StoredEvent;

impl StoredEvent {
    /// The event as a [CloudEvents 1.0](https://github.com/cloudevents/spec) JSON document
    /// (structured mode), for publishing to a broker or a webhook.
    ///
    /// `source` is `/{stream type}/{stream id}` (percent-encoded), `subject` the stream
    /// id, `type` the event type, `data` the payload as stored. The envelope travels as
    /// extension attributes: `streamversion`, `eventversion`, `correlationid`,
    /// `causationid`, and `traceparent` from the Distributed Tracing extension. Free
    /// metadata keys become extensions too when they are valid extension names (lower-case
    /// letters and digits, at most 20); others are left out, because CloudEvents forbids
    /// them.
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
        let mut doc = Map::new();
        for (key, value) in &self.metadata.extra {
            if is_extension_name(key) {
                doc.insert(key.clone(), Value::String(value.clone()));
            }
        }
        // Core attributes last, so that no free metadata key can overwrite them.
        let core = json!({
            "specversion": "1.0",
            "id": self.event_id.to_string(),
            "source": format!(
                "/{}/{}",
                percent_encode(self.stream.stream_type()),
                percent_encode(self.stream.id())
            ),
            "type": self.event_type,
            "subject": self.stream.id(),
            "time": self.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "datacontenttype": "application/json",
            "streamversion": self.stream_version,
            "eventversion": self.event_version,
            "data": self.data,
        });
        if let Value::Object(core) = core {
            doc.extend(core);
        }
        if let Some(id) = self.metadata.correlation_id {
            doc.insert("correlationid".into(), Value::String(id.to_string()));
        }
        if let Some(id) = self.metadata.causation_id {
            doc.insert("causationid".into(), Value::String(id.to_string()));
        }
        if let Some(tp) = &self.metadata.traceparent {
            doc.insert("traceparent".into(), Value::String(tp.to_string()));
        }
        Value::Object(doc)
    }
}

/// CloudEvents attribute names: lower-case ASCII letters and digits, 1 to 20 of them.
fn is_extension_name(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 20
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !matches!(
            key,
            "specversion" | "id" | "source" | "type" | "subject" | "time" | "data"
        )
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
}
