//! What no store can keep exactly is refused before any I/O: a NaN or an infinity in an
//! event (serde_json would have stored `null`, and the aggregate would never have loaded
//! again), or in a snapshot's state (not saved; the events are replayed instead).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::Store;
use crate::codec::{self, serde_enum, DecodeErrorKind, EncodeError, JsonError};
use crate::{
    Aggregate, Command, DomainEvent, Engine, EngineError, EventFilter, EventTypeInfo,
    ExpectedVersion, Metadata, NewEvent, PayloadError, Position, Snapshot, SnapshotPolicy,
    StoredEvent, StreamId,
};

/// A ledger of amounts, with floats where the application put them: at the top of an
/// event, in a struct inside a `Vec`, and in the state (the product can overflow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Ledger {
    pub product: f64,
    pub total: f64,
    pub entries: u64,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            product: 1.0,
            total: 0.0,
            entries: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum LedgerEvent {
    #[serde(rename = "ledger.noted")]
    Noted { amount: f64 },
    #[serde(rename = "ledger.itemised")]
    Itemised { lines: Vec<Line> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Line {
    pub sku: String,
    pub price: f32,
}

#[derive(Debug, Clone)]
pub(crate) enum LedgerCommand {
    /// One amount.
    Note(f64),
    /// One line per price.
    Itemise(Vec<f32>),
}

#[derive(Debug, thiserror::Error)]
#[error("a ledger refuses nothing")]
pub(crate) struct Never;

impl DomainEvent for LedgerEvent {
    const EVENT_TYPES: &'static [EventTypeInfo] = &[
        EventTypeInfo {
            name: "ledger.noted",
            version: 1,
        },
        EventTypeInfo {
            name: "ledger.itemised",
            version: 1,
        },
    ];

    fn event_type(&self) -> &'static str {
        match self {
            LedgerEvent::Noted { .. } => "ledger.noted",
            LedgerEvent::Itemised { .. } => "ledger.itemised",
        }
    }

    fn encode(&self) -> Result<Value, JsonError> {
        serde_enum::encode(self)
    }

    fn decode(event_type: &str, data: &Value) -> Result<Self, PayloadError> {
        serde_enum::decode(event_type, data)
    }
}

impl Command for LedgerCommand {
    fn command_name(&self) -> &'static str {
        match self {
            LedgerCommand::Note(_) => "Note",
            LedgerCommand::Itemise(_) => "Itemise",
        }
    }
}

impl Aggregate for Ledger {
    const TYPE: &'static str = "ledger";
    type Command = LedgerCommand;
    type Event = LedgerEvent;
    type Error = Never;
    type Services = ();

    async fn handle(&self, command: &LedgerCommand, _: &()) -> Result<Vec<LedgerEvent>, Never> {
        Ok(vec![match command {
            LedgerCommand::Note(amount) => LedgerEvent::Noted { amount: *amount },
            LedgerCommand::Itemise(prices) => LedgerEvent::Itemised {
                lines: prices
                    .iter()
                    .enumerate()
                    .map(|(i, &price)| Line {
                        sku: format!("sku-{i}"),
                        price,
                    })
                    .collect(),
            },
        }])
    }

    fn apply(&mut self, event: &LedgerEvent) {
        let mut add = |amount: f64| {
            self.total += amount;
            self.product *= amount;
            self.entries += 1;
        };
        match event {
            LedgerEvent::Noted { amount } => add(*amount),
            LedgerEvent::Itemised { lines } => lines.iter().for_each(|l| add(f64::from(l.price))),
        }
    }
}

/// Everything a store shows of `stream`: its events, the whole global log, its snapshot.
async fn contents<S: Store>(
    store: &S,
    stream: &StreamId,
) -> (
    Vec<Arc<StoredEvent>>,
    Vec<Arc<StoredEvent>>,
    Option<Snapshot>,
) {
    let events = store.read_stream(stream, 1, 1_000).await.expect("read");
    let all = store
        .read_all(Position::START, 10_000, &EventFilter::all())
        .await
        .expect("read all");
    let snapshot = store.load_snapshot(stream).await.expect("load snapshot");
    (events, all, snapshot)
}

/// The same float, NaN included.
fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b
}

