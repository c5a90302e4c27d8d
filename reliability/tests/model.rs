//! Model-based tests: random sequences of appends (with random expected
//! versions, empty batches and reused event ids), stream reads, global reads (from random
//! positions, with random filters), counts, and snapshot saves and loads, run against the
//! memory store and PostgreSQL. Every observable result must be identical: success or the
//! typed error and its fields, versions, the events read (ids, types, data, metadata, and
//! their places in each store's global order), snapshots.
//!
//! Each case runs in a fresh memory store and, on PostgreSQL, on stream types of its own
//! (a random tag), with every global read filtered to those types, so that the cases
//! share one schema without seeing each other. `PROPTEST_CASES` sets the number of cases
//! (default 256).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cqrs_core::{
    EventFilter, EventStore, ExpectedVersion, Metadata, NewEvent, Position, Snapshot,
    SnapshotStore, StoreError, StoredEvent, StreamId, StreamStore,
};
use cqrs_memory::MemoryStore;
use cqrs_postgres::PgStore;
use cqrs_reliability::{exclusive, fresh_pg_store};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};
use serde_json::Value;

const STREAM_TYPES: usize = 2;
const STREAM_IDS: usize = 2;
const EVENT_TYPES: [&str; 3] = ["a", "b", "c"];
/// Filters may name this type too, which is never written.
const FILTER_TYPES: [&str; 4] = ["a", "b", "c", "never"];

#[derive(Debug, Clone)]
enum Op {
    Append {
        stream: usize,
        expected: Expected,
        events: Vec<Event>,
    },
    ReadStream {
        stream: usize,
        from_version: u64,
        max_count: usize,
    },
    ReadAll {
        /// After the n-th event of the case in global order (0: from the start).
        after: usize,
        max_count: usize,
        filter: Filter,
    },
    CountAfter {
        after: usize,
        limit: u64,
        filter: Filter,
    },
    SaveSnapshot {
        stream: usize,
        stream_version: u64,
        schema_version: u32,
        state: Value,
    },
    LoadSnapshot {
        stream: usize,
    },
}

#[derive(Debug, Clone, Copy)]
enum Expected {
    Any,
    NoStream,
    Exact(u64),
}

#[derive(Debug, Clone)]
struct Event {
    event_type: usize,
    event_version: u32,
    data: Value,
    extra: Vec<(String, String)>,
    /// Take the id of an event appended before (the n-th, modulo), or of the previous
    /// event of this batch: a duplicate.
    reuse_id: Option<usize>,
}

#[derive(Debug, Clone)]
struct Filter {
    /// Bit i: stream type i (0 means both: every global read stays within the case).
    stream_types: u8,
    /// Bit i: FILTER_TYPES[i]; 0: no event type filter.
    event_types: u8,
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        // Every finite float: JSON through PostgreSQL's numeric and back.
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z ]{0,6}".prop_map(Value::from),
        any::<String>().prop_map(|s| Value::from(s.chars().take(6).collect::<String>())),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Object and metadata keys: now and then with a NUL, which both stores must refuse
/// alike (as they must any NUL in the strings of `any::<String>()`).
fn key() -> impl Strategy<Value = String> {
    prop_oneof![19 => "[a-z]{0,3}", 1 => "[a-z\u{0}]{1,3}"]
}

fn expected() -> impl Strategy<Value = Expected> {
    prop_oneof![
        3 => Just(Expected::Any),
        1 => Just(Expected::NoStream),
        3 => (0u64..4).prop_map(Expected::Exact),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        0..EVENT_TYPES.len(),
        1u32..3,
        json(),
        prop::collection::vec((key(), "[a-z'\"]{0,3}"), 0..2),
        prop::option::weighted(0.1, 0usize..8),
    )
        .prop_map(|(event_type, event_version, data, extra, reuse_id)| Event {
            event_type,
            event_version,
            data,
            extra,
            reuse_id,
        })
}

