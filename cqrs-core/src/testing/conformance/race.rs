//! Racing writers: one winner per version, nothing lost.

use std::collections::HashSet;

use super::{events, unique_stream, Store};
use crate::{ExpectedVersion, StoreError};

const WRITERS: u64 = 16;

/// Sixteen writers append a two-event batch at the same expected version, round after
/// round: exactly one wins each round, and its batch is not interleaved with another.
pub async fn racing_appends_have_one_winner_per_version<S: Store>(store: S) {
    let stream = unique_stream("account");
    let rounds = 10;
    for round in 0..rounds {
        let expected = ExpectedVersion::Exact(round * 2);
        let tasks: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (store, stream) = (store.clone(), stream.clone());
                tokio::spawn(async move {
                    let batch = events("Counted", writer * 1000 + round, 2);
                    store.append(&stream, expected, batch).await
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.expect("writer task panicked") {
                Ok(stored) => {
                    winners += 1;
                    assert_eq!(stored[0].stream_version, round * 2 + 1);
                    assert_eq!(stored[1].stream_version, round * 2 + 2);
                }
                Err(StoreError::Conflict { actual, .. }) => {
                    assert_eq!(actual, round * 2 + 2, "a loser sees the winner's version")
                }
                Err(other) => panic!("a racing append failed with {other:?}"),
            }
        }
        assert_eq!(winners, 1, "round {round}: exactly one writer must win");
    }
    let read = store
        .read_stream(&stream, 1, usize::MAX)
        .await
        .expect("read");
    assert_eq!(read.len() as u64, rounds * 2);
    for pair in read.chunks(2) {
        let n0 = pair[0].data["n"].as_u64().expect("n");
        let n1 = pair[1].data["n"].as_u64().expect("n");
        assert_eq!(
            n0 + 1,
            n1,
            "a batch must be stored contiguously, not interleaved"
        );
    }
}

/// Sixteen writers each append 25 events to one stream, rereading the version and
/// retrying on conflict: all 400 are stored once, at contiguous versions.
pub async fn racing_writers_lose_nothing<S: Store>(store: S) {
    let stream = unique_stream("account");
    let per_writer = 25;
    let tasks: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (store, stream) = (store.clone(), stream.clone());
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let mut version = 0;
                for i in 0..per_writer {
                    let batch = events("Counted", writer * 1000 + i, 1);
                    let id = batch[0].event_id();
                    loop {
                        let attempt = store
                            .append(&stream, ExpectedVersion::Exact(version), batch.clone())
                            .await;
                        match attempt {
                            Ok(stored) => {
                                version = stored[0].stream_version;
                                break;
                            }
                            Err(StoreError::Conflict { actual, .. }) => version = actual,
                            Err(other) => panic!("append failed with {other:?}"),
                        }
                    }
                    ids.push(id);
                }
                ids
            })
        })
        .collect();
    let mut accepted = HashSet::new();
    for task in tasks {
        accepted.extend(task.await.expect("writer task panicked"));
    }
    let read = store
        .read_stream(&stream, 1, usize::MAX)
        .await
        .expect("read");
    let versions: Vec<u64> = read.iter().map(|e| e.stream_version).collect();
    assert_eq!(
        versions,
        (1..=WRITERS * per_writer).collect::<Vec<_>>(),
        "contiguous versions"
    );
    let stored: HashSet<_> = read.iter().map(|e| e.event_id).collect();
    assert_eq!(stored.len(), read.len(), "no event stored twice");
    assert_eq!(
        stored, accepted,
        "every accepted event is stored, and nothing else"
    );
}

/// Writers on different streams never conflict.
pub async fn writers_on_distinct_streams_do_not_conflict<S: Store>(store: S) {
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = unique_stream("account");
                for v in 0..10 {
                    store
                        .append(&stream, ExpectedVersion::Exact(v), events("Counted", v, 1))
                        .await
                        .expect("appends to distinct streams never conflict");
                }
                stream
            })
        })
        .collect();
    for task in tasks {
        let stream = task.await.expect("writer task panicked");
        let read = store
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read");
        assert_eq!(read.len(), 10);
    }
}
