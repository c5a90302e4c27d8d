//! Appends: versions, atomicity, expected versions, refusals.

use super::{event, events, unique_stream, Store};
use crate::{EventFilter, ExpectedVersion, Position, StoreError};

/// Versions are contiguous from 1 across batches; positions grow; the returned events are
/// what a read returns.
pub async fn append_assigns_contiguous_versions<S: Store>(store: S) {
    let stream = unique_stream("account");
    let mut returned = Vec::new();
    for (expected, batch) in [(0, 1), (1, 3), (4, 2)] {
        let stored = store
            .append(
                &stream,
                ExpectedVersion::Exact(expected),
                events("Counted", expected, batch),
            )
            .await
            .expect("append at the current version succeeds");
        assert_eq!(
            stored.len() as u64,
            batch,
            "one stored event per appended event"
        );
        returned.extend(stored);
    }
    let versions: Vec<u64> = returned.iter().map(|e| e.stream_version).collect();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6],
        "versions must be contiguous from 1"
    );
    assert!(
        returned.windows(2).all(|w| w[0].position < w[1].position),
        "positions must grow in commit order"
    );
    for (i, e) in returned.iter().enumerate() {
        assert_eq!(e.stream, stream);
        assert_eq!(
            e.data,
            serde_json::json!({ "n": i as u64 }),
            "data in append order"
        );
    }
    let read = store
        .read_stream(&stream, 1, usize::MAX)
        .await
        .expect("read");
    assert_eq!(
        read, returned,
        "a read returns exactly what the appends returned"
    );
}

/// A batch that fails for any reason stores none of its events.
pub async fn append_is_atomic<S: Store>(store: S) {
    let stream = unique_stream("account");
    let first = store
        .append(&stream, ExpectedVersion::NoStream, events("Counted", 0, 2))
        .await
        .expect("first append");
    // The last event of the batch reuses a stored id: the whole batch must be refused.
    let mut batch = events("Counted", 10, 3);
    batch[2] = event("Counted", 12).with_event_id(first[0].event_id);
    let err = store
        .append(&stream, ExpectedVersion::Exact(2), batch)
        .await
        .expect_err("a batch with a stored event id is refused");
    assert!(
        matches!(err, StoreError::DuplicateEventId { .. }),
        "got {err:?}"
    );
    // A batch at a stale version is refused whole too.
    let err = store
        .append(&stream, ExpectedVersion::Exact(1), events("Counted", 20, 5))
        .await
        .expect_err("a stale batch is refused");
    assert!(matches!(err, StoreError::Conflict { .. }), "got {err:?}");

    let read = store
        .read_stream(&stream, 1, usize::MAX)
        .await
        .expect("read");
    assert_eq!(read.len(), 2, "no event of a refused batch may be stored");
    let all = store
        .read_all(Position::START, usize::MAX, &EventFilter::all())
        .await
        .expect("read all");
    assert_eq!(
        all.len(),
        2,
        "no event of a refused batch may reach the global log"
    );
    // The stream is still writable at its real version.
    store
        .append(&stream, ExpectedVersion::Exact(2), events("Counted", 2, 1))
        .await
        .expect("append after refused batches");
}

/// Exact, no-stream and any behave as documented; `Exact(0)` means no stream.
pub async fn expected_version_semantics<S: Store>(store: S) {
    let stream = unique_stream("account");
    let append = |expected| store.append(&stream, expected, events("Counted", 0, 1));
    append(ExpectedVersion::NoStream)
        .await
        .expect("no-stream on a new stream");
    assert!(
        append(ExpectedVersion::NoStream).await.is_err(),
        "no-stream on an existing stream"
    );
    assert!(
        append(ExpectedVersion::Exact(0)).await.is_err(),
        "exact 0 on an existing stream"
    );
    append(ExpectedVersion::Exact(1))
        .await
        .expect("exact at the current version");
    assert!(
        append(ExpectedVersion::Exact(1)).await.is_err(),
        "exact at a past version"
    );
    assert!(
        append(ExpectedVersion::Exact(3)).await.is_err(),
        "exact at a future version"
    );
    append(ExpectedVersion::Any)
        .await
        .expect("any on an existing stream");

    let other = unique_stream("account");
    store
        .append(&other, ExpectedVersion::Exact(0), events("Counted", 0, 1))
        .await
        .expect("exact 0 on a new stream");
    let fresh = unique_stream("account");
    let stored = store
        .append(&fresh, ExpectedVersion::Any, events("Counted", 0, 2))
        .await
        .expect("any on a new stream");
    assert_eq!(stored[1].stream_version, 2);
    let read = store
        .read_stream(&stream, 1, usize::MAX)
        .await
        .expect("read");
    assert_eq!(read.len(), 3, "only the accepted appends are stored");
}

/// A conflict names the stream, the expected and the actual version.
pub async fn conflict_names_stream_and_versions<S: Store>(store: S) {
    let stream = unique_stream("account");
    store
        .append(&stream, ExpectedVersion::NoStream, events("Counted", 0, 3))
        .await
        .expect("append");
    for expected in [ExpectedVersion::Exact(1), ExpectedVersion::NoStream] {
        match store
            .append(&stream, expected, events("Counted", 3, 1))
            .await
        {
            Err(StoreError::Conflict {
                stream: s,
                expected: e,
                actual,
            }) => {
                assert_eq!(s, stream);
                assert_eq!(e, expected);
                assert_eq!(actual, 3, "the conflict reports the stream's real version");
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
    }
    let err = store
        .append(&stream, ExpectedVersion::Exact(1), events("Counted", 3, 1))
        .await
        .expect_err("conflict");
    assert!(err.is_retriable(), "a conflict is retriable");
    let message = err.to_string();
    assert!(
        message.contains(stream.id()),
        "the message names the stream: {message}"
    );
}

/// An event id is stored once; a repeated id (also within one batch) is refused.
pub async fn duplicate_event_ids_are_refused<S: Store>(store: S) {
    let a = unique_stream("account");
    let b = unique_stream("account");
    let stored = store
        .append(&a, ExpectedVersion::NoStream, events("Counted", 0, 1))
        .await
        .expect("append");
    let id = stored[0].event_id;
    let err = store
        .append(
            &b,
            ExpectedVersion::NoStream,
            vec![event("Counted", 1).with_event_id(id)],
        )
        .await
        .expect_err("an id stored in another stream is refused");
    assert!(
        matches!(&err, StoreError::DuplicateEventId { event_id, .. } if *event_id == id),
        "got {err:?}"
    );
    let twice = uuid::Uuid::now_v7();
    let err = store
        .append(
            &b,
            ExpectedVersion::NoStream,
            vec![
                event("Counted", 1).with_event_id(twice),
                event("Counted", 2).with_event_id(twice),
            ],
        )
        .await
        .expect_err("an id twice in one batch is refused");
    assert!(
        matches!(err, StoreError::DuplicateEventId { .. }),
        "got {err:?}"
    );
    assert!(store
        .read_stream(&b, 1, usize::MAX)
        .await
        .expect("read")
        .is_empty());
}

/// An empty batch is refused and changes nothing.
pub async fn empty_append_is_refused<S: Store>(store: S) {
    let stream = unique_stream("account");
    let err = store
        .append(&stream, ExpectedVersion::Any, Vec::new())
        .await
        .expect_err("empty batch");
    assert!(matches!(err, StoreError::EmptyAppend { .. }), "got {err:?}");
    store
        .append(&stream, ExpectedVersion::NoStream, events("Counted", 0, 1))
        .await
        .expect("the stream still does not exist after an empty append");
}
