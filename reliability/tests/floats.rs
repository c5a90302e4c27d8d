//! Floats through the engine, on the memory store and on PostgreSQL (issue 22).
//!
//! serde_json writes NaN and infinities as `null` without an error, so an event holding
//! one used to be accepted and stored as `null`, after which every load of its aggregate
//! failed (`invalid type: null, expected f64`). Now such an event is refused before any
//! I/O as `EngineError::NonFinite`, naming the stream, the event type and the field. And
//! every float that is accepted must come back bit for bit, from the events and from a
//! snapshot, on both backends; the one exception is `-0.0`, which is written as `0.0`
//! everywhere (PostgreSQL's `jsonb` has no negative zero).

use std::convert::Infallible;

use cqrs_core::{
    Aggregate, Command, DomainEvent, Engine, EngineError, EventFilter, EventStore, Position,
    SnapshotPolicy, SnapshotStore, StreamId,
};
use cqrs_memory::MemoryStore;
use cqrs_reliability::{exclusive, fresh_pg_store};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestError, TestRunner};
use serde::{Deserialize, Serialize};

/// The ledger: `ledger.noted` v1 with an `f64`, and samples of both float types.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "ledger.", rename_all = "snake_case")]
enum LedgerEvent {
    Noted { amount: f64 },
    Sampled { values: Vec<f64>, singles: Vec<f32> },
}

#[derive(Debug, Clone, Command)]
enum LedgerCommand {
    Note { amount: f64 },
    Sample { values: Vec<f64>, singles: Vec<f32> },
}

/// Everything it was given, in order.
#[derive(Debug, Default, Clone, Serialize, Deserialize, Aggregate)]
#[aggregate(command = LedgerCommand, event = LedgerEvent, error = Infallible)]
struct Ledger {
    notes: Vec<f64>,
    values: Vec<f64>,
    singles: Vec<f32>,
}

impl Ledger {
    async fn handle(
        &self,
        command: &LedgerCommand,
        _: &(),
    ) -> Result<Vec<LedgerEvent>, Infallible> {
        Ok(vec![match command {
            LedgerCommand::Note { amount } => LedgerEvent::Noted { amount: *amount },
            LedgerCommand::Sample { values, singles } => LedgerEvent::Sampled {
                values: values.clone(),
                singles: singles.clone(),
            },
        }])
    }

