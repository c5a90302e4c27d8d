//! The bank domain written with the derives: names, versions, codec and engine.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cqrs_core::{Aggregate, Command, DomainEvent, Envelope, EventTypeInfo, Listener, Projection};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

mod upcast {
    use serde_json::Value;

    /// v1 had `cents`; v2 calls it `amount`.
    pub fn deposited_v1(mut data: Value) -> Result<Value, String> {
        let cents = data
            .as_object_mut()
            .and_then(|o| o.remove("cents"))
            .ok_or("no `cents` in a v1 deposit")?;
        data["amount"] = cents;
        Ok(data)
    }

    /// v2 had no currency; v3 has one.
    pub fn deposited_v2(mut data: Value) -> Result<Value, String> {
        data["currency"] = Value::from("EUR");
        Ok(data)
    }
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "account.", rename_all = "snake_case")]
pub enum AccountEvent {
    Opened {
        owner: String,
    },
    #[event(
        version = 3,
        upcast(from = 1, with = upcast::deposited_v1),
        upcast(from = 2, with = upcast::deposited_v2)
    )]
    Deposited {
        amount: u64,
        currency: String,
    },
    Withdrawn {
        amount: u64,
    },
    #[event(name = "account.closed.v1")]
    Closed,
}

#[derive(Debug, Command)]
#[command(id = account_id)]
pub enum AccountCommand {
    Open { account_id: String, owner: String },
    Deposit { account_id: String, amount: u64 },
    Withdraw { account_id: String, amount: u64 },
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum AccountError {
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the account is not open")]
    NotOpen,
    #[error("insufficient funds: balance {balance}, asked {asked}")]
    InsufficientFunds { balance: u64, asked: u64 },
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = AccountCommand, event = AccountEvent, error = AccountError)]
pub struct Account {
    open: bool,
    balance: u64,
}

impl Account {
    async fn handle(
        &self,
        command: &AccountCommand,
        _: &(),
    ) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand::*;
        match command {
            Open { owner, .. } if !self.open => Ok(vec![AccountEvent::Opened {
                owner: owner.clone(),
            }]),
            Open { .. } => Err(AccountError::AlreadyOpen),
            _ if !self.open => Err(AccountError::NotOpen),
            Deposit { amount, .. } => Ok(vec![AccountEvent::Deposited {
                amount: *amount,
                currency: "EUR".into(),
            }]),
            Withdraw { amount, .. } if *amount > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    asked: *amount,
                })
            }
            Withdraw { amount, .. } => Ok(vec![AccountEvent::Withdrawn { amount: *amount }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Opened { .. } => self.open = true,
            AccountEvent::Deposited { amount, .. } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
            AccountEvent::Closed => self.open = false,
        }
    }
}

#[derive(Clone, Default, Projection)]
#[projection(event = AccountEvent, events(Deposited, Withdrawn))]
pub struct Balances {
    balances: Arc<Mutex<HashMap<String, i64>>>,
}

impl Balances {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        self.balances.lock().unwrap().clear();
        Ok(())
    }

    async fn handle(&self, event: &Envelope<AccountEvent>) -> Result<(), std::convert::Infallible> {
        let delta = match &event.data {
            AccountEvent::Deposited { amount, .. } => *amount as i64,
            AccountEvent::Withdrawn { amount } => -(*amount as i64),
            _ => 0,
        };
        let mut map = self.balances.lock().unwrap();
        *map.entry(event.stream.id().to_owned()).or_default() += delta;
        Ok(())
    }
}

#[test]
fn event_names_follow_prefix_and_case() {
    let names: Vec<_> = AccountEvent::EVENT_TYPES.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "account.opened",
            "account.deposited",
            "account.withdrawn",
            "account.closed.v1"
        ]
    );
    assert_eq!(
        AccountEvent::EVENT_TYPES[1],
        EventTypeInfo {
            name: "account.deposited",
            version: 3
        }
    );
    assert_eq!(AccountEvent::Closed.event_type(), "account.closed.v1");
    assert_eq!(AccountEvent::Withdrawn { amount: 1 }.event_version(), 1);
    let deposit = AccountEvent::Deposited {
        amount: 1,
        currency: "EUR".into(),
    };
    assert_eq!(deposit.event_version(), 3);
    assert_eq!(AccountEvent::UPCASTERS.len(), 2);
    assert_eq!(AccountEvent::UPCASTERS[0].event_type, "account.deposited");
    assert_eq!(AccountEvent::UPCASTERS[1].from_version, 2);
}

