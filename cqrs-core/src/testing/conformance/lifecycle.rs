//! A stream's life: deleted with a tombstone, after which it takes no more events, loads
//! as deleted, and its subscribers hear of it once.

use std::time::Duration;

use super::domain::{Add, Counter};
use super::subscription::{add, View, WAIT};
use super::{unique_stream, Store};
use crate::bus::{BusMessage, ContentMode, HeaderNames, Receive, ReceivePolicy, Received, Settled};
use crate::ident::IdentifierError;
use crate::subscription::{Project, Subscription};
use crate::{
    Engine, EngineError, EventFilter, ExpectedVersion, Metadata, NewEvent, Position, StoreError,
};

/// Deleting appends the tombstone at the next version, atomically with closing the
/// stream: a version mismatch is a conflict, appends and a second delete are refused
/// (`StreamDeleted` with the tombstone's version), the events stay readable, the engine
/// loads the stream as deleted, a filtered read and a subscription get the tombstone as
/// the notice (a projection's `stream_deleted`, once), never as an event of its type; an empty stream can be deleted too;
/// an application cannot forge a tombstone.
pub async fn a_deleted_stream_takes_no_more_events_and_its_subscribers_hear_of_it<S: Store>(
    store: S,
) {
    // With an image cache: the image of the stream, warm from the commands, must not let
    // a command through after the delete.
    let engine = Engine::<Counter>::new(store.clone(), ()).with_image_cache(16);
    let id = uuid::Uuid::now_v7().to_string();
    for n in 1..=3 {
        engine.execute(&id, Add(n)).await.expect("execute");
    }
    let stream = crate::StreamId::new("counter", &id).expect("valid");
    let mismatch = store
        .delete_stream(&stream, ExpectedVersion::Exact(2), Metadata::default())
        .await;
    assert!(
        matches!(mismatch, Err(StoreError::Conflict { actual: 3, .. })),
        "{mismatch:?}"
    );
    let tombstone = store
        .delete_stream(&stream, ExpectedVersion::Exact(3), Metadata::default())
        .await
        .expect("delete");
    assert!(tombstone.is_tombstone());
    assert_eq!(tombstone.stream_version, 4);

    let deleted = |result: Result<_, StoreError>| {
        matches!(result, Err(StoreError::StreamDeleted { version: 4, .. }))
    };
    let more = store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![super::event("Added", 9)],
        )
        .await;
    assert!(deleted(more.map(drop)), "an append to a deleted stream");
    let exact = store
        .append(
            &stream,
            ExpectedVersion::Exact(4),
            vec![super::event("Added", 9)],
        )
        .await;
    assert!(deleted(exact.map(drop)), "even at its version");
    let created = store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![super::event("Added", 9)],
        )
        .await;
    assert!(deleted(created.map(drop)), "its id cannot be taken again");
    let again = store
        .delete_stream(&stream, ExpectedVersion::Any, Metadata::default())
        .await;
    assert!(deleted(again.map(drop)), "deleted twice");

    let kept = store.read_stream(&stream, 1, 10).await.expect("read");
    assert_eq!(kept.len(), 4, "its events stay");
    assert_eq!(kept[3].event_id, tombstone.event_id);
    match engine.load(&id).await {
        Err(EngineError::Store(StoreError::StreamDeleted {
            stream: s,
            version: 4,
        })) => {
            assert_eq!(s, stream);
        }
        other => panic!("expected the stream to load as deleted, got {other:?}"),
    }
    let refused = engine.execute(&id, Add(1)).await;
    assert!(
        matches!(
            refused,
            Err(EngineError::Store(StoreError::StreamDeleted { .. }))
        ),
        "{refused:?}"
    );
    let again = engine.execute(&id, Add(1)).await;
    assert!(
        matches!(
            again,
            Err(EngineError::Store(StoreError::StreamDeleted { .. }))
        ),
        "{again:?}"
    );

    // Whoever reads the stream type hears of the deletion, whatever its event types.
    let filter = EventFilter::all()
        .with_stream_types(["counter"])
        .and_then(|f| f.with_event_types(["SomethingElse"]))
        .expect("valid");
    let notices = store
        .read_all(Position::START, 100, &filter)
        .await
        .expect("read all");
    assert_eq!(
        notices.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        [tombstone.event_id]
    );

    // A typed listener is fed past it, never handed it.
    let other = unique_stream("counter");
    let after = add(&store, &other, &[5]).await;
    let view = View::<1>::default();
    let running = Subscription::new(
        store.clone(),
        Project::new(view.clone(), store.clone()).expect("valid"),
    )
    .idle_wait(Duration::from_millis(100))
    .start();
    running
        .caught_up(WAIT)
        .await
        .expect("caught up past the tombstone");
    view.seen(|s| {
        assert_eq!(s.applied.len(), 4, "the three events and the later one");
        assert!(!s.applied.contains_key(&tombstone.event_id));
        assert!(s.applied.contains_key(&after[0].event_id));
        assert_eq!(
            s.deleted,
            std::slice::from_ref(&stream),
            "told once of the deletion"
        );
    });
    running.shutdown().await.expect("clean stop");

    // From a bus, the same notice: the tombstone as a message, received by the same kind
    // of consumer a bus consumer runs.
    let from_bus = View::<2>::default();
    let receiver = Project::new(from_bus.clone(), store.clone()).expect("valid");
    for mode in [ContentMode::Binary, ContentMode::Structured] {
        let message = BusMessage::encode(&tombstone, mode, HeaderNames::NATS);
        let headers: Vec<(String, String)> = message
            .headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.clone()))
            .collect();
        let received = Received {
            origin: "counter.0",
            headers: &headers,
            payload: &message.payload,
            delivered: 1,
        };
        let settled = Receive::receive(&receiver, received, &ReceivePolicy::new(HeaderNames::NATS))
            .await
            .expect("received");
        assert_eq!(settled, Settled::Handled, "{mode:?}");
    }
    from_bus.seen(|s| assert_eq!(s.deleted, [stream.clone(), stream.clone()]));

    let empty = unique_stream("counter");
    let closed = store
        .delete_stream(&empty, ExpectedVersion::NoStream, Metadata::default())
        .await
        .expect("an empty stream deletes");
    assert_eq!(closed.stream_version, 1);
    let reused = store
        .append(&empty, ExpectedVersion::Any, vec![super::event("Added", 1)])
        .await;
    assert!(
        matches!(reused, Err(StoreError::StreamDeleted { version: 1, .. })),
        "{reused:?}"
    );

    let forged = NewEvent::new(
        crate::TOMBSTONE_EVENT_TYPE,
        1,
        serde_json::json!({}),
        Metadata::default(),
    );
    assert!(
        matches!(forged, Err(IdentifierError::Reserved { .. })),
        "{forged:?}"
    );
}