fn filter() -> impl Strategy<Value = Filter> {
    (0u8..4, prop_oneof![Just(0u8), 0u8..16]).prop_map(|(stream_types, event_types)| Filter {
        stream_types,
        event_types,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let stream = 0..STREAM_TYPES * STREAM_IDS;
    prop_oneof![
        4 => (stream.clone(), expected(), prop::collection::vec(event(), 0..4))
            .prop_map(|(stream, expected, events)| Op::Append { stream, expected, events }),
        2 => (stream.clone(), 0u64..6, 0usize..5).prop_map(|(stream, from_version, max_count)| {
            Op::ReadStream { stream, from_version, max_count }
        }),
        3 => (0usize..6, 0usize..8, filter())
            .prop_map(|(after, max_count, filter)| Op::ReadAll { after, max_count, filter }),
        1 => (0usize..6, 0u64..6, filter())
            .prop_map(|(after, limit, filter)| Op::CountAfter { after, limit, filter }),
        1 => (stream.clone(), 0u64..6, 0u32..3, json()).prop_map(
            |(stream, stream_version, schema_version, state)| Op::SaveSnapshot {
                stream,
                stream_version,
                schema_version,
                state,
            }
        ),
        1 => stream.prop_map(|stream| Op::LoadSnapshot { stream }),
    ]
}

/// `value` with every float that holds an integer written as the integer of its shortest
/// decimal form: the one difference between the stores' JSON. jsonb keeps a number as
/// its decimal value, not its notation, so a float that serde_json writes as
/// `7.353668385391712e18` comes back as the integer `7353668385391712000`, which is the
/// same float again (typed decoding reads the same `f64`); see the reliability chapter.
fn canonical(value: &Value) -> Value {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 => {
                // Rust prints the shortest decimal that reads back as `f`, without exponent.
                let decimal = f.to_string();
                decimal
                    .parse::<u64>()
                    .map(Value::from)
                    .or_else(|_| decimal.parse::<i64>().map(Value::from))
                    .unwrap_or_else(|_| value.clone())
            }
            _ => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        other => other.clone(),
    }
}

/// An event as a caller observes it; its position is replaced by its rank in the
/// store's own global order (positions are the store's business, their order is not).
#[derive(Debug, PartialEq)]
struct Seen {
    rank: Option<usize>,
    event_id: uuid::Uuid,
    stream: StreamId,
    stream_version: u64,
    event_type: String,
    event_version: u32,
    data: Value,
    metadata: Metadata,
}

#[derive(Debug, PartialEq)]
enum Observed {
    Events(Vec<Seen>),
    Count(u64),
    Snapshot(Option<Snapshot>),
    Saved,
    Failed(String),
}

/// The error as a caller tells it apart: its kind and fields (a driver's text would
/// differ, which is the point: it would be a difference).
fn observe_error(error: StoreError) -> Observed {
    Observed::Failed(match error {
        StoreError::Conflict {
            stream,
            expected,
            actual,
        } => format!("conflict on {stream}: expected {expected:?}, actual {actual}"),
        StoreError::EmptyAppend { stream } => format!("empty append to {stream}"),
        StoreError::DuplicateEventId { stream, event_id } => {
            format!("duplicate {event_id} in {stream}")
        }
        StoreError::Unstorable { stream, reason } => format!("unstorable in {stream}: {reason:?}"),
        StoreError::InvalidIdentifier(e) => format!("invalid identifier: {e:?}"),
        other => format!("unexpected: {other:?}"),
    })
}

/// One store under test, with the global order it has shown so far.
struct Subject<S> {
    store: S,
    /// Position -> rank in the global order, from appends.
    ranks: HashMap<Position, usize>,
    /// Positions in global order.
    order: Vec<Position>,
}

impl<S: EventStore + SnapshotStore> Subject<S> {
    fn new(store: S) -> Self {
        Self {
            store,
            ranks: HashMap::new(),
            order: Vec::new(),
        }
    }

    fn seen(&self, events: Vec<Arc<StoredEvent>>) -> Observed {
        Observed::Events(
            events
                .into_iter()
                .map(|e| Seen {
                    rank: self.ranks.get(&e.position).copied(),
                    event_id: e.event_id,
                    stream: e.stream.clone(),
                    stream_version: e.stream_version,
                    event_type: e.event_type.clone(),
                    event_version: e.event_version,
                    data: canonical(&e.data),
                    metadata: e.metadata.clone(),
                })
                .collect(),
        )
    }

    fn after(&self, n: usize) -> Position {
        match n.min(self.order.len()) {
            0 => Position::START,
            n => self.order[n - 1],
        }
    }

    async fn run(&mut self, case: &Case, op: &Op, batch: Vec<NewEvent>) -> Observed {
        match op {
            Op::Append {
                stream, expected, ..
            } => {
                let expected = match *expected {
                    Expected::Any => ExpectedVersion::Any,
                    Expected::NoStream => ExpectedVersion::NoStream,
                    Expected::Exact(v) => ExpectedVersion::Exact(v),
                };
                match self
                    .store
                    .append(&case.streams[*stream], expected, batch)
                    .await
                {
                    Ok(stored) => {
                        for e in &stored {
                            self.ranks.insert(e.position, self.order.len());
                            self.order.push(e.position);
                        }
                        self.seen(stored)
                    }
                    Err(e) => observe_error(e),
                }
            }
            Op::ReadStream {
                stream,
                from_version,
                max_count,
            } => match self
                .store
                .read_stream(&case.streams[*stream], *from_version, *max_count)
                .await
            {
                Ok(events) => self.seen(events),
                Err(e) => observe_error(e),
            },
            Op::ReadAll {
                after,
                max_count,
                filter,
            } => {
                let after = self.after(*after);
                match self
                    .store
                    .read_all(after, *max_count, &case.filter(filter))
                    .await
                {
                    Ok(events) => {
                        let increasing = events.windows(2).all(|w| w[0].position < w[1].position);
                        let beyond = events.iter().all(|e| e.position > after);
                        if !(increasing && beyond) {
                            return Observed::Failed("global read out of order".into());
                        }
                        self.seen(events)
                    }
                    Err(e) => observe_error(e),
                }
            }
            Op::CountAfter {
                after,
                limit,
                filter,
            } => {
                let after = self.after(*after);
                match self
                    .store
                    .count_after(after, &case.filter(filter), *limit)
                    .await
                {
                    Ok(n) => Observed::Count(n),
                    Err(e) => observe_error(e),
                }
            }
            Op::SaveSnapshot {
                stream,
                stream_version,
                schema_version,
                state,
            } => {
                let snapshot = Snapshot {
                    stream_version: *stream_version,
                    schema_version: *schema_version,
                    state: state.clone(),
                };
                match self
                    .store
                    .save_snapshot(&case.streams[*stream], snapshot)
                    .await
                {
                    Ok(()) => Observed::Saved,
                    Err(e) => observe_error(e),
                }
            }
            Op::LoadSnapshot { stream } => {
                match self.store.load_snapshot(&case.streams[*stream]).await {
                    Ok(snapshot) => Observed::Snapshot(snapshot.map(|s| Snapshot {
                        state: canonical(&s.state),
                        ..s
                    })),
                    Err(e) => observe_error(e),
                }
            }
        }
    }
}

/// The names of one case: its stream types are its own.
struct Case {
    stream_types: Vec<String>,
    streams: Vec<StreamId>,
    /// Every event id handed out so far, for reuse.
    ids: Vec<uuid::Uuid>,
}

impl Case {
    fn new() -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let stream_types: Vec<String> = (0..STREAM_TYPES).map(|t| format!("m{t}_{tag}")).collect();
        let streams = stream_types
            .iter()
            .flat_map(|t| (0..STREAM_IDS).map(move |i| StreamId::new(t, &format!("s{i}"))))
            .collect::<Result<_, _>>()
            .expect("valid streams");
        Self {
            stream_types,
            streams,
            ids: Vec::new(),
        }
    }

    fn filter(&self, filter: &Filter) -> EventFilter {
        let stream_types: Vec<&String> = self
            .stream_types
            .iter()
            .enumerate()
            .filter(|(i, _)| filter.stream_types == 0 || filter.stream_types & (1 << i) != 0)
            .map(|(_, t)| t)
            .collect();
        let event_types: Vec<&str> = FILTER_TYPES
            .iter()
            .enumerate()
            .filter(|(i, _)| filter.event_types & (1 << i) != 0)
            .map(|(_, t)| *t)
            .collect();
        EventFilter::all()
            .with_stream_types(stream_types)
            .expect("valid")
            .with_event_types(event_types)
            .expect("valid")
    }

    /// The batch of an append, with the same ids for both stores.
    fn batch(&mut self, events: &[Event]) -> Vec<NewEvent> {
        let mut batch: Vec<NewEvent> = Vec::with_capacity(events.len());
        for e in events {
            let metadata = e.extra.iter().fold(Metadata::default(), |m, (k, v)| {
                m.with_extra(k.clone(), v.clone())
            });
            let id = match e.reuse_id {
                Some(n) if n % 2 == 0 && !batch.is_empty() => batch[batch.len() - 1].event_id(),
                Some(n) if !self.ids.is_empty() => self.ids[n % self.ids.len()],
                _ => uuid::Uuid::new_v4(),
            };
            self.ids.push(id);
            let event = NewEvent::new(
                EVENT_TYPES[e.event_type],
                e.event_version,
                e.data.clone(),
                metadata,
            )
            .expect("valid event type")
            .with_event_id(id);
            batch.push(event);
        }
        batch
    }
}

