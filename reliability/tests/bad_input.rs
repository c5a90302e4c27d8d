//! Bad identifiers and input, on the memory store and on PostgreSQL:
//! empty, 10 KB, NUL-containing and SQL-metacharacter stream ids, event types, schema
//! names, subscription names, filters and metadata keys; NUL characters and deep nesting
//! in JSON; a 10 MB payload. Each is either stored and read back unchanged, or refused
//! with a typed error before anything is written, the same way on both backends. Never a
//! driver error, a panic or an injection.

use std::time::Duration;

use cqrs_core::ident::IdentifierError;
use cqrs_core::store::{UnstorableJson, MAX_JSON_DEPTH};
use cqrs_core::{
    CheckpointStore, Engine, EngineError, EventFilter, EventStore, ExpectedVersion, Metadata,
    NewEvent, Position, Snapshot, SnapshotStore, StoreError, StreamId, SubscriptionName,
};
use cqrs_memory::MemoryStore;
use cqrs_postgres::sqlx::postgres::{PgConnectOptions, PgPool};
use cqrs_postgres::{PgStore, SetupError};
use cqrs_reliability::notebook::{NoteCommand, Notebook};
use cqrs_reliability::{exclusive, fresh_pg_store};
use serde_json::{json, Value};

const TEN_KB: usize = 10 * 1024;

/// Names no store may take: empty, 10 KB, NUL inside, NUL alone.
fn bad_names() -> Vec<String> {
    vec![
        String::new(),
        "x".repeat(TEN_KB),
        "a\0b".to_owned(),
        "\0".to_owned(),
    ]
}

/// Names every store must keep exactly as given: SQL and LIKE metacharacters, quotes,
/// backslashes, placeholders, comments, unicode.
fn awkward_names() -> Vec<String> {
    vec![
        "'; DROP TABLE events; --".to_owned(),
        "\"; DROP SCHEMA public CASCADE; --".to_owned(),
        "%_\\%\\_".to_owned(),
        "$1 $$ $2::text".to_owned(),
        "/* comment */ -- line".to_owned(),
        "ünïcödé 😀 日本".to_owned(),
        "\t\r\n".to_owned(),
    ]
}

fn unique_stream(stream_type: &str) -> StreamId {
    StreamId::new(stream_type, &uuid::Uuid::new_v4().to_string()).expect("a valid stream")
}

fn event(data: Value, metadata: Metadata) -> NewEvent {
    NewEvent::new("note.written", 2, data, metadata).expect("a valid event type")
}

