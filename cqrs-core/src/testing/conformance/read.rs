//! Reads: per stream from a version, and global in commit order, batched and filtered.

use std::collections::HashSet;
use std::sync::Arc;

use super::{events, unique_stream, Store};
use crate::{EventFilter, ExpectedVersion, Position, StoredEvent, StreamId};

/// `read_stream` starts at a version and stops at a count.
pub async fn read_stream_from_version<S: Store>(store: S) {
    let stream = unique_stream("account");
    store
        .append(&stream, ExpectedVersion::NoStream, events("Counted", 1, 10))
        .await
        .expect("append");
    let versions = |events: Vec<Arc<StoredEvent>>| -> Vec<u64> {
        events.iter().map(|e| e.stream_version).collect()
    };
    let read = |from, max| store.read_stream(&stream, from, max);
    assert_eq!(
        versions(read(4, usize::MAX).await.expect("read")),
        (4..=10).collect::<Vec<_>>()
    );
    assert_eq!(versions(read(4, 3).await.expect("read")), [4, 5, 6]);
    assert_eq!(versions(read(10, 5).await.expect("read")), [10]);
    assert!(
        read(11, 5).await.expect("read").is_empty(),
        "past the end reads empty"
    );
    assert!(
        read(1, 0).await.expect("read").is_empty(),
        "max_count 0 reads nothing"
    );
    assert_eq!(
        read(0, usize::MAX).await.expect("read").len(),
        10,
        "from 0 reads from 1"
    );
    let missing = unique_stream("account");
    assert!(store
        .read_stream(&missing, 1, usize::MAX)
        .await
        .expect("read")
        .is_empty());
}

/// Streams with the same id but another type, or another id, are separate.
pub async fn streams_are_isolated<S: Store>(store: S) {
    let id = uuid::Uuid::now_v7().to_string();
    let account = StreamId::new("account", &id).expect("valid");
    let order = StreamId::new("order", &id).expect("valid");
    store
        .append(&account, ExpectedVersion::NoStream, events("Counted", 0, 3))
        .await
        .expect("append");
    store
        .append(&order, ExpectedVersion::NoStream, events("Placed", 0, 1))
        .await
        .expect("a stream of another type starts at version 1");
    let read = store
        .read_stream(&order, 1, usize::MAX)
        .await
        .expect("read");
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].event_type, "Placed");
    assert_eq!(
        store
            .read_stream(&account, 1, usize::MAX)
            .await
            .expect("read")
            .len(),
        3
    );
}

/// `read_all` returns every event in commit order; reading in batches from the last
/// position gives the same sequence with no gap and no repeat.
pub async fn read_all_in_commit_order_and_batches<S: Store>(store: S) {
    let streams: Vec<_> = (0..3).map(|_| unique_stream("account")).collect();
    let mut appended = Vec::new();
    for round in 0..4u64 {
        for stream in &streams {
            let stored = store
                .append(
                    stream,
                    ExpectedVersion::Any,
                    events("Counted", round * 10, 2),
                )
                .await
                .expect("append");
            appended.extend(stored.iter().map(|e| e.event_id));
        }
    }
    let all = store
        .read_all(Position::START, usize::MAX, &EventFilter::all())
        .await
        .expect("read all");
    let ids: Vec<_> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, appended, "read_all returns events in commit order");
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "positions grow"
    );

    let mut batched = Vec::new();
    let mut checkpoint = Position::START;
    loop {
        let batch = store
            .read_all(checkpoint, 5, &EventFilter::all())
            .await
            .expect("read batch");
        assert!(batch.len() <= 5, "a batch holds at most max_count events");
        let Some(last) = batch.last() else { break };
        checkpoint = last.position;
        batched.extend(batch.iter().map(|e| e.event_id));
    }
    assert_eq!(
        batched, appended,
        "batches from checkpoints add up to the whole log"
    );
    let after_last = store
        .read_all(checkpoint, 5, &EventFilter::all())
        .await
        .expect("read past the end");
    assert!(after_last.is_empty());
}

/// Filters by stream type and event type select the same events, in the same order, as
/// filtering the whole log, and `max_count` counts selected events.
pub async fn read_all_filters_in_the_store<S: Store>(store: S) {
    let account = unique_stream("account");
    let order = unique_stream("order");
    for i in 0..5 {
        store
            .append(
                &account,
                ExpectedVersion::Any,
                events(if i % 2 == 0 { "Deposited" } else { "Withdrawn" }, i, 1),
            )
            .await
            .expect("append");
        store
            .append(&order, ExpectedVersion::Any, events("Placed", i, 1))
            .await
            .expect("append");
    }
    let all = store
        .read_all(Position::START, usize::MAX, &EventFilter::all())
        .await
        .expect("read all");
    let filters = [
        EventFilter::all()
            .with_stream_types(["account"])
            .expect("valid"),
        EventFilter::all()
            .with_event_types(["Deposited", "Placed"])
            .expect("valid"),
        EventFilter::all()
            .with_stream_types(["order"])
            .expect("valid")
            .with_event_types(["Deposited"])
            .expect("valid"),
        EventFilter::all()
            .with_stream_types(["account", "order"])
            .expect("valid")
            .with_event_types(["Withdrawn"])
            .expect("valid"),
    ];
    for filter in filters {
        let expected: Vec<_> = all
            .iter()
            .filter(|e| filter.accepts(e.stream.stream_type(), &e.event_type))
            .map(|e| e.event_id)
            .collect();
        let read = store
            .read_all(Position::START, usize::MAX, &filter)
            .await
            .expect("filtered read");
        let ids: Vec<_> = read.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, expected, "filter {filter:?}");
        let first_two = store
            .read_all(Position::START, 2, &filter)
            .await
            .expect("read");
        let ids: Vec<_> = first_two.iter().map(|e| e.event_id).collect();
        assert_eq!(
            ids,
            expected.iter().copied().take(2).collect::<Vec<_>>(),
            "max_count with {filter:?}"
        );
    }
    let unique: HashSet<_> = all.iter().map(|e| e.event_id).collect();
    assert_eq!(unique.len(), 10);
}