    fn apply(&mut self, event: &LedgerEvent) {
        match event {
            LedgerEvent::Noted { amount } => self.notes.push(*amount),
            LedgerEvent::Sampled { values, singles } => {
                self.values.extend(values);
                self.singles.extend(singles);
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

/// The reproduction: `Engine::execute` on `ledger/notes-0` with NaN, +∞ and −∞
/// in `amount`. Each is refused with `EngineError::NonFinite` naming the stream, the
/// event type and the field; nothing is stored; the aggregate loads and takes the next
/// command (before the fix, the first NaN was stored as `null` and every load failed).
async fn the_reproduction<S>(backend: &str, store: S)
where
    S: EventStore + SnapshotStore + Clone,
{
    let engine = Engine::<Ledger>::new(store.clone(), ())
        .with_snapshots(store.clone(), SnapshotPolicy::EveryEvents(1));
    let stream = StreamId::new("ledger", "notes-0").expect("valid");
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        match engine
            .execute("notes-0", LedgerCommand::Note { amount: bad })
            .await
        {
            Err(EngineError::NonFinite {
                stream: s,
                event_type: "ledger.noted",
                path,
                value,
            }) if s == stream && path == "amount" && same(value, bad) => {}
            other => panic!("{backend}: {bad}: expected EngineError::NonFinite, got {other:?}"),
        }
        let stored = store.read_stream(&stream, 1, 10).await.expect("read");
        assert!(stored.is_empty(), "{backend}: {bad} was stored: {stored:?}");
        let all = store
            .read_all(Position::START, 10, &EventFilter::all())
            .await
            .expect("read all");
        assert!(all.is_empty(), "{backend}: the log holds {all:?}");
        let snapshot = store.load_snapshot(&stream).await.expect("load snapshot");
        assert_eq!(snapshot, None, "{backend}");
    }
    let loaded = engine.load("notes-0").await.expect("the aggregate loads");
    assert_eq!(loaded.version, 0, "{backend}");
    let committed = engine
        .execute("notes-0", LedgerCommand::Note { amount: 2.5 })
        .await
        .expect("the next command");
    assert_eq!(committed.version, 1, "{backend}");
    let loaded = engine.load("notes-0").await.expect("load");
    assert_eq!(loaded.state.notes, [2.5], "{backend}");
    let message = engine
        .execute("notes-0", LedgerCommand::Note { amount: f64::NAN })
        .await
        .expect_err("NaN")
        .to_string();
    assert_eq!(
        message,
        "cannot store event \"ledger.noted\" in ledger/notes-0: `amount` is NaN, which JSON \
         cannot hold (it would be stored as null and never read back)",
        "{backend}"
    );
}

#[test]
fn nan_and_infinities_are_refused_and_the_aggregate_keeps_working() {
    runtime().block_on(async {
        the_reproduction("memory", MemoryStore::new()).await;
        let _one = exclusive().await;
        the_reproduction("postgres", fresh_pg_store(2).await).await;
    });
}

/// Any `f64`: proptest's own mix (normal, subnormal, both zeros, infinities, NaN), every
/// bit pattern, and the known hard ones.
fn any_f64() -> impl Strategy<Value = f64> {
    let hard = vec![
        0.0,
        -0.0,
        5e-324,
        -5e-324,
        2.225_073_858_507_201e-308, // the largest subnormal
        f64::MIN_POSITIVE,
        f64::MAX,
        -f64::MAX,
        f64::EPSILON,
        0.1 + 0.2,
        1.0 / 3.0,
        1e16,
        9_007_199_254_740_993.0,
        7.353_668_385_391_712e18,
        -3.725_428_221_869_035e-111,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    prop_oneof![
        4 => any::<f64>(),
        3 => any::<u64>().prop_map(f64::from_bits),
        2 => prop::sample::select(hard),
    ]
}

/// Any `f32`, likewise.
fn any_f32() -> impl Strategy<Value = f32> {
    let hard = vec![
        0.0,
        -0.0,
        f32::from_bits(1),
        f32::MIN_POSITIVE,
        f32::MAX,
        -f32::MAX,
        0.1,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    prop_oneof![
        2 => any::<f32>(),
        2 => any::<u32>().prop_map(f32::from_bits),
        1 => prop::sample::select(hard),
    ]
}

/// What a float must read back as: itself, bit for bit, except `-0.0`, written as `0.0`.
fn expected_f64(v: f64) -> u64 {
    if v == 0.0 {
        0.0_f64.to_bits()
    } else {
        v.to_bits()
    }
}

fn expected_f32(v: f32) -> u32 {
    if v == 0.0 {
        0.0_f32.to_bits()
    } else {
        v.to_bits()
    }
}

/// Accepted and refused, over the cases (the test checks that both happen).
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    refused: usize,
    negative_zeros: usize,
}

impl Tally {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Refused => self.refused += 1,
            Outcome::Accepted { negative_zeros } => {
                self.accepted += 1;
                self.negative_zeros += negative_zeros;
            }
        }
    }
}

/// What happened to one sample.
enum Outcome {
    Refused,
    Accepted { negative_zeros: usize },
}

/// One sample through the engine (snapshotting every event) on `store`: refused exactly
/// when it holds a non-finite float, at the first one, with nothing stored; otherwise read
/// back bit for bit by a replay of the event and from the snapshot.
async fn one_sample<S>(store: &S, values: &[f64], singles: &[f32]) -> Result<Outcome, TestCaseError>
where
    S: EventStore + SnapshotStore + Clone,
{
    let id = uuid::Uuid::new_v4().to_string();
    let stream = StreamId::new("ledger", &id).expect("valid");
    let snapshots = Engine::<Ledger>::new(store.clone(), ())
        .with_snapshots(store.clone(), SnapshotPolicy::EveryEvents(1));
    let first_bad = values
        .iter()
        .position(|v| !v.is_finite())
        .map(|i| format!("values[{i}]"))
        .or_else(|| {
            singles
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| format!("singles[{i}]"))
        });
    let command = LedgerCommand::Sample {
        values: values.to_vec(),
        singles: singles.to_vec(),
    };
    match (first_bad, snapshots.execute(&id, command).await) {
        (
            Some(expected),
            Err(EngineError::NonFinite {
                stream: s,
                event_type,
                path,
                ..
            }),
        ) => {
            prop_assert_eq!(&s, &stream);
            prop_assert_eq!(event_type, "ledger.sampled");
            prop_assert_eq!(path, expected);
            let stored = store.read_stream(&stream, 1, 10).await.expect("read");
            prop_assert!(stored.is_empty(), "stored: {:?}", stored);
            let snapshot = store.load_snapshot(&stream).await.expect("load snapshot");
            prop_assert_eq!(snapshot, None);
            Ok(Outcome::Refused)
        }
        (None, Ok(committed)) => {
            prop_assert_eq!(committed.version, 1);
            let snapshot = store.load_snapshot(&stream).await.expect("load snapshot");
            prop_assert!(snapshot.is_some(), "a sound state is snapshotted");
            let replay = Engine::<Ledger>::new(store.clone(), ());
            for (how, engine) in [("replayed", &replay), ("from the snapshot", &snapshots)] {
                let state = engine.load(&id).await.expect("load").state;
                let read: Vec<u64> = state.values.iter().map(|v| v.to_bits()).collect();
                let written: Vec<u64> = values.iter().map(|v| expected_f64(*v)).collect();
                prop_assert_eq!(read, written, "f64 {}: {:?}", how, values);
                let read: Vec<u32> = state.singles.iter().map(|v| v.to_bits()).collect();
                let written: Vec<u32> = singles.iter().map(|v| expected_f32(*v)).collect();
                prop_assert_eq!(read, written, "f32 {}: {:?}", how, singles);
            }
            let negative_zeros = values
                .iter()
                .filter(|v| **v == 0.0 && v.is_sign_negative())
                .count();
            Ok(Outcome::Accepted { negative_zeros })
        }
        (expected, got) => Err(TestCaseError::fail(format!(
            "expected a refusal at {expected:?}, got {got:?}"
        ))),
    }
}

#[test]
fn every_accepted_float_reads_back_bit_for_bit_on_both_backends() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    let runtime = runtime();
    // Inside the runtime's context, so that the pool can close when a failure unwinds.
    let _context = runtime.enter();
    let (_one, pg) = runtime.block_on(async { (exclusive().await, fresh_pg_store(2).await) });
    let memory = MemoryStore::new();
    let mut runner = TestRunner::new(Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    });
    let samples = (
        prop::collection::vec(any_f64(), 0..8),
        prop::collection::vec(any_f32(), 0..4),
    );
    let tallies = std::cell::RefCell::new((Tally::default(), Tally::default()));
    let result = runner.run(&samples, |(values, singles)| {
        let (in_memory, in_postgres) = runtime.block_on(async {
            let in_memory = one_sample(&memory, &values, &singles).await?;
            Ok::<_, TestCaseError>((in_memory, one_sample(&pg, &values, &singles).await?))
        })?;
        let mut tallies = tallies.borrow_mut();
        tallies.0.count(in_memory);
        tallies.1.count(in_postgres);
        Ok(())
    });
    let tallies = tallies.into_inner();
    match result {
        Ok(()) => {
            println!(
                "{cases} cases: memory {:?}, postgres {:?}",
                tallies.0, tallies.1
            );
            for tally in [&tallies.0, &tallies.1] {
                assert!(
                    tally.accepted >= cases as usize / 2
                        && tally.refused >= cases as usize / 10
                        && tally.negative_zeros > 0,
                    "the samples hardly test both sides: {tally:?}"
                );
            }
        }
        Err(TestError::Fail(reason, sample)) => {
            panic!("a float did not read back: {reason}\nminimal sample: {sample:?}")
        }
        Err(e) => panic!("{e}"),
    }
}