/// NaN, +∞ and −∞, in an `f64` at the top of an event and in an `f32` of a struct in a
/// `Vec`, through `Engine::execute` (plain, snapshotting every event, with the memory
/// image): each is `EngineError::NonFinite` naming the stream, the event type and the
/// path; the store is unchanged (every event of the stream and of the log, the
/// snapshot); the aggregate still loads and takes the next command.
pub async fn non_finite_floats_in_events_are_refused_before_any_io<S: Store>(store: S) {
    let engines = [
        ("plain", Engine::<Ledger>::new(store.clone(), ())),
        (
            "snapshots",
            Engine::<Ledger>::new(store.clone(), ())
                .with_snapshots(store.clone(), SnapshotPolicy::EveryEvents(1)),
        ),
        (
            "image",
            Engine::<Ledger>::new(store.clone(), ()).with_image_cache(16),
        ),
    ];
    for (setup, engine) in engines {
        let id = format!("notes-{setup}-{}", uuid::Uuid::now_v7());
        let stream = StreamId::new("ledger", &id).expect("valid");
        engine
            .execute(&id, LedgerCommand::Note(1.5))
            .await
            .expect("a finite note");
        let before = contents(&store, &stream).await;
        assert_eq!(before.0.len(), 1, "{setup}");
        assert_eq!(before.2.is_some(), setup == "snapshots", "{setup}");
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let cases = [
                (LedgerCommand::Note(bad), "ledger.noted", "amount"),
                (
                    LedgerCommand::Itemise(vec![1.0, 2.0, bad as f32]),
                    "ledger.itemised",
                    "lines[2].price",
                ),
            ];
            for (command, event_type, path) in cases {
                let shown = format!("{setup}: {bad} at {path}");
                match engine.execute(&id, command).await {
                    Err(EngineError::NonFinite {
                        stream: s,
                        event_type: t,
                        path: p,
                        value,
                    }) if s == stream && t == event_type && p == path && same(value, bad) => {}
                    other => panic!("{shown}: expected EngineError::NonFinite, got {other:?}"),
                }
                assert!(
                    contents(&store, &stream).await == before,
                    "{shown}: the store changed"
                );
            }
        }
        let loaded = engine.load(&id).await.expect("the aggregate still loads");
        assert_eq!((loaded.version, loaded.state.total), (1, 1.5), "{setup}");
        let next = engine
            .execute(&id, LedgerCommand::Itemise(vec![0.25, 0.5]))
            .await
            .expect("the next command");
        assert_eq!(next.version, 2, "{setup}");
        let loaded = engine.load(&id).await.expect("load");
        assert_eq!((loaded.state.total, loaded.state.entries), (2.25, 3));
    }

    // The message says where, and the codec says the same to a caller without an engine.
    let refused = Engine::<Ledger>::new(store.clone(), ())
        .execute("notes-0", LedgerCommand::Note(f64::NAN))
        .await
        .expect_err("NaN");
    assert_eq!(
        refused.to_string(),
        "cannot store event \"ledger.noted\" in ledger/notes-0: `amount` is NaN, which JSON \
         cannot hold (it would be stored as null and never read back)"
    );
    let lines = vec![Line {
        sku: "a".into(),
        price: f32::INFINITY,
    }];
    match codec::encode(&LedgerEvent::Itemised { lines }, Metadata::default()) {
        Err(EncodeError::Json {
            event_type: "ledger.itemised",
            source: JsonError::NonFinite { path, value },
        }) if path == "lines[0].price" && value == f64::INFINITY => {}
        other => panic!("expected a NonFinite encode error, got {other:?}"),
    }
    let nothing = StreamId::new("ledger", "notes-0").expect("valid");
    assert!(contents(&store, &nothing).await.0.is_empty());
}