/// A PostgreSQL store on a server that does not exist: an operation that reaches the
/// database fails as `Unavailable`, so any other error was raised before any I/O.
fn unreachable_pg_store() -> PgStore {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let pool = PgStore::pool_options()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy_with(PgConnectOptions::new().host("127.0.0.1").port(port));
    PgStore::new(pool)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Every bad name is a typed error, before any I/O, on both backends.
async fn bad_names_are_refused<S>(backend: &str, store: S)
where
    S: EventStore + CheckpointStore + Clone,
{
    for name in bad_names() {
        let shown = format!("{backend}: {:?}", name.get(..20).unwrap_or(&name));
        assert!(StreamId::new("notebook", &name).is_err(), "{shown}");
        assert!(StreamId::new(&name, "id").is_err(), "{shown}");
        assert!(
            NewEvent::new(name.clone(), 1, json!({}), Metadata::default()).is_err(),
            "{shown}"
        );
        // Refused where they are built: a store takes only the validated types.
        assert!(SubscriptionName::new(name.clone()).is_err(), "{shown}");
        assert!(
            EventFilter::all()
                .with_stream_types([name.clone()])
                .is_err(),
            "{shown}"
        );
        assert!(
            EventFilter::all().with_event_types([name.clone()]).is_err(),
            "{shown}"
        );
        let engine = Engine::<Notebook>::new(store.clone(), ());
        let write = NoteCommand::Write { text: "x".into() };
        let refused = engine.execute(&name, write).await.err();
        assert!(
            matches!(refused, Some(EngineError::InvalidId(_))),
            "{shown}: execute gave {refused:?}"
        );
        let refused = engine.load(&name).await.err();
        assert!(
            matches!(refused, Some(EngineError::InvalidId(_))),
            "{shown}: load gave {refused:?}"
        );
    }
}

#[test]
fn bad_names_are_typed_errors_before_any_io() {
    runtime().block_on(async {
        bad_names_are_refused("memory", MemoryStore::new()).await;
        bad_names_are_refused("unreachable", unreachable_pg_store()).await;
        // Schema names reach SQL as identifiers: only a strict pattern passes.
        let pool = PgPool::connect_lazy_with(PgConnectOptions::new().port(1));
        for name in bad_names().into_iter().chain(awkward_names()) {
            match PgStore::with_pool_and_schema(pool.clone(), &name) {
                Err(SetupError::InvalidSchemaName(refused)) => assert_eq!(refused.name, name),
                other => panic!("schema {name:?}: expected InvalidSchemaName, got {other:?}"),
            }
        }
        let id_error = StreamId::new("notebook", &"é".repeat(TEN_KB / 2)).err();
        assert_eq!(
            id_error,
            Some(IdentifierError::TooLong {
                what: "stream id",
                len: TEN_KB,
                max: cqrs_core::ident::MAX_IDENTIFIER_LEN,
            })
        );
    });
}

/// Metadata keys and values, data keys and strings, stream ids, event types and filters
/// made of awkward text (and empty or 10 KB metadata keys, which jsonb takes) come back
/// exactly as written.
async fn awkward_values_round_trip<S>(backend: &str, store: S)
where
    S: EventStore + CheckpointStore,
{
    let mut keys = awkward_names();
    keys.push(String::new());
    keys.push("k".repeat(TEN_KB));
    let mut metadata = Metadata::default();
    let mut data = serde_json::Map::new();
    for (i, key) in keys.iter().enumerate() {
        metadata = metadata.with_extra(key.clone(), format!("{key}{}", "v".repeat(i * 1000)));
        data.insert(key.clone(), json!([key, { key.clone(): key }]));
    }
    let data = Value::Object(data);
    for name in awkward_names() {
        let stream = StreamId::new(&name, &name).expect("awkward but valid");
        let written = NewEvent::new(name.clone(), 1, data.clone(), metadata.clone())
            .expect("awkward but valid");
        let id = written.event_id();
        store
            .append(&stream, ExpectedVersion::NoStream, vec![written])
            .await
            .unwrap_or_else(|e| panic!("{backend}: append to {stream:?}: {e}"));
        let read = store.read_stream(&stream, 1, 10).await.expect("read");
        assert_eq!(read.len(), 1, "{backend}: {stream:?}");
        let filter = EventFilter::all()
            .with_stream_types([name.clone()])
            .expect("valid")
            .with_event_types([name.clone()])
            .expect("valid");
        let all = store
            .read_all(Position::START, 10, &filter)
            .await
            .expect("read all");
        assert_eq!(
            all.len(),
            1,
            "{backend}: the filter {name:?} matches exactly"
        );
        for e in [&read[0], &all[0]] {
            assert_eq!(
                (e.event_id, &e.stream, &e.event_type),
                (id, &stream, &name),
                "{backend}"
            );
            assert_eq!(e.data, data, "{backend}: data of {stream:?}");
            assert_eq!(e.metadata, metadata, "{backend}: metadata of {stream:?}");
        }
        let checkpoint = SubscriptionName::new(name.clone()).expect("awkward but valid");
        store
            .save_checkpoint(&checkpoint, Position::from_parts(7, 9))
            .await
            .expect("save checkpoint");
        assert_eq!(
            store
                .load_checkpoint(&checkpoint)
                .await
                .expect("load checkpoint"),
            Some(Position::from_parts(7, 9)),
            "{backend}"
        );
    }
    // A LIKE pattern or an injection would have matched more (or dropped the table).
    let everything = store
        .read_all(Position::START, 1_000, &EventFilter::all())
        .await
        .expect("the events are all there");
    assert_eq!(everything.len(), awkward_names().len(), "{backend}");
}

#[test]
fn awkward_names_keys_and_values_are_stored_exactly() {
    runtime().block_on(async {
        awkward_values_round_trip("memory", MemoryStore::new()).await;
        let _one = exclusive().await;
        awkward_values_round_trip("postgres", fresh_pg_store(2).await).await;
    });
}

/// A NUL character anywhere in data, metadata or a snapshot is `Unstorable`, before
/// anything is written (PostgreSQL's jsonb cannot hold it; the memory store refuses it
/// too, so that a test on memory fails where production would).
async fn nul_is_unstorable<S>(backend: &str, store: S)
where
    S: EventStore + SnapshotStore + Clone,
{
    let stream = unique_stream("notebook");
    let cases = [
        (
            "event data",
            json!({ "text": "a\u{0}b" }),
            Metadata::default(),
        ),
        ("event data", json!({ "k\u{0}": 1 }), Metadata::default()),
        ("event data", json!([[["\u{0}"]]]), Metadata::default()),
        (
            "metadata",
            json!({}),
            Metadata::default().with_extra("k\0", "v"),
        ),
        (
            "metadata",
            json!({}),
            Metadata::default().with_extra("k", "\0"),
        ),
    ];
    for (what, data, metadata) in cases {
        // The good event before it in the same batch is not written either.
        let batch = vec![event(json!({}), Metadata::default()), event(data, metadata)];
        match store.append(&stream, ExpectedVersion::Any, batch).await {
            Err(StoreError::Unstorable {
                stream: s,
                reason: UnstorableJson::Nul { what: w },
            }) if s == stream && w == what => {}
            other => panic!("{backend}: NUL in {what}: expected Unstorable, got {other:?}"),
        }
    }
    let state = json!({ "notes": 1, "text": "\u{0}" });
    let snapshot = Snapshot {
        stream_version: 1,
        schema_version: 1,
        state,
    };
    match store.save_snapshot(&stream, snapshot).await {
        Err(StoreError::Unstorable {
            reason: UnstorableJson::Nul {
                what: "snapshot state",
            },
            ..
        }) => {}
        other => panic!("{backend}: NUL in a snapshot: expected Unstorable, got {other:?}"),
    }
    // Through the engine: metadata passed in by the caller (an HTTP header, say).
    let engine = Engine::<Notebook>::new(store.clone(), ());
    let metadata = Metadata::default().with_extra("user-agent", "evil\0agent");
    let text = "a note with a \0 inside".to_owned();
    for (command, metadata) in [
        (
            NoteCommand::Write {
                text: "fine".into(),
            },
            metadata,
        ),
        (NoteCommand::Write { text }, Metadata::default()),
    ] {
        let refused = engine
            .execute_with_metadata(stream.id(), command, metadata)
            .await;
        assert!(
            matches!(
                refused,
                Err(EngineError::Store(StoreError::Unstorable { .. }))
            ),
            "{backend}: {refused:?}"
        );
    }
    let read = store.read_stream(&stream, 1, 10).await.expect("read");
    assert!(read.is_empty(), "{backend}: nothing was written");
    assert_eq!(store.load_snapshot(&stream).await.expect("load"), None);
}

#[test]
fn nul_characters_are_unstorable_on_both_backends() {
    runtime().block_on(async {
        nul_is_unstorable("memory", MemoryStore::new()).await;
        let _one = exclusive().await;
        nul_is_unstorable("postgres", fresh_pg_store(2).await).await;
    });
}

/// `depth` levels of arrays and objects, alternately.
fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("leaf"), |inner, level| {
        if level % 2 == 0 {
            json!([inner])
        } else {
            json!({ "level": inner })
        }
    })
}

