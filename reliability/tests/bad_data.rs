//! Bad stored data: rows edited by hand on PostgreSQL (`UPDATE` on the
//! events table), and events appended raw by another writer on the memory store (which
//! cannot be edited): data that does not fit its type, an unknown event type, a future
//! schema version, old data an upcaster refuses, a removed metadata key, metadata or
//! data the store cannot read, a negative version.
//!
//! Loading (`Engine::load` and `execute`) gives a typed error naming the stream, the
//! version and the type; a subscription under `FailurePolicy::Park` parks the event with
//! a dead letter saying why and goes on; under `FailurePolicy::Stop` it stops on the
//! event with the typed error in its status and its result, and resumes after it once the
//! row is repaired. Nothing panics.

use std::time::Duration;

use cqrs_core::codec::DecodeErrorKind;
use cqrs_core::subscription::{
    DeliveryError, FailurePolicy, Project, SubscriptionError, SubscriptionState,
};
use cqrs_core::{
    CheckpointStore, Engine, EngineError, EventStore, ExpectedVersion, Metadata, NewEvent,
    Position, RetryPolicy, StoreError, StreamId, StreamStore, Subscription,
};
use cqrs_memory::MemoryStore;
use cqrs_postgres::sqlx;
use cqrs_postgres::PgStore;
use cqrs_reliability::notebook::{NoteCommand, NoteCounts, Notebook};
use cqrs_reliability::{exclusive, fresh_pg_store};
use serde_json::json;

/// What loading a notebook whose version 2 was spoiled must give.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// The codec's error of this kind (`DecodeErrorKind` has no `PartialEq`).
    Decode(Kind),
    /// The store's `Corrupt`, with the event as far as it could be read.
    Corrupt,
    /// No error: the spoiling is harmless (a metadata key is optional).
    Loads,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    InvalidData,
    UnknownEventType,
    UnknownVersion,
    UpcasterFailed,
}

impl Kind {
    fn of(kind: &DecodeErrorKind) -> Option<Kind> {
        match kind {
            DecodeErrorKind::InvalidData(_) => Some(Kind::InvalidData),
            DecodeErrorKind::UnknownEventType => Some(Kind::UnknownEventType),
            DecodeErrorKind::UnknownVersion { .. } => Some(Kind::UnknownVersion),
            DecodeErrorKind::UpcasterFailed { .. } => Some(Kind::UpcasterFailed),
            _ => None,
        }
    }
}

/// One spoiled notebook: its version 1 is sound, its version 2 is not.
#[derive(Debug, Clone)]
struct Spoiled {
    notebook: &'static str,
    /// The event type the row holds after spoiling.
    stored_type: &'static str,
    expect: Expect,
    /// On PostgreSQL: the `SET` clause of the `UPDATE` that spoils it.
    update: String,
}

impl Spoiled {
    fn stream(&self) -> StreamId {
        StreamId::new("notebook", self.notebook).expect("a valid stream")
    }

    /// Whether a subscription fed with the notebook's events fails on version 2. An
    /// unknown type is not among the types the projection consumes, which the store
    /// filters out: it is not delivered at all, by design (a projection reads the event
    /// types it names; the engine's load is what reports an unknown type).
    fn fails_delivery(&self) -> bool {
        !matches!(
            self.expect,
            Expect::Loads | Expect::Decode(Kind::UnknownEventType)
        )
    }
}

const WRITTEN: &str = "note.written";

