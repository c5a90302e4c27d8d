//! A small domain for the suite's codec and engine tests, written by hand against the
//! traits (the suite cannot depend on the derives it is used to check).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codec::serde_enum;
use crate::personal::PersonalField;
use crate::Upcaster;
use crate::{Aggregate, Command, DomainEvent, EventTypeInfo, PayloadError};

/// The most a counter may hold.
pub(crate) const LIMIT: u64 = 1_000_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Counter {
    pub value: u64,
    pub additions: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Add(pub u64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum CounterEvent {
    /// Version 2; version 1 stored the amount as `n`.
    Added { amount: u64 },
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("adding {amount} would pass the limit")]
pub(crate) struct OverLimit {
    pub amount: u64,
}

fn added_v1_to_v2(mut data: Value) -> Result<Value, String> {
    let n = data
        .get_mut("n")
        .map(Value::take)
        .ok_or("no `n` in Added v1")?;
    Ok(serde_json::json!({ "amount": n }))
}

impl DomainEvent for CounterEvent {
    const EVENT_TYPES: &'static [EventTypeInfo] = &[EventTypeInfo {
        name: "Added",
        version: 2,
    }];
    const UPCASTERS: &'static [Upcaster] = &[Upcaster::new("Added", 1, added_v1_to_v2)];

    fn event_type(&self) -> &'static str {
        match self {
            CounterEvent::Added { .. } => "Added",
        }
    }

    fn encode(&self) -> Result<Value, crate::codec::JsonError> {
        serde_enum::encode(self)
    }

    fn decode(event_type: &str, data: &Value) -> Result<Self, PayloadError> {
        serde_enum::decode(event_type, data)
    }
}

impl Command for Add {
    fn command_name(&self) -> &'static str {
        "Add"
    }
}

impl Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Command = Add;
    type Event = CounterEvent;
    type Error = OverLimit;
    type Services = ();

    async fn handle(&self, command: &Add, _: &()) -> Result<Vec<CounterEvent>, OverLimit> {
        if self.value + command.0 > LIMIT {
            return Err(OverLimit { amount: command.0 });
        }
        Ok(vec![CounterEvent::Added { amount: command.0 }])
    }

    fn apply(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Added { amount } => {
                self.value += amount;
                self.additions += 1;
            }
        }
    }
}

/// An account that refuses to go below zero: the suite's domain where a stale state can
/// decide wrongly both ways (accept what the fresh state refuses, and the reverse).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Account {
    pub balance: u64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Money {
    Deposit(u64),
    Withdraw(u64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum AccountEvent {
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("insufficient funds: {balance} < {requested}")]
pub(crate) struct InsufficientFunds {
    pub balance: u64,
    pub requested: u64,
}

impl DomainEvent for AccountEvent {
    const EVENT_TYPES: &'static [EventTypeInfo] = &[
        EventTypeInfo {
            name: "Deposited",
            version: 1,
        },
        EventTypeInfo {
            name: "Withdrawn",
            version: 1,
        },
    ];

    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Deposited { .. } => "Deposited",
            AccountEvent::Withdrawn { .. } => "Withdrawn",
        }
    }

    fn encode(&self) -> Result<Value, crate::codec::JsonError> {
        serde_enum::encode(self)
    }

    fn decode(event_type: &str, data: &Value) -> Result<Self, PayloadError> {
        serde_enum::decode(event_type, data)
    }
}

impl Command for Money {
    fn command_name(&self) -> &'static str {
        match self {
            Money::Deposit(_) => "Deposit",
            Money::Withdraw(_) => "Withdraw",
        }
    }
}

impl Aggregate for Account {
    const TYPE: &'static str = "account";
    type Command = Money;
    type Event = AccountEvent;
    type Error = InsufficientFunds;
    type Services = ();