/// A state holding NaN, +∞ or −∞ (the product of finite amounts overflowing, then times
/// zero) is not snapshotted: the commit stands, the snapshot stays the last sound one,
/// the aggregate loads (replaying from it) and takes the next command, and the next sound
/// state is snapshotted again.
pub async fn a_state_that_cannot_be_stored_is_not_snapshotted<S: Store>(store: S) {
    let engine = Engine::<Ledger>::new(store.clone(), ())
        .with_snapshots(store.clone(), SnapshotPolicy::EveryEvents(1));
    let note = |amount: f64| LedgerCommand::Note(amount);
    // The amounts, and what the product is after them.
    let runs: [(&[f64], f64); 3] = [
        (&[1.0, f64::MAX, f64::MAX], f64::INFINITY),
        (&[1.0, -f64::MAX, f64::MAX], f64::NEG_INFINITY),
        (&[1.0, f64::MAX, f64::MAX, 0.0], f64::NAN),
    ];
    for (amounts, product) in runs {
        let id = uuid::Uuid::now_v7().to_string();
        let stream = StreamId::new("ledger", &id).expect("valid");
        let mut sound = None;
        for (i, &amount) in amounts.iter().enumerate() {
            engine.execute(&id, note(amount)).await.expect("finite");
            let loaded = engine.load(&id).await.expect("load").state;
            if codec::to_json(&loaded).is_ok() {
                sound = Some((i as u64 + 1, loaded));
            }
        }
        let (version, state) = sound.expect("the first note is sound");
        let shown = format!("product {product}");
        let loaded = engine.load(&id).await.expect("loads: replayed");
        assert_eq!(loaded.version, amounts.len() as u64, "{shown}");
        assert!(same(loaded.state.product, product), "{shown}");
        match codec::to_json(&loaded.state) {
            Err(JsonError::NonFinite { path, value }) if path == "product" => {
                assert!(same(value, product), "{shown}")
            }
            other => panic!("{shown}: expected NonFinite at `product`, got {other:?}"),
        }
        let before = contents(&store, &stream).await;
        let snapshot = before.2.clone().expect("the last sound state's snapshot");
        assert_eq!(snapshot.stream_version, version, "{shown}");
        let kept: Ledger = serde_json::from_value(snapshot.state).expect("a readable snapshot");
        assert_eq!(kept, state, "{shown}");
        assert_eq!(
            before.0.len(),
            amounts.len(),
            "{shown}: every commit stands"
        );

        // Another unstorable state: committed, still no snapshot.
        engine.execute(&id, note(2.0)).await.expect("finite");
        let after = contents(&store, &stream).await;
        assert_eq!(after.2, before.2, "{shown}");
        assert_eq!(after.0.len(), amounts.len() + 1, "{shown}");
        // A sound state again (a new ledger here): snapshotted as usual.
        let fresh = uuid::Uuid::now_v7().to_string();
        engine.execute(&fresh, note(3.0)).await.expect("finite");
        let fresh_stream = StreamId::new("ledger", &fresh).expect("valid");
        let taken = store.load_snapshot(&fresh_stream).await.expect("load");
        assert_eq!(
            taken.map(|s| s.state),
            Some(json!({ "total": 3.0, "product": 3.0, "entries": 1 }))
        );
    }
}

/// A stream that already holds `null` where a float belongs (what versions before the
/// check stored for NaN) fails to load with a decode error that says what probably
/// happened; nothing else about the stream changes.
pub async fn a_float_stored_as_null_is_a_decode_error_that_says_why<S: Store>(store: S) {
    let id = format!("notes-{}", uuid::Uuid::now_v7());
    let stream = StreamId::new("ledger", &id).expect("valid");
    let old = NewEvent::new(
        "ledger.noted",
        1,
        json!({ "amount": null }),
        Metadata::default(),
    )
    .expect("valid");
    store
        .append(&stream, ExpectedVersion::NoStream, vec![old])
        .await
        .expect("a null is storable");
    let engine = Engine::<Ledger>::new(store.clone(), ());
    let error = match engine.load(&id).await {
        Err(EngineError::Decode(error)) => error,
        other => panic!("expected a decode error, got {other:?}"),
    };
    assert!(matches!(error.kind, DecodeErrorKind::InvalidData(_)));
    let message = error.to_string();
    let expected = format!(
        "cannot decode event \"ledger.noted\" v1 at ledger/{id} version 1: invalid data: \
         invalid type: null, expected f64 (a float stored as null: versions of cqrs-core \
         before NaN and infinities were refused stored them as null"
    );
    assert!(message.starts_with(&expected), "{message}");
    // A null where the code expects something else than a float gets no such hint.
    let other = format!("other-{}", uuid::Uuid::now_v7());
    let not_a_float = NewEvent::new(
        "ledger.itemised",
        1,
        json!({ "lines": [{ "sku": null, "price": 1.0 }] }),
        Metadata::default(),
    )
    .expect("valid");
    let other_stream = StreamId::new("ledger", &other).expect("valid");
    store
        .append(&other_stream, ExpectedVersion::NoStream, vec![not_a_float])
        .await
        .expect("append");
    let message = engine
        .load(&other)
        .await
        .expect_err("a null sku")
        .to_string();
    assert!(message.contains("expected a string"), "{message}");
    assert!(!message.contains("stored them as null"), "{message}");
}
