//! Every supported shape and attribute, checked on the generated impls.

use cqrs_core::{Command, DomainEvent, PayloadError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Money {
    cents: u64,
}

mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(rename_all = "kebab-case")]
pub enum Shapes {
    UnitHappened,
    NewtypeHappened(Money),
    NamedHappened {
        #[serde(rename = "who")]
        owner: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(with = "as_text")]
        count: u32,
    },
    #[event(name = "legacy.Name", version = 2)]
    Renamed {
        r#type: String,
    },
}

#[test]
fn names_and_versions() {
    assert_eq!(Shapes::UnitHappened.event_type(), "unit-happened");
    assert_eq!(
        Shapes::event_type_names(),
        [
            "unit-happened",
            "newtype-happened",
            "named-happened",
            "legacy.Name"
        ]
    );
    assert_eq!(Shapes::version_of("legacy.Name"), Some(2));
    assert!(Shapes::UPCASTERS.is_empty());
}

#[test]
fn every_shape_round_trips() {
    let cases = [
        (Shapes::UnitHappened, Value::Null),
        (
            Shapes::NewtypeHappened(Money { cents: 3 }),
            json!({"cents": 3}),
        ),
        (
            Shapes::NamedHappened {
                owner: "ada".into(),
                note: None,
                count: 4,
            },
            json!({"who": "ada", "count": "4"}),
        ),
        (
            Shapes::NamedHappened {
                owner: "bob".into(),
                note: Some("hi".into()),
                count: 5,
            },
            json!({"who": "bob", "note": "hi", "count": "5"}),
        ),
        (Shapes::Renamed { r#type: "t".into() }, json!({"type": "t"})),
    ];
    for (event, data) in cases {
        assert_eq!(event.encode().unwrap(), data, "{event:?}");
        assert_eq!(Shapes::decode(event.event_type(), &data).unwrap(), event);
    }
    // Unknown fields are ignored (a tolerant reader), missing ones are errors.
    assert_eq!(
        Shapes::decode("newtype-happened", &json!({"cents": 1, "extra": true})).unwrap(),
        Shapes::NewtypeHappened(Money { cents: 1 })
    );
    assert!(matches!(
        Shapes::decode("named-happened", &json!({"count": "1"})),
        Err(PayloadError::Json(_))
    ));
    assert!(matches!(
        Shapes::decode("UnitHappened", &Value::Null),
        Err(PayloadError::UnknownType)
    ));
}

/// A struct is one event type.
#[derive(Debug, PartialEq, DomainEvent)]
#[event(prefix = "user.", rename_all = "snake_case", version = 2, upcast(from = 1, with = user_v1))]
pub struct UserRegistered {
    email: String,
}

fn user_v1(data: Value) -> Result<Value, String> {
    Ok(json!({ "email": data["mail"] }))
}

#[derive(Debug, PartialEq, DomainEvent)]
pub struct Pinged;

#[derive(Debug, PartialEq, DomainEvent)]
pub struct Wrapped(Money);

#[test]
fn struct_events() {
    let e = UserRegistered {
        email: "a@b".into(),
    };
    assert_eq!(e.event_type(), "user.user_registered");
    assert_eq!(e.event_version(), 2);
    assert_eq!(UserRegistered::UPCASTERS[0].from_version, 1);
    let data = e.encode().unwrap();
    assert_eq!(data, json!({"email": "a@b"}));
    assert_eq!(
        UserRegistered::decode("user.user_registered", &data).unwrap(),
        e
    );

    assert_eq!(Pinged.event_type(), "Pinged");
    assert_eq!(Pinged.encode().unwrap(), Value::Null);
    assert_eq!(Pinged::decode("Pinged", &Value::Null).unwrap(), Pinged);

    let w = Wrapped(Money { cents: 9 });
    assert_eq!(w.encode().unwrap(), json!({"cents": 9}));
    assert_eq!(Wrapped::decode("Wrapped", &json!({"cents": 9})).unwrap(), w);
}

/// `#[command(id)]` on a field, in every variant; ids of any `Display` type.
#[derive(Command)]
pub enum Order {
    Place {
        #[command(id)]
        order: u64,
        item: String,
    },
    Cancel(#[command(id)] uuid_like::Id),
    #[command(name = "order.ship")]
    Ship {
        #[command(id)]
        order: u64,
    },
}

mod uuid_like {
    pub struct Id(pub u32);
    impl std::fmt::Display for Id {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "order-{}", self.0)
        }
    }
}

/// A command struct; and a command with no id at all.
#[derive(Command)]
pub struct Rename {
    #[command(id)]
    pub user: String,
    pub name: String,
}

#[derive(Command)]
pub enum Tick {
    Now,
    Later { seconds: u32 },
}

/// Generic commands are supported: the impl has the type's generics and bounds.
#[derive(Command)]
pub struct Generic<T: std::fmt::Display + Send + Sync + 'static> {
    #[command(id)]
    pub id: T,
}

#[test]
fn commands() {
    let place = Order::Place {
        order: 7,
        item: "x".into(),
    };
    assert_eq!(place.command_name(), "Place");
    assert_eq!(place.aggregate_id().as_deref(), Some("7"));
    let cancel = Order::Cancel(uuid_like::Id(3));
    assert_eq!(cancel.aggregate_id().as_deref(), Some("order-3"));
    assert_eq!(Order::Ship { order: 1 }.command_name(), "order.ship");
    let rename = Rename {
        user: "u1".into(),
        name: "n".into(),
    };
    assert_eq!(rename.command_name(), "Rename");
    assert_eq!(rename.aggregate_id().as_deref(), Some("u1"));
    assert_eq!(Tick::Now.aggregate_id(), None);
    assert_eq!(Tick::Later { seconds: 1 }.command_name(), "Later");
    assert_eq!(Generic { id: 5u8 }.aggregate_id().as_deref(), Some("5"));
}

/// A re-exporting crate points the generated code at its own path.
mod reexport {
    pub use cqrs_core as cqrs;
}

#[derive(Debug, PartialEq, DomainEvent)]
#[event(crate = "reexport::cqrs")]
pub enum ViaReexport {
    Happened { n: u32 },
}

#[derive(Debug, PartialEq, DomainEvent)]
#[event(crate = "reexport::cqrs")]
pub enum FlattenedViaReexport {
    #[event(flatten)]
    Inner(ViaReexport),
    Other,
}

#[derive(Command)]
#[command(crate = "reexport::cqrs")]
pub struct ReexportedCommand;

#[test]
fn crate_override() {
    let e = ViaReexport::Happened { n: 1 };
    assert_eq!(e.encode().unwrap(), json!({"n": 1}));
    assert_eq!(
        ViaReexport::decode("Happened", &json!({"n": 1})).unwrap(),
        e
    );
    assert_eq!(ReexportedCommand.command_name(), "ReexportedCommand");
    assert_eq!(
        FlattenedViaReexport::event_type_names(),
        ["Happened", "Other"]
    );
    assert_eq!(
        FlattenedViaReexport::decode("Happened", &json!({"n": 2})).unwrap(),
        FlattenedViaReexport::Inner(ViaReexport::Happened { n: 2 })
    );
}