/// The spoilings of rows edited by hand, in the order the notebooks are written.
fn spoiled_rows() -> Vec<Spoiled> {
    // Stored before stores refused it (see bad_input.rs): deeper than serde_json reads.
    let deep = (0..200).fold(json!(1), |inner, _| json!([inner]));
    vec![
        Spoiled {
            notebook: "wrong-shape",
            stored_type: WRITTEN,
            expect: Expect::Decode(Kind::InvalidData),
            update: r#"data = '{"text": 5, "words": "many"}'"#.into(),
        },
        Spoiled {
            notebook: "not-an-object",
            stored_type: WRITTEN,
            expect: Expect::Decode(Kind::InvalidData),
            update: "data = '[1, 2]'".into(),
        },
        Spoiled {
            notebook: "unknown-type",
            stored_type: "note.vanished",
            expect: Expect::Decode(Kind::UnknownEventType),
            update: "event_type = 'note.vanished'".into(),
        },
        Spoiled {
            notebook: "future-version",
            stored_type: WRITTEN,
            expect: Expect::Decode(Kind::UnknownVersion),
            update: "event_version = 3".into(),
        },
        Spoiled {
            notebook: "v1-without-text",
            stored_type: WRITTEN,
            expect: Expect::Decode(Kind::UpcasterFailed),
            update: r#"event_version = 1, data = '{"txt": "typo"}'"#.into(),
        },
        Spoiled {
            notebook: "missing-metadata-key",
            stored_type: WRITTEN,
            expect: Expect::Loads,
            update: "metadata = metadata - 'correlation_id'".into(),
        },
        Spoiled {
            notebook: "bad-metadata",
            stored_type: WRITTEN,
            expect: Expect::Corrupt,
            update: r#"metadata = jsonb_set(metadata, '{correlation_id}', '"not-a-uuid"')"#.into(),
        },
        Spoiled {
            notebook: "metadata-not-an-object",
            stored_type: WRITTEN,
            expect: Expect::Corrupt,
            update: r#"metadata = '"a string"'"#.into(),
        },
        Spoiled {
            notebook: "too-deep",
            stored_type: WRITTEN,
            expect: Expect::Corrupt,
            update: format!("data = '{deep}'"),
        },
        Spoiled {
            notebook: "negative-version",
            stored_type: WRITTEN,
            expect: Expect::Corrupt,
            update: "event_version = -1".into(),
        },
    ]
}

/// The spoilings another writer can append to the memory store (it cannot store what
/// does not fit its types, so it has no corrupt metadata).
fn spoiled_appends() -> Vec<(Spoiled, NewEvent)> {
    let raw = |event_type: &str, version: u32, data: serde_json::Value| {
        NewEvent::new(event_type, version, data, Metadata::default()).expect("a valid type")
    };
    spoiled_rows()
        .into_iter()
        .filter_map(|spoiled| {
            let event = match spoiled.notebook {
                "wrong-shape" => raw(WRITTEN, 2, json!({ "text": 5, "words": "many" })),
                "not-an-object" => raw(WRITTEN, 2, json!([1, 2])),
                "unknown-type" => raw("note.vanished", 1, json!({})),
                "future-version" => raw(WRITTEN, 3, json!({ "text": "from the future" })),
                "v1-without-text" => raw(WRITTEN, 1, json!({ "txt": "typo" })),
                _ => return None,
            };
            Some((spoiled, event))
        })
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Writes version 1 of every notebook of `spoiled`, plus a sound notebook first.
async fn write_first_notes<S: EventStore + Clone>(store: &S, spoiled: &[Spoiled]) {
    let engine = Engine::<Notebook>::new(store.clone(), ());
    let write = |text: &str| NoteCommand::Write { text: text.into() };
    engine
        .execute("sound", write("a sound note"))
        .await
        .expect("write");
    for s in spoiled {
        engine
            .execute(s.notebook, write("first note"))
            .await
            .expect("write");
    }
}

/// Loading and executing on each spoiled notebook give what `expect` says, and a failed
/// command writes nothing.
async fn loads_name_what_failed<S: EventStore + Clone>(
    backend: &str,
    store: &S,
    spoiled: &[Spoiled],
) {
    let engine = Engine::<Notebook>::new(store.clone(), ());
    for s in spoiled {
        let stream = s.stream();
        let context = format!("{backend}: {}", s.notebook);
        let mut results = vec![engine.load(s.notebook).await.map(|l| l.version)];
        if s.expect != Expect::Loads {
            let write = NoteCommand::Write {
                text: "more".into(),
            };
            results.push(engine.execute(s.notebook, write).await.map(|c| c.version));
        }
        for result in results {
            match (s.expect, result) {
                (Expect::Loads, Ok(version)) => assert_eq!(version, 2, "{context}"),
                (Expect::Decode(kind), Err(EngineError::Decode(e))) => {
                    assert_eq!(Kind::of(&e.kind), Some(kind), "{context}: {e}");
                    assert_eq!(
                        (&e.stream, e.stream_version, e.event_type.as_str()),
                        (&stream, 2, s.stored_type),
                        "{context}"
                    );
                    names_stream_version_and_type(&e.to_string(), s, &context);
                }
                (
                    Expect::Corrupt,
                    Err(EngineError::Store(
                        ref e @ StoreError::Corrupt {
                            stream: ref at,
                            stream_version,
                            event: Some(ref event),
                            ..
                        },
                    )),
                ) => {
                    assert_eq!((at, stream_version), (&stream, 2), "{context}");
                    assert_eq!(event.event_type, s.stored_type, "{context}");
                    names_stream_version_and_type(&e.to_string(), s, &context);
                }
                (_, other) => panic!("{context}: expected {:?}, got {other:?}", s.expect),
            }
        }
        if s.expect != Expect::Loads {
            // Reading from version 3 does not touch the spoiled row: nothing was added.
            let after = store.read_stream(&stream, 3, 10).await.expect("read");
            assert!(after.is_empty(), "{context}: a failed command wrote");
        }
    }
}

fn names_stream_version_and_type(message: &str, s: &Spoiled, context: &str) {
    for part in [
        s.stream().to_string(),
        "version 2".to_owned(),
        s.stored_type.to_owned(),
    ] {
        assert!(
            message.contains(&part),
            "{context}: {message:?} does not name {part:?}"
        );
    }
}

fn subscription<S>(store: &S, counts: &NoteCounts, policy: FailurePolicy) -> Subscription
where
    S: EventStore + CheckpointStore + Clone,
{
    Subscription::new(
        store.clone(),
        Project::new(counts.clone(), store.clone()).expect("valid"),
    )
    .retry(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
    })
    .on_failure(policy)
    .idle_wait(Duration::from_millis(50))
}