/// Events appended, and events returned by global reads, over all cases: the test checks
/// that the sequences do more than fail.
static APPENDED: AtomicUsize = AtomicUsize::new(0);
static READ_ALL: AtomicUsize = AtomicUsize::new(0);

async fn check(pg: &PgStore, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut case = Case::new();
    let mut memory = Subject::new(MemoryStore::new());
    let mut postgres = Subject::new(pg.clone());
    for (i, op) in ops.iter().enumerate() {
        let batch = match op {
            Op::Append { events, .. } => case.batch(events),
            _ => Vec::new(),
        };
        let in_memory = memory.run(&case, op, batch.clone()).await;
        let in_postgres = postgres.run(&case, op, batch).await;
        if let (Op::Append { .. } | Op::ReadAll { .. }, Observed::Events(events)) = (op, &in_memory)
        {
            let seen = if matches!(op, Op::Append { .. }) {
                &APPENDED
            } else {
                &READ_ALL
            };
            seen.fetch_add(events.len(), Ordering::Relaxed);
        }
        prop_assert_eq!(in_memory, in_postgres, "operation {} differs: {:?}", i, op);
    }
    Ok(())
}

#[test]
fn memory_and_postgres_agree_on_every_observable_result() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Inside the runtime's context, so that the pool can close when a failure unwinds.
    let _context = runtime.enter();
    let (_one, pg) = runtime.block_on(async { (exclusive().await, fresh_pg_store(2).await) });
    let mut runner = TestRunner::new(Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    });
    let ops = prop::collection::vec(op(), 1..32);
    let result = runner.run(&ops, |ops| runtime.block_on(check(&pg, &ops)));
    match result {
        Ok(()) => {
            let (appended, read) = (
                APPENDED.load(Ordering::Relaxed),
                READ_ALL.load(Ordering::Relaxed),
            );
            println!("{cases} cases: {appended} events appended, {read} read by global reads");
            assert!(
                appended >= 2 * cases as usize && read >= cases as usize,
                "the generated sequences hardly store or read anything"
            );
        }
        Err(TestError::Fail(reason, ops)) => {
            panic!("the stores differ: {reason}\nminimal sequence: {ops:#?}")
        }
        Err(e) => panic!("{e}"),
    }
}

