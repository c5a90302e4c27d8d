//! The same domain by hand (`by_hand.rs`) and with the derives (`by_derive.rs`), and a
//! test that runs the same inputs through both and finds the same outputs: names,
//! versions, upcasters, JSON, decoding (errors included), command ids, and what the
//! engine stores, refuses and folds.

use std::sync::Arc;

use cqrs_core::codec::{DecodeError, DecodeErrorKind};
use cqrs_core::{
    Aggregate, Command, DomainEvent, Engine, EngineError, ExpectedVersion, Listener, Metadata,
    NewEvent, PayloadError, Projection, StoredEvent, StreamId, StreamStore,
};
use serde_json::{json, Value};

/// The body of both versions' `handle`: the same decision over each version's types.
macro_rules! handle_body {
    ($account:expr, $command:expr) => {
        match $command {
            AccountCommand::Open { owner, .. } => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            AccountCommand::Deposit { amount, .. } => Ok(vec![AccountEvent::Deposited {
                amount: *amount,
                currency: "EUR".into(),
            }]),
            AccountCommand::Withdraw { amount, .. } if *amount > $account.balance => {
                Err(AccountError)
            }
            AccountCommand::Withdraw { amount, .. } => {
                Ok(vec![AccountEvent::Withdrawn { amount: *amount }])
            }
        }
    };
}

/// The body of both versions' `apply`.
macro_rules! apply_body {
    ($account:expr, $event:expr) => {
        match $event {
            AccountEvent::Opened { .. } => {}
            AccountEvent::Deposited { amount, .. } => $account.balance += amount,
            AccountEvent::Withdrawn { amount } => $account.balance -= amount,
        }
    };
}

mod by_derive;
mod by_hand;

/// One input, through both versions, as one value per version that the test compares.
macro_rules! both {
    (|$m:ident| $body:expr) => {
        (
            {
                use by_hand as $m;
                $body
            },
            {
                use by_derive as $m;
                $body
            },
        )
    };
}

/// An event of `version` with `data`, stored and read back.
async fn stored(event_type: &str, version: u32, data: Value) -> Arc<StoredEvent> {
    let store = cqrs_memory::MemoryStore::new();
    let stream = StreamId::new("account", "a").expect("a valid stream id");
    let event = NewEvent::new(event_type, version, data, Metadata::default()).expect("valid");
    store
        .append(&stream, ExpectedVersion::NoStream, vec![event])
        .await
        .expect("append");
    let mut read = store.read_stream(&stream, 1, 1).await.expect("read");
    read.pop().expect("the event")
}

#[test]
fn names_versions_and_upcasters_are_the_same() {
    let (hand, derived) = both!(|m| (
        m::AccountEvent::EVENT_TYPES,
        m::AccountEvent::UPCASTERS
            .iter()
            .map(|u| (
                u.event_type,
                u.from_version,
                (u.upcast)(json!({"amount": 1}))
            ))
            .collect::<Vec<_>>(),
        m::AccountEvent::event_type_names(),
        m::Account::TYPE,
        m::Account::SNAPSHOT_VERSION,
        m::Balances::NAME,
        m::Balances::VERSION,
        m::Balances::event_types(),
    ));
    assert_eq!(hand, derived);
}

#[test]
fn events_encode_alike() {
    let (hand, derived) = both!(|m| [
        m::AccountEvent::Opened {
            owner: "Ada".into()
        },
        m::AccountEvent::Deposited {
            amount: 5,
            currency: "EUR".into(),
        },
        m::AccountEvent::Withdrawn { amount: 3 },
    ]
    .iter()
    .map(|e| (
        e.event_type(),
        e.event_version(),
        e.encode().expect("encodes")
    ))
    .collect::<Vec<_>>());
    assert_eq!(hand, derived);
}