/// A delete racing appends loses nothing that was acknowledged: every append that
/// returned its events is in the stream before the tombstone, every other one was
/// refused (`StreamDeleted`, or a conflict), and the tombstone is the last version.
pub async fn a_delete_racing_appends_loses_nothing_acknowledged<S: Store>(store: S) {
    let stream = unique_stream("parcel");
    let writers = writers_until_refused(&store, &stream, |e| {
        matches!(e, StoreError::StreamDeleted { .. })
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let tombstone = loop {
        match store
            .delete_stream(&stream, ExpectedVersion::Any, Metadata::default())
            .await
        {
            Ok(tombstone) => break tombstone,
            Err(StoreError::StaleTransaction { .. }) => {}
            Err(other) => panic!("delete: {other}"),
        }
    };
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    let kept = store
        .read_stream(&stream, 1, usize::MAX)
        .await
        .expect("read");
    let (last, before) = kept.split_last().expect("the tombstone at least");
    assert_eq!(last.event_id, tombstone.event_id, "the tombstone is last");
    let versions: Vec<u64> = kept.iter().map(|e| e.stream_version).collect();
    assert_eq!(versions, (1..=kept.len() as u64).collect::<Vec<_>>());
    let mut stored: Vec<_> = before.iter().map(|e| e.event_id).collect();
    stored.sort();
    acknowledged.sort();
    assert_eq!(stored, acknowledged, "exactly the acknowledged appends");
}

/// Four writers appending one event at a time to `stream` until an append is refused as
/// `refused` says: each one's acknowledged event ids. Every writer is still at it when
/// the stream is closed (or moved), however fast the store.
pub(super) fn writers_until_refused<S: Store>(
    store: &S,
    stream: &crate::StreamId,
    refused: fn(&StoreError) -> bool,
) -> Vec<tokio::task::JoinHandle<Vec<uuid::Uuid>>> {
    (0..4)
        .map(|w| {
            let (store, stream) = (store.clone(), stream.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0.. {
                    let event = super::event("Scanned", w * 1_000_000 + n);
                    match store
                        .append(&stream, ExpectedVersion::Any, vec![event])
                        .await
                    {
                        Ok(stored) => acknowledged.extend(stored.iter().map(|e| e.event_id)),
                        Err(e) if refused(&e) => break,
                        Err(StoreError::StaleTransaction { .. }) => {}
                        Err(other) => panic!("append: {other}"),
                    }
                    tokio::task::yield_now().await;
                }
                acknowledged
            })
        })
        .collect()
}

/// Purging a deleted stream removes its events but the tombstone, its snapshot and their
/// dead letters; the rest of the log keeps its events and positions; the stream stays
/// closed and still loads as deleted; a stream that is not deleted is refused, and a
/// second purge removes nothing.
pub async fn a_purged_stream_keeps_only_its_tombstone<S: Store>(store: S) {
    let doomed = unique_stream("counter");
    let kept = unique_stream("counter");
    let mut events = add(&store, &doomed, &[1, 2]).await;
    let neighbour = add(&store, &kept, &[7]).await;
    events.extend(add(&store, &doomed, &[3]).await);
    let snapshot = crate::Snapshot {
        stream_version: 2,
        schema_version: 1,
        state: serde_json::json!({ "value": 3 }),
    };
    store
        .save_snapshot(&doomed, snapshot.clone())
        .await
        .expect("snapshot");
    store
        .save_snapshot(&kept, snapshot)
        .await
        .expect("snapshot");
    let letters = super::named("audit");
    store
        .park(&letters, &events[1], "failed")
        .await
        .expect("park");
    store
        .park(&letters, &neighbour[0], "failed")
        .await
        .expect("park");

    let open = store.purge_stream(&doomed).await;
    assert!(
        matches!(open, Err(StoreError::NotDeleted { .. })),
        "{open:?}"
    );
    assert_eq!(
        store.read_stream(&doomed, 1, 10).await.expect("read").len(),
        3
    );

    let tombstone = store
        .delete_stream(&doomed, ExpectedVersion::Exact(3), Metadata::default())
        .await
        .expect("delete");
    assert_eq!(store.purge_stream(&doomed).await.expect("purge"), 3);
    assert_eq!(store.purge_stream(&doomed).await.expect("purge again"), 0);

    let left = store.read_stream(&doomed, 1, 10).await.expect("read");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event_id, tombstone.event_id);
    let back = store
        .read_stream_backwards(&doomed, u64::MAX, 10)
        .await
        .expect("read backwards");
    assert_eq!(back.len(), 1);
    let log: Vec<_> = store
        .read_all(Position::START, 100, &EventFilter::all())
        .await
        .expect("read all")
        .iter()
        .map(|e| e.event_id)
        .collect();
    assert_eq!(
        log,
        [neighbour[0].event_id, tombstone.event_id],
        "only the gap changed"
    );
    assert!(store.load_snapshot(&doomed).await.expect("load").is_none());
    assert!(store.load_snapshot(&kept).await.expect("load").is_some());
    let parked: Vec<_> = store
        .parked(&letters)
        .await
        .expect("parked")
        .iter()
        .map(|l| l.event.event_id)
        .collect();
    assert_eq!(
        parked,
        [neighbour[0].event_id],
        "the purged event's letter went too"
    );

    let appended = store
        .append(
            &doomed,
            ExpectedVersion::Any,
            vec![super::event("Added", 1)],
        )
        .await;
    assert!(
        matches!(appended, Err(StoreError::StreamDeleted { version: 4, .. })),
        "{appended:?}"
    );
    let engine = Engine::<Counter>::new(store.clone(), ());
    let loaded = engine.load(doomed.id()).await;
    assert!(
        matches!(
            loaded,
            Err(EngineError::Store(StoreError::StreamDeleted {
                version: 4,
                ..
            }))
        ),
        "{loaded:?}"
    );
}

