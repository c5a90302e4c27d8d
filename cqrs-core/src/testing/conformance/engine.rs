//! The engine over the store: retries, snapshots, temporal loads, metadata, refusals.

use std::time::Duration;

use serde_json::json;

use super::domain::{Add, Counter, CounterEvent, OverLimit, LIMIT};
use super::probe::Probe;
use super::Store;
use crate::{Engine, EngineError, Metadata, RetryPolicy, Snapshot, SnapshotPolicy, StreamId};

/// Eight tasks on two engines add to one counter at once; conflicts are retried by
/// reloading, so every command lands exactly once.
pub async fn engine_retries_conflicts_without_losing_commands<S: Store>(store: S) {
    let retry = RetryPolicy {
        max_attempts: 1_000,
        base_delay: Duration::from_micros(200),
    };
    let engines = [
        Engine::<Counter>::new(store.clone(), ()).with_retry(retry),
        Engine::<Counter>::new(store.clone(), ()).with_retry(retry),
    ];
    let id = uuid::Uuid::now_v7().to_string();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let engine = engines[task % 2].clone();
            let id = id.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    engine
                        .execute(&id, Add(1))
                        .await
                        .expect("retried until it lands");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task panicked");
    }
    let loaded = engines[0].load(&id).await.expect("load");
    assert_eq!(loaded.version, 80);
    assert_eq!(
        loaded.state,
        Counter {
            value: 80,
            additions: 80
        }
    );
}

/// Snapshots are taken by policy and used on load; a snapshot of another schema version,
/// or one that no longer deserialises, is ignored; `load_at` gives past states;
/// refusals write nothing; metadata reaches every event.
pub async fn engine_snapshots_and_temporal_loads<S: Store>(store: S) {
    let id = uuid::Uuid::now_v7().to_string();
    let stream = StreamId::new("counter", &id).expect("valid");
    let with_snapshots = Engine::<Counter>::new(store.clone(), ())
        .with_snapshots(store.clone(), SnapshotPolicy::EveryEvents(5));
    let plain = Engine::<Counter>::new(store.clone(), ());

    let correlation = uuid::Uuid::now_v7();
    let metadata = Metadata::default()
        .with_correlation_id(correlation)
        .with_extra("user", "tester");
    let mut expected = Counter::default();
    let mut history = vec![expected.clone()];
    for amount in 1..=23 {
        let committed = with_snapshots
            .execute_with_metadata(&id, Add(amount), metadata.clone())
            .await
            .expect("execute");
        assert_eq!(committed.version, amount);
        assert_eq!(committed.events.len(), 1);
        let event = &committed.events[0];
        assert_eq!(event.data, CounterEvent::Added { amount });
        assert_eq!(event.stream_version, amount);
        assert_eq!(event.metadata.correlation_id, Some(correlation));
        assert_eq!(event.metadata.extra["user"], "tester");
        expected.value += amount;
        expected.additions += 1;
        history.push(expected.clone());
    }
    let snapshot = store
        .load_snapshot(&stream)
        .await
        .expect("load snapshot")
        .expect("a snapshot was taken");
    assert_eq!(
        snapshot.stream_version, 20,
        "the policy snapshots at multiples of 5"
    );

    let loaded = with_snapshots.load(&id).await.expect("load");
    assert_eq!((loaded.state, loaded.version), (expected.clone(), 23));
    let replayed = plain.load(&id).await.expect("load without snapshots");
    assert_eq!(
        replayed.state, expected,
        "snapshot + tail equals a full replay"
    );

    for version in [0, 1, 7, 20, 22, 23] {
        let past = with_snapshots.load_at(&id, version).await.expect("load_at");
        assert_eq!(past.version, version);
        assert_eq!(
            past.state, history[version as usize],
            "state at version {version}"
        );
    }
    match with_snapshots.load_at(&id, 24).await {
        Err(EngineError::VersionNotFound {
            requested: 24,
            current: 23,
            ..
        }) => {}
        other => panic!("expected VersionNotFound, got {other:?}"),
    }

    // A snapshot from another schema version, and one whose state no longer fits the
    // type, are both ignored in favour of the events.
    for (schema_version, state) in [
        (99, json!({ "value": 1 })),
        (1, json!({ "value": "garbage" })),
    ] {
        store
            .save_snapshot(
                &stream,
                Snapshot {
                    stream_version: 23,
                    schema_version,
                    state,
                },
            )
            .await
            .expect("save");
        let loaded = with_snapshots
            .load(&id)
            .await
            .expect("load ignores the bad snapshot");
        assert_eq!(loaded.state, expected);
    }

    // A refusal is returned as the domain error and writes nothing.
    match with_snapshots.execute(&id, Add(LIMIT)).await {
        Err(EngineError::Rejected(OverLimit { amount })) => assert_eq!(amount, LIMIT),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        plain.load(&id).await.expect("load").version,
        23,
        "a refusal writes nothing"
    );

    // Without a correlation id, the engine gives all events of a command the same fresh one.
    let committed = plain.execute(&id, Add(1)).await.expect("execute");
    assert!(committed.events[0].metadata.correlation_id.is_some());
    assert_ne!(
        committed.events[0].metadata.correlation_id,
        Some(correlation)
    );
}