#[test]
fn encode_decode_round_trip() {
    let cases = [
        (
            AccountEvent::Opened {
                owner: "ada".into(),
            },
            json!({"owner": "ada"}),
        ),
        (
            AccountEvent::Deposited {
                amount: 5,
                currency: "EUR".into(),
            },
            json!({"amount": 5, "currency": "EUR"}),
        ),
        (AccountEvent::Withdrawn { amount: 2 }, json!({"amount": 2})),
        (AccountEvent::Closed, Value::Null),
    ];
    for (event, data) in cases {
        assert_eq!(event.encode().unwrap(), data);
        assert_eq!(
            AccountEvent::decode(event.event_type(), &data).unwrap(),
            event
        );
    }
    assert!(matches!(
        AccountEvent::decode("Opened", &json!({"owner": "x"})),
        Err(cqrs_core::PayloadError::UnknownType)
    ));
    assert!(matches!(
        AccountEvent::decode("account.opened", &json!({"owner": 3})),
        Err(cqrs_core::PayloadError::Json(_))
    ));
}

#[test]
fn command_names_and_ids() {
    let cmd = AccountCommand::Deposit {
        account_id: "acc-1".into(),
        amount: 3,
    };
    assert_eq!(cmd.command_name(), "Deposit");
    assert_eq!(cmd.aggregate_id().as_deref(), Some("acc-1"));
}

#[test]
fn aggregate_and_projection_constants() {
    assert_eq!(Account::TYPE, "account");
    assert_eq!(Account::SNAPSHOT_VERSION, 1);
    assert_eq!(Balances::NAME, "balances");
    assert_eq!(Balances::VERSION, 1);
    assert_eq!(
        Balances::event_types(),
        ["account.deposited", "account.withdrawn"]
    );
}

#[tokio::test]
async fn aggregate_decides_and_folds() {
    let mut account = Account::default();
    let open = AccountCommand::Open {
        account_id: "a".into(),
        owner: "ada".into(),
    };
    let events = Aggregate::handle(&account, &open, &()).await.unwrap();
    for e in &events {
        Aggregate::apply(&mut account, e);
    }
    let deposit = AccountCommand::Deposit {
        account_id: "a".into(),
        amount: 10,
    };
    for e in Aggregate::handle(&account, &deposit, &()).await.unwrap() {
        Aggregate::apply(&mut account, &e);
    }
    assert_eq!(account.balance, 10);
    let withdraw = AccountCommand::Withdraw {
        account_id: "a".into(),
        amount: 11,
    };
    assert_eq!(
        Aggregate::handle(&account, &withdraw, &()).await,
        Err(AccountError::InsufficientFunds {
            balance: 10,
            asked: 11
        })
    );
}

#[tokio::test]
async fn stored_v1_event_is_upcast_through_the_store_and_the_engine() {
    use cqrs_core::{codec, Engine, ExpectedVersion, Metadata, NewEvent, StreamId, StreamStore};
    use cqrs_memory::MemoryStore;

    let store = MemoryStore::new();
    let stream = StreamId::new(Account::TYPE, "acc-1").unwrap();
    // History written by an older binary: a v1 deposit stored `cents`, no currency.
    let old = vec![
        NewEvent::new(
            "account.opened",
            1,
            json!({"owner": "ada"}),
            Metadata::default(),
        )
        .unwrap(),
        NewEvent::new(
            "account.deposited",
            1,
            json!({"cents": 7}),
            Metadata::default(),
        )
        .unwrap(),
    ];
    store
        .append(&stream, ExpectedVersion::NoStream, old)
        .await
        .unwrap();

    // The codec upcasts 1 -> 2 -> 3 on read; storage is untouched.
    let stored = store.read_stream(&stream, 1, 10).await.unwrap();
    assert_eq!(stored[1].event_version, 1);
    let decoded = codec::decode::<AccountEvent>(&stored[1]).unwrap();
    assert_eq!(
        decoded.data,
        AccountEvent::Deposited {
            amount: 7,
            currency: "EUR".into()
        }
    );

    // The engine folds the upcast history, then handles commands on top of it.
    let balances = Balances::default();
    let engine = Engine::<Account>::new(store.clone(), ()).with_projection(balances.clone());
    let loaded = engine.load("acc-1").await.unwrap();
    assert_eq!(loaded.version, 2);
    assert_eq!(loaded.state.balance, 7);

    let committed = engine
        .send(AccountCommand::Withdraw {
            account_id: "acc-1".into(),
            amount: 5,
        })
        .await
        .unwrap();
    assert_eq!(committed.version, 3);
    assert_eq!(committed.events[0].event_type, "account.withdrawn");
    assert_eq!(engine.load("acc-1").await.unwrap().state.balance, 2);

    let refused = engine
        .send(AccountCommand::Withdraw {
            account_id: "acc-1".into(),
            amount: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.rejection(),
        Some(&AccountError::InsufficientFunds {
            balance: 2,
            asked: 5
        })
    );
    // The inline projection saw the committed withdrawal.
    assert_eq!(balances.balances.lock().unwrap().get("acc-1"), Some(&-5));

    // New deposits are written at the current version.
    let committed = engine
        .send(AccountCommand::Deposit {
            account_id: "acc-1".into(),
            amount: 1,
        })
        .await
        .unwrap();
    assert_eq!(committed.events[0].event_version, 3);
    let stored = store.read_stream(&stream, 4, 10).await.unwrap();
    assert_eq!(stored[0].data, json!({"amount": 1, "currency": "EUR"}));
}