/// Data nested `MAX_JSON_DEPTH` deep is stored and read back; one level more is
/// `Unstorable` (PostgreSQL stored it, but no read of the row succeeded afterwards).
async fn depth_is_limited<S>(backend: &str, store: S)
where
    S: EventStore + SnapshotStore,
{
    let stream = unique_stream("notebook");
    let deepest = nested(MAX_JSON_DEPTH);
    store
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![event(deepest.clone(), Metadata::default())],
        )
        .await
        .unwrap_or_else(|e| panic!("{backend}: the deepest allowed data: {e}"));
    let read = store.read_stream(&stream, 1, 10).await.expect("read back");
    assert_eq!(read[0].data, deepest, "{backend}");
    let filter = EventFilter::all()
        .with_stream_types(["notebook"])
        .expect("valid");
    let all = store
        .read_all(Position::START, 10, &filter)
        .await
        .expect("read all");
    assert_eq!(all.len(), 1, "{backend}");

    let too_deep = event(nested(MAX_JSON_DEPTH + 1), Metadata::default());
    let refused = store
        .append(&stream, ExpectedVersion::Exact(1), vec![too_deep])
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Unstorable {
                reason: UnstorableJson::TooDeep { .. },
                ..
            })
        ),
        "{backend}: {refused:?}"
    );
    for (state, stored) in [(nested(MAX_JSON_DEPTH + 1), false), (deepest, true)] {
        let snapshot = Snapshot {
            stream_version: 1,
            schema_version: 1,
            state: state.clone(),
        };
        let saved = store.save_snapshot(&stream, snapshot).await;
        assert_eq!(saved.is_ok(), stored, "{backend}: {saved:?}");
        let loaded = store.load_snapshot(&stream).await.expect("load snapshot");
        assert_eq!(loaded.map(|s| s.state == state), stored.then_some(true));
    }
    assert_eq!(
        store.read_stream(&stream, 1, 10).await.expect("read").len(),
        1,
        "{backend}: the refused event was not written"
    );
}