/// Truncating before a version that a snapshot covers removes the older events: the
/// aggregate still loads (from the snapshot, by an engine that reads snapshots; one that
/// does not is told `Truncated`) and takes commands, a temporal load before
/// the cut and a read from before it are `Truncated`, a cut no snapshot covers is
/// refused, the last event always stays, and a second truncation removes nothing.
pub async fn a_stream_truncated_under_its_snapshot_still_loads<S: Store>(store: S) {
    // Snapshots saved by hand below; the engine loads them.
    let engine = Engine::<Counter>::new(store.clone(), ())
        .with_snapshots(store.clone(), crate::SnapshotPolicy::Never);
    let id = uuid::Uuid::now_v7().to_string();
    for n in 1..=5 {
        engine.execute(&id, Add(n)).await.expect("execute");
    }
    let stream = crate::StreamId::new("counter", &id).expect("valid");
    let uncovered = store.truncate_stream(&stream, 4).await;
    assert!(
        matches!(
            uncovered,
            Err(StoreError::NotCovered { snapshot: None, .. })
        ),
        "{uncovered:?}"
    );
    snapshot_at(&engine, &store, &id, 3).await;
    let too_far = store.truncate_stream(&stream, 5).await;
    assert!(
        matches!(
            too_far,
            Err(StoreError::NotCovered {
                snapshot: Some(3),
                before: 5,
                ..
            })
        ),
        "{too_far:?}"
    );
    assert_eq!(
        store.truncate_stream(&stream, 4).await.expect("truncate"),
        3
    );
    assert_eq!(store.truncate_stream(&stream, 4).await.expect("again"), 0);

    let without_snapshots = Engine::<Counter>::new(store.clone(), ()).load(&id).await;
    assert!(
        matches!(
            without_snapshots,
            Err(EngineError::Store(StoreError::Truncated { .. }))
        ),
        "an engine that reads no snapshot cannot answer: {without_snapshots:?}"
    );
    let loaded = engine.load(&id).await.expect("loads from the snapshot");
    assert_eq!(loaded.version, 5);
    assert_eq!(loaded.state.value, 15);
    let past = engine.load_at(&id, 2).await;
    assert!(
        matches!(
            past,
            Err(EngineError::Store(StoreError::Truncated { before: 4, .. }))
        ),
        "{past:?}"
    );
    let from_start = store.read_stream(&stream, 1, 10).await;
    assert!(
        matches!(from_start, Err(StoreError::Truncated { before: 4, .. })),
        "{from_start:?}"
    );
    let kept = store.read_stream(&stream, 4, 10).await.expect("read");
    assert_eq!(
        kept.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [4, 5]
    );
    engine.execute(&id, Add(6)).await.expect("takes commands");
    assert_eq!(engine.load(&id).await.expect("load").state.value, 21);

    // However far it is asked, the last event stays.
    snapshot_at(&engine, &store, &id, 6).await;
    assert_eq!(
        store.truncate_stream(&stream, 7).await.expect("truncate"),
        2
    );
    let left = store.read_stream(&stream, 6, 10).await.expect("read");
    assert_eq!(left.len(), 1);
    assert_eq!(engine.load(&id).await.expect("load").version, 6);
}

/// Saves the snapshot of counter `id` at `version`, as a snapshot policy would have.
async fn snapshot_at<S: Store>(engine: &Engine<Counter>, store: &S, id: &str, version: u64) {
    let loaded = engine.load_at(id, version).await.expect("load");
    let snapshot = crate::Snapshot {
        stream_version: version,
        schema_version: <Counter as crate::Aggregate>::SNAPSHOT_VERSION,
        state: serde_json::to_value(&loaded.state).expect("state"),
    };
    let stream = crate::StreamId::new("counter", id).expect("valid");
    store
        .save_snapshot(&stream, snapshot)
        .await
        .expect("snapshot");
}
