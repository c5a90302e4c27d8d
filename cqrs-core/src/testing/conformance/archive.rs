//! Archived streams: out of the hot path (loads, appends, global reads and listings skip
//! them or say so), readable where they are, and back in place when un-archived.

use std::time::Duration;

use super::domain::{Add, Counter};
use super::lifecycle::writers_until_refused;
use super::subscription::{add, View, WAIT};
use super::{unique_stream, Store};
use crate::store::archive_streams_before;
use crate::subscription::{Project, Subscription};
use crate::{
    Engine, EngineError, EventFilter, ExpectedVersion, Metadata, Position, StoreError, StreamId,
};

/// Whether `result` is the `Archived` refusal at `version`.
fn archived_at<T: std::fmt::Debug>(result: &Result<T, StoreError>, version: u64) -> bool {
    matches!(result, Err(StoreError::Archived { version: v, .. }) if *v == version)
}

/// The ids of what a global read with `filter` returns of `streams`, in its order.
async fn global_ids<S: Store>(
    store: &S,
    filter: &EventFilter,
    streams: &[&StreamId],
) -> Vec<uuid::Uuid> {
    store
        .read_all(Position::START, 10_000, filter)
        .await
        .expect("read all")
        .iter()
        .filter(|e| streams.contains(&&e.stream))
        .map(|e| e.event_id)
        .collect()
}

/// Archiving moves a stream's events out of the hot path: reading, loading (with or
/// without a warm image), appending, deleting, purging and truncating it are `Archived`
/// with its version; global reads, counts and listings skip it unless the filter asks for
/// the archive, where its events are at their positions; `read_archived_stream` reads
/// it; a subscription that asks for the archive gets its events; un-archiving puts them
/// back (same ids, versions, positions), and it takes commands again.
pub async fn an_archived_stream_is_out_of_the_hot_path_until_unarchived<S: Store>(store: S) {
    let engine = Engine::<Counter>::new(store.clone(), ()).with_image_cache(16);
    let id = uuid::Uuid::now_v7().to_string();
    for n in 1..=3 {
        engine.execute(&id, Add(n)).await.expect("execute");
    }
    let stream = StreamId::new("counter", &id).expect("valid");
    let neighbour = unique_stream("counter");
    add(&store, &neighbour, &[7]).await;
    let before = store.read_stream(&stream, 1, 10).await.expect("read");
    let both = [&stream, &neighbour];
    let everything = global_ids(&store, &EventFilter::all(), &both).await;

    assert_eq!(store.archive_stream(&stream).await.expect("archive"), 3);
    assert_eq!(store.archive_stream(&stream).await.expect("again"), 0);
    assert_eq!(
        store
            .archive_stream(&unique_stream("counter"))
            .await
            .expect("no such stream"),
        0
    );

    assert!(archived_at(&store.read_stream(&stream, 1, 10).await, 3));
    assert!(archived_at(
        &store.read_stream_backwards(&stream, u64::MAX, 10).await,
        3
    ));
    let loaded = engine.load(&id).await;
    assert!(
        matches!(
            loaded,
            Err(EngineError::Store(StoreError::Archived { version: 3, .. }))
        ),
        "a load says it is archived, never an empty aggregate: {loaded:?}"
    );
    let command = engine.execute(&id, Add(4)).await;
    assert!(
        matches!(
            command,
            Err(EngineError::Store(StoreError::Archived { version: 3, .. }))
        ),
        "the warm image lets no command through: {command:?}"
    );
    let cold = Engine::<Counter>::new(store.clone(), ())
        .execute(&id, Add(4))
        .await;
    assert!(
        matches!(cold, Err(EngineError::Store(StoreError::Archived { .. }))),
        "{cold:?}"
    );
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(3),
    ] {
        let appended = store
            .append(&stream, expected, vec![super::event("Added", 9)])
            .await;
        assert!(archived_at(&appended, 3), "{expected}: {appended:?}");
    }
    let deleted = store
        .delete_stream(&stream, ExpectedVersion::Any, Metadata::default())
        .await;
    assert!(archived_at(&deleted, 3), "{deleted:?}");
    assert!(archived_at(&store.purge_stream(&stream).await, 3));
    assert!(archived_at(&store.truncate_stream(&stream, 2).await, 3));

    // The global read, its counts and the listings skip it, unless asked for the archive.
    let hot = global_ids(&store, &EventFilter::all(), &both).await;
    let neighbour_only: Vec<_> = everything[3..].to_vec();
    assert_eq!(hot, neighbour_only);
    let with_archive = EventFilter::all().including_archived();
    assert_eq!(global_ids(&store, &with_archive, &both).await, everything);
    let typed = EventFilter::all()
        .with_stream_types(["counter"])
        .expect("valid")
        .with_event_types(["Added"])
        .expect("valid");
    assert_eq!(global_ids(&store, &typed, &both).await, neighbour_only);
    assert_eq!(
        global_ids(&store, &typed.clone().including_archived(), &both).await,
        everything
    );
    let first = before[0].position;
    for (filter, count) in [(EventFilter::all(), 1), (with_archive.clone(), 3)] {
        let after_first = store.read_all(first, 10_000, &filter).await.expect("read");
        let ours = after_first.iter().filter(|e| both.contains(&&e.stream));
        assert_eq!(ours.count(), count, "after the first event, {filter:?}");
    }
    let head = store.read_horizon().await.expect("horizon");
    let backwards = store
        .read_all_backwards(head, 10_000, &with_archive)
        .await
        .expect("read backwards");
    let mut backwards: Vec<_> = backwards
        .iter()
        .filter(|e| both.contains(&&e.stream))
        .map(|e| e.event_id)
        .collect();
    backwards.reverse();
    assert_eq!(backwards, everything, "backwards, with the archive");
    let hot_backwards = store
        .read_all_backwards(head, 10_000, &EventFilter::all())
        .await
        .expect("read backwards");
    assert!(!hot_backwards.iter().any(|e| e.stream == stream));
    let counted = store
        .count_after(first, &EventFilter::all(), 10_000)
        .await
        .expect("count");
    let counted_with_archive = store
        .count_after(first, &with_archive, 10_000)
        .await
        .expect("count");
    assert_eq!(
        counted_with_archive,
        counted + 2,
        "its two events after the first"
    );
    let listed = store
        .list_streams(Some("counter"), None, 10_000)
        .await
        .expect("list");
    assert!(listed.iter().any(|s| s.stream == neighbour));
    assert!(
        !listed.iter().any(|s| s.stream == stream),
        "listings skip it"
    );

    // Its history, where it is.
    let kept = store
        .read_archived_stream(&stream, 2, 10)
        .await
        .expect("read the archive");
    assert_eq!(
        kept.iter()
            .map(|e| (e.event_id, e.stream_version, e.position))
            .collect::<Vec<_>>(),
        before[1..]
            .iter()
            .map(|e| (e.event_id, e.stream_version, e.position))
            .collect::<Vec<_>>()
    );
    assert_eq!(kept[0].data, before[1].data);
    assert!(store
        .read_archived_stream(&neighbour, 1, 10)
        .await
        .expect("not archived")
        .is_empty());

    // A subscription skips it by default, and reads it when asked (one after the other:
    // both versions of the view share its lease).
    let skipping = View::<1>::default();
    let run = Subscription::new(
        store.clone(),
        Project::new(skipping.clone(), store.clone()).expect("valid"),
    )
    .idle_wait(Duration::from_millis(100))
    .start();
    run.caught_up(WAIT).await.expect("caught up");
    run.shutdown().await.expect("shutdown");
    assert!(skipping.seen(|s| s.applied.contains_key(&everything[3])));
    assert!(skipping.seen(|s| before.iter().all(|e| !s.applied.contains_key(&e.event_id))));
    let including = View::<2>::default();
    let run = Subscription::new(
        store.clone(),
        Project::new(including.clone(), store.clone()).expect("valid"),
    )
    .including_archived()
    .idle_wait(Duration::from_millis(100))
    .start();
    run.caught_up(WAIT).await.expect("caught up");
    run.shutdown().await.expect("shutdown");
    assert!(including.seen(|s| before
        .iter()
        .all(|e| s.applied.get(&e.event_id) == Some(&1))));

    // Back in place, and in use.
    assert_eq!(store.unarchive_stream(&stream).await.expect("unarchive"), 3);
    assert_eq!(store.unarchive_stream(&stream).await.expect("again"), 0);
    let back = store.read_stream(&stream, 1, 10).await.expect("read");
    assert_eq!(
        back.iter()
            .map(|e| (e.event_id, e.stream_version, e.position))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|e| (e.event_id, e.stream_version, e.position))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        global_ids(&store, &EventFilter::all(), &both).await,
        everything
    );
    assert!(store
        .read_archived_stream(&stream, 1, 10)
        .await
        .expect("read")
        .is_empty());
    let committed = engine
        .execute(&id, Add(4))
        .await
        .expect("takes commands again");
    assert_eq!(committed.version, 4);
    assert_eq!(engine.load(&id).await.expect("load").state.value, 10);
}

