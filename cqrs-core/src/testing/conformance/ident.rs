//! Identifiers at the edges of what is allowed.

use super::Store;
use crate::ident::{IdentifierError, MAX_IDENTIFIER_LEN};
use crate::{EventFilter, ExpectedVersion, Metadata, NewEvent, Position, StoreError, StreamId};

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
                &EventFilter::all().with_stream_types([text.clone()]),
            )
            .await
            .expect("filtered read");
        assert_eq!(
            by_type.len(),
            1,
            "a filter on an awkward stream type matches exactly"
        );
        store
            .save_checkpoint(text, Position::from_parts(1, 2))
            .await
            .expect("save checkpoint");
        assert_eq!(
            store.load_checkpoint(text).await.expect("load"),
            Some(Position::from_parts(1, 2))
        );
    }
}

/// Empty, over-long and NUL-containing identifiers are typed errors before any I/O.
pub async fn invalid_identifiers_are_refused<S: Store>(store: S) {
    let too_long = "x".repeat(MAX_IDENTIFIER_LEN + 1);
    for bad in ["", too_long.as_str(), "nul\0inside"] {
        assert!(StreamId::new("account", bad).is_err(), "stream id {bad:?}");
        assert!(StreamId::new(bad, "id").is_err(), "stream type {bad:?}");
        assert!(
            NewEvent::new(bad, 1, serde_json::Value::Null, Metadata::default()).is_err(),
            "event type {bad:?}"
        );
        for result in [
            store.save_checkpoint(bad, Position::START).await.err(),
            store.load_checkpoint(bad).await.err(),
        ] {
            assert!(
                matches!(result, Some(StoreError::InvalidIdentifier(_))),
                "subscription name {bad:?}: got {result:?}"
            );
        }
    }
    assert!(matches!(
        StreamId::new("account", ""),
        Err(IdentifierError::Empty { what: "stream id" })
    ));
}