    async fn handle(
        &self,
        command: &Money,
        _: &(),
    ) -> Result<Vec<AccountEvent>, InsufficientFunds> {
        match *command {
            Money::Deposit(amount) => Ok(vec![AccountEvent::Deposited { amount }]),
            Money::Withdraw(amount) if amount > self.balance => Err(InsufficientFunds {
                balance: self.balance,
                requested: amount,
            }),
            Money::Withdraw(amount) => Ok(vec![AccountEvent::Withdrawn { amount }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

/// A member whose name and email are personal data about her: the suite's domain for
/// forgetting a subject (crypto-shredding). Her id is the subject.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Member {
    pub name: String,
    pub email: String,
    pub visits: u64,
}

/// What a member is asked to do; `Join` and `Rename` carry personal data.
#[derive(Debug, Clone)]
pub(crate) enum MemberCommand {
    Join {
        member_id: String,
        name: String,
        email: String,
    },
    Rename {
        member_id: String,
        name: String,
    },
    Visit {
        member_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum MemberEvent {
    Joined {
        member_id: String,
        name: String,
        email: String,
    },
    Renamed {
        member_id: String,
        name: String,
    },
    Visited {
        member_id: String,
    },
}

/// The placeholder of a forgotten member's name.
pub(crate) const FORGOTTEN_NAME: &str = "[forgotten]";

fn forgotten_name() -> Value {
    Value::String(FORGOTTEN_NAME.to_owned())
}

fn forgotten_email() -> Value {
    Value::String(String::new())
}

impl DomainEvent for MemberEvent {
    const EVENT_TYPES: &'static [EventTypeInfo] = &[
        EventTypeInfo {
            name: "Joined",
            version: 1,
        },
        EventTypeInfo {
            name: "Renamed",
            version: 1,
        },
        EventTypeInfo {
            name: "Visited",
            version: 1,
        },
    ];

    fn event_type(&self) -> &'static str {
        match self {
            MemberEvent::Joined { .. } => "Joined",
            MemberEvent::Renamed { .. } => "Renamed",
            MemberEvent::Visited { .. } => "Visited",
        }
    }

    fn encode(&self) -> Result<Value, crate::codec::JsonError> {
        serde_enum::encode(self)
    }

    fn decode(event_type: &str, data: &Value) -> Result<Self, PayloadError> {
        serde_enum::decode(event_type, data)
    }

    fn personal_fields(event_type: &str) -> &'static [PersonalField] {
        const NAME: PersonalField = PersonalField {
            field: "name",
            subject: "member_id",
            forgotten: forgotten_name,
        };
        const EMAIL: PersonalField = PersonalField {
            field: "email",
            subject: "member_id",
            forgotten: forgotten_email,
        };
        match event_type {
            "Joined" => &[NAME, EMAIL],
            "Renamed" => &[NAME],
            _ => &[],
        }
    }
}

impl Command for MemberCommand {
    fn command_name(&self) -> &'static str {
        match self {
            MemberCommand::Join { .. } => "Join",
            MemberCommand::Rename { .. } => "Rename",
            MemberCommand::Visit { .. } => "Visit",
        }
    }
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("never refused")]
pub(crate) struct NeverRefused;

impl Aggregate for Member {
    const TYPE: &'static str = "member";
    type Command = MemberCommand;
    type Event = MemberEvent;
    type Error = NeverRefused;
    type Services = ();

    async fn handle(
        &self,
        command: &MemberCommand,
        _: &(),
    ) -> Result<Vec<MemberEvent>, NeverRefused> {
        Ok(vec![match command.clone() {
            MemberCommand::Join {
                member_id,
                name,
                email,
            } => MemberEvent::Joined {
                member_id,
                name,
                email,
            },
            MemberCommand::Rename { member_id, name } => MemberEvent::Renamed { member_id, name },
            MemberCommand::Visit { member_id } => MemberEvent::Visited { member_id },
        }])
    }

    fn apply(&mut self, event: &MemberEvent) {
        match event {
            MemberEvent::Joined { name, email, .. } => {
                self.name = name.clone();
                self.email = email.clone();
            }
            MemberEvent::Renamed { name, .. } => self.name = name.clone(),
            MemberEvent::Visited { .. } => self.visits += 1,
        }
    }
}