/// Two copies of one command (one command id) racing: the second looks its id up before
/// the first commits, and would load after it. It must still return the first's outcome, not
/// append a second time.
pub async fn a_command_racing_its_own_repeat_is_applied_once<S: Store>(store: S) {
    let probe = Probe::new(store.clone());
    let repeat_engine = Engine::<Counter>::new(probe.clone(), ());
    let first_engine = Engine::<Counter>::new(store.clone(), ());
    let id = uuid::Uuid::now_v7().to_string();
    let metadata = Metadata::default().with_command_id(uuid::Uuid::now_v7());

    probe.command_lookup.arm();
    let repeat = {
        let (id, metadata) = (id.clone(), metadata.clone());
        tokio::spawn(async move {
            repeat_engine
                .execute_with_metadata(&id, Add(5), metadata)
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(20), probe.command_lookup.entered())
        .await
        .expect("the repeat looks its command id up");
    // The repeat has looked its id up (nothing yet) and is held; the first copy runs and
    // commits meanwhile.
    let first = first_engine
        .execute_with_metadata(&id, Add(5), metadata)
        .await
        .expect("the first copy commits");
    probe.command_lookup.release();
    let repeat = repeat
        .await
        .expect("repeat task")
        .expect("the repeat succeeds");

    assert_eq!(
        repeat.version, first.version,
        "the repeat returns the first's outcome"
    );
    let stream = StreamId::new("counter", &id).expect("valid stream id");
    let stored = store.read_stream(&stream, 1, 100).await.expect("read");
    assert_eq!(stored.len(), 1, "the command was applied once: {stored:?}");
}

/// `execute_expecting` runs a command only at the caller's version, without retrying,
/// also on an engine whose memory image is behind or ahead of what the caller saw.
pub async fn commands_expecting_a_version_run_only_at_it<S: Store>(store: S) {
    let cached = Engine::<Counter>::new(store.clone(), ()).with_image_cache(16);
    let other = Engine::<Counter>::new(store.clone(), ());
    let id = uuid::Uuid::now_v7().to_string();
    let unexpected = |result: Result<_, EngineError<OverLimit>>| match result {
        Err(EngineError::UnexpectedVersion {
            expected, actual, ..
        }) => (expected, actual),
        other => panic!("expected UnexpectedVersion, got {other:?}"),
    };

    let first = cached
        .execute_expecting(&id, 0, Add(1))
        .await
        .expect("v0: new");
    assert_eq!(first.version, 1);
    assert_eq!(
        unexpected(cached.execute_expecting(&id, 0, Add(1)).await),
        (0, 1)
    );
    other
        .execute(&id, Add(1))
        .await
        .expect("another writer: v2");
    // The cached image (v1) agrees with the caller, the stream does not: the append's
    // check refuses it, with no retry.
    assert_eq!(
        unexpected(cached.execute_expecting(&id, 1, Add(5)).await),
        (1, 2)
    );
    let third = cached
        .execute_expecting(&id, 2, Add(5))
        .await
        .expect("at v2");
    assert_eq!(third.version, 3);
    other
        .execute(&id, Add(1))
        .await
        .expect("another writer: v4");
    // The caller saw v4; the cached image is behind at v3: decided on the stream.
    let fifth = cached
        .execute_expecting(&id, 4, Add(1))
        .await
        .expect("at v4");
    assert_eq!(fifth.version, 5);
    assert_eq!(
        unexpected(other.execute_expecting(&id, 9, Add(1)).await),
        (9, 5)
    );
    let loaded = other.load(&id).await.expect("load");
    assert_eq!(
        (loaded.version, loaded.state.value),
        (5, 9),
        "refusals wrote nothing"
    );
}