#[test]
fn nesting_is_limited_the_same_way_on_both_backends() {
    runtime().block_on(async {
        depth_is_limited("memory", MemoryStore::new()).await;
        let _one = exclusive().await;
        depth_is_limited("postgres", fresh_pg_store(2).await).await;
    });
}

/// A 10 MB payload (one 10 MB string, and 10 MB of small fields) is stored and read back
/// unchanged, through a stream read and a global read.
async fn ten_megabytes_round_trip<S>(backend: &str, store: S)
where
    S: EventStore,
{
    const TEN_MB: usize = 10 * 1024 * 1024;
    let one_string = json!({ "text": "0123456789abcdef".repeat(TEN_MB / 16) });
    let many_fields = Value::Object(
        (0..TEN_MB / 60)
            .map(|i| (format!("field-{i:010}"), json!(format!("{i:0>40}"))))
            .collect(),
    );
    let stream = unique_stream("big");
    for (version, data) in [one_string, many_fields].into_iter().enumerate() {
        assert!(data.to_string().len() >= TEN_MB, "the payload is 10 MB");
        store
            .append(
                &stream,
                ExpectedVersion::Exact(version as u64),
                vec![event(data.clone(), Metadata::default())],
            )
            .await
            .unwrap_or_else(|e| panic!("{backend}: append 10 MB: {e}"));
        let read = store
            .read_stream(&stream, version as u64 + 1, 1)
            .await
            .expect("read 10 MB");
        assert!(
            read[0].data == data,
            "{backend}: the payload came back changed"
        );
    }
    let all = store
        .read_all(
            Position::START,
            10,
            &EventFilter::all()
                .with_stream_types(["big"])
                .expect("valid"),
        )
        .await
        .expect("read all");
    assert_eq!(all.len(), 2, "{backend}");
}

#[test]
fn a_10_mb_payload_is_stored_and_read_back() {
    runtime().block_on(async {
        ten_megabytes_round_trip("memory", MemoryStore::new()).await;
        let _one = exclusive().await;
        ten_megabytes_round_trip("postgres", fresh_pg_store(2).await).await;
    });
}