/// Archiving a stream while writers append to it loses nothing acknowledged: every append
/// that returned is in the archive (and back, un-archived), every other one was refused
/// as `Archived`; and the streams idle before a position are archived whole, those
/// written since are not.
pub async fn archiving_racing_appends_loses_nothing_acknowledged<S: Store>(store: S) {
    let stream = unique_stream("parcel");
    let writers = writers_until_refused(&store, &stream, |e| {
        matches!(e, StoreError::Archived { .. })
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let moved = store.archive_stream(&stream).await.expect("archive");
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert_eq!(
        moved,
        acknowledged.len() as u64,
        "every acknowledged append moved"
    );
    let mut archived: Vec<_> = store
        .read_archived_stream(&stream, 1, usize::MAX)
        .await
        .expect("read the archive")
        .iter()
        .map(|e| e.event_id)
        .collect();
    archived.sort();
    acknowledged.sort();
    assert_eq!(archived, acknowledged, "exactly the acknowledged appends");
    store.unarchive_stream(&stream).await.expect("unarchive");
    let back = store
        .read_stream(&stream, 1, usize::MAX)
        .await
        .expect("read");
    let versions: Vec<u64> = back.iter().map(|e| e.stream_version).collect();
    assert_eq!(
        versions,
        (1..=acknowledged.len() as u64).collect::<Vec<_>>()
    );

    // Idle since a position: whole streams, and only those.
    let idle = [unique_stream("ledger"), unique_stream("ledger")];
    for stream in &idle {
        add(&store, stream, &[1, 2]).await;
    }
    let busy = unique_stream("ledger");
    let since = add(&store, &busy, &[3]).await[0].position;
    let mut archived = Vec::new();
    loop {
        let page = archive_streams_before(&store, since, 1)
            .await
            .expect("archive idle");
        if page.is_empty() {
            break;
        }
        assert_eq!(page.len(), 1, "at most the number asked for");
        archived.extend(page);
    }
    for stream in &idle {
        assert!(archived.contains(stream), "{stream} was idle");
        assert!(archived_at(&store.read_stream(stream, 1, 10).await, 2));
    }
    assert!(!archived.contains(&busy));
    assert_eq!(
        store.read_stream(&busy, 1, 10).await.expect("read").len(),
        1
    );
}