/// Under `Park`, every event that fails is parked with a dead letter naming it and its
/// error; every other event reaches the projection.
async fn park_records_and_goes_on<S>(backend: &str, store: &S, spoiled: &[Spoiled])
where
    S: EventStore + CheckpointStore + Clone,
{
    let counts = NoteCounts::default();
    let running = subscription(store, &counts, FailurePolicy::Park).start();
    running
        .caught_up(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{backend}: parking must not stall: {e}"));
    let status = running.status();
    let failing: Vec<&Spoiled> = spoiled.iter().filter(|s| s.fails_delivery()).collect();
    assert_eq!(status.parked, failing.len() as u64, "{backend}: {status:?}");
    let parked = store
        .parked(&subscription_name("note_counts"))
        .await
        .expect("dead letters");
    assert_eq!(parked.len(), failing.len(), "{backend}");
    for (letter, s) in parked.iter().zip(&failing) {
        let context = format!("{backend}: dead letter of {}", s.notebook);
        assert_eq!(
            (&letter.event.stream, letter.event.stream_version),
            (&s.stream(), 2),
            "{context}"
        );
        assert_eq!(letter.event.event_type, s.stored_type, "{context}");
        assert!(
            letter.error.contains(s.stored_type) && letter.error.contains(s.notebook),
            "{context}: {}",
            letter.error
        );
    }
    // Every sound event arrived: version 1 of each notebook, version 2 where harmless.
    assert_eq!(counts.last_version("sound"), Some(1), "{backend}");
    for s in spoiled {
        let last = if s.expect == Expect::Loads { 2 } else { 1 };
        assert_eq!(
            counts.last_version(s.notebook),
            Some(last),
            "{backend}: {}",
            s.notebook
        );
    }
    let harmless = spoiled.iter().filter(|s| s.expect == Expect::Loads).count();
    assert_eq!(
        counts.events(),
        (1 + spoiled.len() + harmless) as u64,
        "{backend}"
    );
    running.shutdown().await.expect("a clean stop");
}

/// Under `Stop`, the subscription stops on `s`'s event with a typed error naming it, in
/// its status and in its result, having delivered everything before it.
async fn stops_on<S>(backend: &str, store: &S, counts: &NoteCounts, s: &Spoiled)
where
    S: EventStore + CheckpointStore + Clone,
{
    let context = format!("{backend}: stop on {}", s.notebook);
    let running = subscription(store, counts, FailurePolicy::Stop).start();
    match running.caught_up(Duration::from_secs(60)).await {
        Err(SubscriptionError::NotRunning {
            state: SubscriptionState::Failed,
            last_error: Some(error),
            ..
        }) => names_stream_version_and_type(&error, s, &context),
        other => panic!("{context}: expected a failed subscription, got {other:?}"),
    }
    match running.join().await {
        Err(SubscriptionError::Failed {
            name,
            source: DeliveryError::Event { event, source },
        }) => {
            assert_eq!(name, "note_counts");
            assert_eq!(
                (
                    &event.stream,
                    event.stream_version,
                    event.event_type.as_str()
                ),
                (&s.stream(), 2, s.stored_type),
                "{context}"
            );
            let typed = match s.expect {
                Expect::Decode(_) => source.is::<cqrs_core::codec::DecodeError>(),
                Expect::Corrupt => source.is::<StoreError>(),
                Expect::Loads => false,
            };
            assert!(typed, "{context}: the source is {source:?}");
        }
        other => panic!("{context}: expected Failed on the event, got {other:?}"),
    }
    assert_eq!(counts.last_version(s.notebook), Some(1), "{context}");
}

#[test]
fn memory_events_from_another_writer_are_typed_errors_parked_or_stopped_on() {
    runtime().block_on(async {
        let store = MemoryStore::new();
        let appends = spoiled_appends();
        let spoiled: Vec<Spoiled> = appends.iter().map(|(s, _)| s.clone()).collect();
        write_first_notes(&store, &spoiled).await;
        for (s, event) in appends {
            store
                .append(&s.stream(), ExpectedVersion::Exact(1), vec![event])
                .await
                .expect("another writer appends");
        }
        loads_name_what_failed("memory", &store, &spoiled).await;
        park_records_and_goes_on("memory", &store, &spoiled).await;
        // From the start again, under Stop. A memory store cannot be repaired: the
        // subscription stops on the first failure.
        store
            .save_checkpoint(&subscription_name("note_counts@v1"), Position::START)
            .await
            .expect("rewind");
        let first = spoiled
            .iter()
            .find(|s| s.fails_delivery())
            .expect("one fails");
        stops_on("memory", &store, &NoteCounts::default(), first).await;
    });
}

/// Spoils the row of `s` as `s.update` says.
async fn spoil(store: &PgStore, s: &Spoiled) {
    let schema = store.schema();
    let sql = format!(
        "UPDATE \"{schema}\".events SET {} \
         WHERE stream_type = 'notebook' AND stream_id = $1 AND stream_version = 2",
        s.update
    );
    run_on_row(store, s, &sql).await;
}

/// Sets the row of `s` back as it was written (from the copy in `originals`).
async fn repair(store: &PgStore, s: &Spoiled) {
    let schema = store.schema();
    let sql = format!(
        "UPDATE \"{schema}\".events e SET event_type = o.event_type, \
         event_version = o.event_version, data = o.data, metadata = o.metadata \
         FROM \"{schema}\".originals o \
         WHERE o.event_id = e.event_id \
         AND e.stream_type = 'notebook' AND e.stream_id = $1 AND e.stream_version = 2"
    );
    run_on_row(store, s, &sql).await;
}

async fn run_on_row(store: &PgStore, s: &Spoiled, sql: &str) {
    let updated = sqlx::query(sql)
        .bind(s.notebook)
        .execute(store.pool())
        .await
        .expect("manual SQL");
    assert_eq!(updated.rows_affected(), 1, "{}", s.notebook);
}

#[test]
fn postgres_rows_edited_by_hand_are_typed_errors_parked_or_stopped_on() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store(4).await;
        let spoiled = spoiled_rows();
        write_first_notes(&store, &spoiled).await;
        let engine = Engine::<Notebook>::new(store.clone(), ());
        for s in &spoiled {
            engine
                .execute(
                    s.notebook,
                    NoteCommand::Write {
                        text: "second note".into(),
                    },
                )
                .await
                .expect("write");
        }
        let schema = store.schema().as_str().to_owned();
        sqlx::query(&format!(
            "CREATE TABLE \"{schema}\".originals AS SELECT * FROM \"{schema}\".events"
        ))
        .execute(store.pool())
        .await
        .expect("keep the rows as written");
        for s in &spoiled {
            spoil(&store, s).await;
        }

        loads_name_what_failed("postgres", &store, &spoiled).await;
        let event = &store
            .read_stream(&spoiled[5].stream(), 2, 1)
            .await
            .expect("read")[0];
        assert_eq!(event.metadata.correlation_id, None, "the key is optional");

        park_records_and_goes_on("postgres", &store, &spoiled).await;

        // Under Stop, from the start again: it stops on each failing row in turn; each
        // is repaired (set back as written), and the next start resumes right there.
        store
            .save_checkpoint(&subscription_name("note_counts@v1"), Position::START)
            .await
            .expect("rewind");
        let counts = NoteCounts::default();
        for s in spoiled.iter().filter(|s| s.fails_delivery()) {
            stops_on("postgres", &store, &counts, s).await;
            repair(&store, s).await;
        }
        let running = subscription(&store, &counts, FailurePolicy::Stop).start();
        running
            .caught_up(Duration::from_secs(60))
            .await
            .expect("every failing row repaired");
        // All events but the one of unknown type, which the projection does not consume.
        assert_eq!(counts.events(), (1 + 2 * spoiled.len() - 1) as u64);
        running.shutdown().await.expect("a clean stop");
    });
}

/// The subscription name `name`, valid by construction of the test.
fn subscription_name(name: &str) -> cqrs_core::SubscriptionName {
    cqrs_core::SubscriptionName::new(name).expect("a valid subscription name")
}