#[tokio::test]
async fn stored_data_decodes_alike_or_fails_alike() {
    let inputs = [
        ("account.opened", 1, json!({ "owner": "Ada" })),
        (
            "account.deposited",
            3,
            json!({ "amount": 5, "currency": "EUR" }),
        ),
        (
            "account.deposited",
            1,
            json!({ "amount": 5, "currency": "EUR" }),
        ),
        (
            "account.deposited",
            2,
            json!({ "amount": 5, "currency": "EUR" }),
        ),
        ("account.withdrawn", 1, json!({ "amount": 3 })),
        // Refused: a future version, an unknown type, data of the wrong shape.
        (
            "account.deposited",
            4,
            json!({ "amount": 5, "currency": "EUR" }),
        ),
        ("account.closed", 1, json!({})),
        ("account.withdrawn", 1, json!({ "amount": "three" })),
        ("account.withdrawn", 1, json!({})),
    ];
    for (event_type, version, data) in inputs {
        let event = stored(event_type, version, data.clone()).await;
        let (hand, derived) = both!(|m| (
            cqrs_core::codec::decode_data::<m::AccountEvent>(&event)
                .map(|e| (e.event_type(), e.encode().expect("encodes")))
                .map_err(|e| e.to_string()),
            m::AccountEvent::decode(event_type, &data)
                .map(|e| (e.event_type(), e.encode().expect("encodes")))
                .map_err(|e| e.to_string()),
        ));
        assert_eq!(hand, derived, "{event_type} v{version} {data}");
    }

    // Data that is not an object: both refuse it as invalid data, in serde's words, which
    // differ (the hand-written enum sees a unit variant, the derive a null).
    for data in [json!(null), json!("Ada"), json!(3)] {
        let event = stored("account.opened", 1, data.clone()).await;
        let (hand, derived) = both!(|m| (
            matches!(
                cqrs_core::codec::decode_data::<m::AccountEvent>(&event),
                Err(DecodeError {
                    kind: DecodeErrorKind::InvalidData(_),
                    ..
                })
            ),
            matches!(
                m::AccountEvent::decode("account.opened", &data),
                Err(PayloadError::Json(_))
            ),
        ));
        assert_eq!((hand, derived), ((true, true), (true, true)), "{data}");
    }

    // The other difference: the derive reads a JSON array as the fields in their order, as
    // serde's derived structs do; the hand-written serde enum refuses it. Pinned so that a
    // change to either side shows here.
    let array = json!([3]);
    let (hand, derived) = both!(|m| m::AccountEvent::decode("account.withdrawn", &array)
        .map(|e| e.encode().expect("encodes"))
        .map_err(|e| e.to_string()));
    assert_eq!(
        hand,
        Err("invalid type: sequence, expected struct variant".to_owned())
    );
    assert_eq!(derived.as_ref().ok(), Some(&json!({ "amount": 3 })));
}

#[test]
fn commands_name_themselves_and_their_aggregate_alike() {
    let (hand, derived) = both!(|m| [
        m::AccountCommand::Open {
            account_id: "a".into(),
            owner: "Ada".into(),
        },
        m::AccountCommand::Deposit {
            account_id: "b".into(),
            amount: 1,
        },
        m::AccountCommand::Withdraw {
            account_id: "c".into(),
            amount: 1,
        },
    ]
    .iter()
    .map(|c| (c.command_name(), c.aggregate_id()))
    .collect::<Vec<_>>());
    assert_eq!(hand, derived);
}

/// What the engine made of the commands, in a form both versions share: per command, the
/// events stored (type, version, JSON) and the version reached, or the refusal; then the
/// log as stored, and the state folded from it as its snapshot JSON.
type Run = (
    Vec<Result<(Vec<(String, u32, Value)>, u64), String>>,
    Vec<(u64, String, u32, Value)>,
    (Value, u64),
);

#[tokio::test]
async fn the_engine_stores_refuses_and_folds_alike() {
    let (hand, derived) = both!(|m| async {
        use m::AccountCommand::*;
        let store = Arc::new(cqrs_memory::MemoryStore::new());
        let engine = Engine::<m::Account>::new(store.clone(), ());
        let a = || "a".to_owned();
        let commands = [
            Open {
                account_id: a(),
                owner: "Ada".into(),
            },
            Deposit {
                account_id: a(),
                amount: 100,
            },
            Withdraw {
                account_id: a(),
                amount: 30,
            },
            Withdraw {
                account_id: a(),
                amount: 500,
            },
            Deposit {
                account_id: a(),
                amount: 5,
            },
        ];
        let mut outcomes = Vec::new();
        for command in commands {
            outcomes.push(match engine.send(command).await {
                Ok(committed) => Ok((
                    committed
                        .events
                        .iter()
                        .map(|e| {
                            let data = e.data.encode().expect("encodes");
                            (e.event_type.clone(), e.event_version, data)
                        })
                        .collect(),
                    committed.version,
                )),
                Err(EngineError::Rejected(refused)) => Err(refused.to_string()),
                Err(other) => panic!("the engine failed: {other}"),
            });
        }
        let log = engine
            .stream_store()
            .read_stream(&StreamId::new(m::Account::TYPE, "a").expect("id"), 1, 100)
            .await
            .expect("read the stream")
            .iter()
            .map(|e| {
                (
                    e.stream_version,
                    e.event_type.clone(),
                    e.event_version,
                    e.data.clone(),
                )
            })
            .collect::<Vec<_>>();
        let loaded = engine.load("a").await.expect("loads");
        let state = serde_json::to_value(&loaded.state).expect("serialises");
        let run: Run = (outcomes, log, (state, loaded.version));
        run
    });
    let (hand, derived) = (hand.await, derived.await);
    assert_eq!(hand, derived);
    // Not alike by accident: the run did something.
    assert_eq!(hand.2, (json!({ "balance": 75 }), 4));
    assert_eq!(hand.0[3], Err("refused".to_owned()));
}
