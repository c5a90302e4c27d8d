//! Identifiers at the edges of what is allowed.

use std::convert::Infallible;

use super::domain::CounterEvent;
use super::{named, Store};
use crate::ident::{IdentifierError, MAX_IDENTIFIER_LEN};
use crate::subscription::Project;
use crate::{
    Envelope, EventFilter, ExpectedVersion, Listener, Metadata, NewEvent, Position, Projection,
    StreamId, SubscriptionName,
};

/// Identifiers at the length limit, with multi-byte characters, quotes and SQL
/// metacharacters are stored and read back unchanged.
pub async fn identifiers_are_stored_faithfully<S: Store>(store: S) {
    let awkward = [
        "'; DROP TABLE events; --".to_owned(),
        "quote\"double'single\\back%percent_under".to_owned(),
        " leading and trailing ".to_owned(),
        "ünïcödé/😀/日本".to_owned(),
        "é".repeat(MAX_IDENTIFIER_LEN / 2),
        "x".repeat(MAX_IDENTIFIER_LEN),
    ];
    for (i, text) in awkward.iter().enumerate() {
        let stream = StreamId::new(
            text,
            &format!("{text}-{}", uuid::Uuid::now_v7())
                .chars()
                .take(100)
                .collect::<String>(),
        )
        .expect("a valid stream id");
        let event = NewEvent::new(
            text.clone(),
            1,
            serde_json::json!({ "i": i }),
            Metadata::default().with_extra(text.clone(), text.clone()),
        )
        .expect("a valid event type");
        store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .expect("append with awkward identifiers");
        let read = store
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read");
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].stream, stream);
        assert_eq!(&read[0].event_type, text);
        assert_eq!(read[0].metadata.extra.get(text), Some(text));
        let by_type = store
            .read_all(
                Position::START,
                usize::MAX,
                &EventFilter::all()
                    .with_stream_types([text.clone()])
                    .expect("valid"),
            )
            .await
            .expect("filtered read");
        assert_eq!(
            by_type.len(),
            1,
            "a filter on an awkward stream type matches exactly"
        );
        let name = named(text);
        store
            .save_checkpoint(&name, Position::from_parts(1, 2))
            .await
            .expect("save checkpoint");
        assert_eq!(
            store.load_checkpoint(&name).await.expect("load"),
            Some(Position::from_parts(1, 2))
        );
    }
}

/// Empty, over-long and NUL-containing identifiers are typed errors where they are
/// built, before any I/O: stream ids, event types, subscription names, the names of a
/// filter, and a projection whose constants are not valid (a hand-written `NAME` or
/// `event_types`, which the derive would have refused at compile time) when its consumer
/// is built. A store takes only those validated types, so it can no longer be handed an
/// invalid name at all, and has none to check.
pub async fn invalid_identifiers_are_refused<S: Store>(store: S) {
    let too_long = "x".repeat(MAX_IDENTIFIER_LEN + 1);
    for bad in ["", too_long.as_str(), "nul\0inside"] {
        assert!(StreamId::new("account", bad).is_err(), "stream id {bad:?}");
        assert!(StreamId::new(bad, "id").is_err(), "stream type {bad:?}");
        assert!(
            NewEvent::new(bad, 1, serde_json::Value::Null, Metadata::default()).is_err(),
            "event type {bad:?}"
        );
        assert!(
            SubscriptionName::new(bad).is_err(),
            "subscription name {bad:?}"
        );
        assert!(
            EventFilter::all().with_stream_types([bad]).is_err(),
            "filter on stream type {bad:?}"
        );
        assert!(
            EventFilter::all().with_event_types(["fine", bad]).is_err(),
            "filter on event type {bad:?}"
        );
    }
    assert!(matches!(
        StreamId::new("account", ""),
        Err(IdentifierError::Empty { what: "stream id" })
    ));
    // A name at the limit is valid, but its checkpoint (`name@v1`) would not be.
    let longest = named(&"x".repeat(MAX_IDENTIFIER_LEN));
    assert!(matches!(
        longest.versioned(1),
        Err(IdentifierError::TooLong {
            what: "subscription name",
            ..
        })
    ));
    assert_eq!(
        Project::new(Unnamed, store.clone()).err(),
        Some(IdentifierError::Empty {
            what: "subscription name"
        })
    );
    assert_eq!(
        Project::new(NulConsumer, store).err(),
        Some(IdentifierError::ContainsNul {
            what: "event type",
            at: 3
        })
    );
}

/// A projection written by hand with an empty name.
struct Unnamed;

impl Listener for Unnamed {
    const NAME: &'static str = "";
    type Event = CounterEvent;
    type Error = Infallible;
}

impl Projection for Unnamed {
    async fn handle(&self, _: &Envelope<CounterEvent>) -> Result<(), Infallible> {
        Ok(())
    }

    async fn reset(&self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// A projection written by hand that lists an event type with a NUL in it.
struct NulConsumer;

impl Listener for NulConsumer {
    const NAME: &'static str = "nul-consumer";
    type Event = CounterEvent;
    type Error = Infallible;
    fn event_types() -> Vec<&'static str> {
        vec!["nul\0inside"]
    }
}

impl Projection for NulConsumer {
    async fn handle(&self, _: &Envelope<CounterEvent>) -> Result<(), Infallible> {
        Ok(())
    }

    async fn reset(&self) -> Result<(), Infallible> {
        Ok(())
    }
}