/// The floats the model test found changed by a round trip through PostgreSQL (before
/// cqrs-postgres enabled serde_json's `float_roundtrip`), and other hard cases: each
/// reads back as the same `f64`.
#[test]
fn floats_read_back_from_postgres_as_written() {
    let floats = [
        -3.725428221869035e-111,
        7.353668385391712e18,
        0.1,
        1.0 / 3.0,
        5e-324,
        2.225_073_858_507_201e-308,
        f64::MIN_POSITIVE,
        f64::MAX,
        -f64::MAX,
        f64::EPSILON,
    ];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _context = runtime.enter();
    runtime.block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store(2).await;
        let stream = StreamId::new("floats", "f").expect("valid");
        let data = serde_json::json!({ "floats": floats });
        let event = NewEvent::new("floats", 1, data, Metadata::default()).expect("valid");
        store
            .append(&stream, ExpectedVersion::NoStream, vec![event])
            .await
            .expect("append");
        let read = store.read_stream(&stream, 1, 1).await.expect("read");
        let back: Vec<f64> =
            serde_json::from_value(read[0].data["floats"].clone()).expect("numbers");
        for (written, read) in floats.iter().zip(&back) {
            assert_eq!(
                written.to_bits(),
                read.to_bits(),
                "{written:e} read back as {read:e}"
            );
        }
    });
}
