//! `#[event(flatten)]`: one event enum gathering the events of several aggregates, for a
//! view or a process manager fed by all of them.

use std::collections::BTreeMap;
use std::sync::Mutex;

use cqrs_core::codec;
use cqrs_core::{
    DomainEvent, Envelope, EventTypeInfo, Listener, Metadata, NewEvent, PayloadError, Position,
    Projection, StreamId,
};
use serde_json::{json, Value};

mod upcast {
    use serde_json::{json, Value};

    /// Version 1 of `order.placed` called the dish `item`.
    pub fn placed_v1(data: Value) -> Result<Value, String> {
        let item = data.get("item").cloned().ok_or("no item")?;
        Ok(json!({ "dish": item }))
    }
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "order.", rename_all = "snake_case")]
pub enum OrderEvent {
    #[event(version = 2, upcast(from = 1, with = upcast::placed_v1))]
    Placed {
        dish: String,
    },
    Cancelled,
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "kitchen.", rename_all = "snake_case")]
pub enum KitchenEvent {
    Prepared { dish: String },
    Served(u32),
}

/// A struct event type flattens too: it is one event type.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(name = "payment.received", version = 3)]
pub struct PaymentReceived {
    pub cents: u64,
}

/// Every event a restaurant view reads, without restating any of them.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
pub enum Restaurant {
    #[event(flatten)]
    Order(OrderEvent),
    #[event(flatten)]
    Kitchen(KitchenEvent),
    #[event(flatten)]
    Payment(PaymentReceived),
}

/// Flattened and ordinary variants mix; `rename_all` applies to the ordinary ones only.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(rename_all = "snake_case")]
pub enum Mixed {
    DayOpened,
    #[event(flatten)]
    Order(OrderEvent),
    #[event(version = 2)]
    DayClosed {
        tips: u64,
    },
}

/// A flattened enum flattens again.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
pub enum Nested {
    #[event(flatten)]
    Restaurant(Restaurant),
    Audit,
}

/// A hand-written event type (no derive) flattens too: only the trait is needed.
#[derive(Debug, Clone, PartialEq)]
pub struct Ping;

impl DomainEvent for Ping {
    const EVENT_TYPES: &'static [EventTypeInfo] = &[EventTypeInfo {
        name: "ping",
        version: 1,
    }];
    fn event_type(&self) -> &'static str {
        "ping"
    }
    fn encode(&self) -> Result<Value, cqrs_core::codec::JsonError> {
        Ok(Value::Null)
    }
    fn decode(event_type: &str, _: &Value) -> Result<Self, PayloadError> {
        match event_type {
            "ping" => Ok(Ping),
            _ => Err(PayloadError::UnknownType),
        }
    }
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
pub enum WithPing {
    #[event(flatten)]
    Ping(Ping),
    #[event(flatten)]
    Kitchen(KitchenEvent),
}

fn names<E: DomainEvent>() -> Vec<(&'static str, u32)> {
    E::EVENT_TYPES.iter().map(|t| (t.name, t.version)).collect()
}

#[test]
fn event_types_are_the_inner_ones_in_variant_order() {
    assert_eq!(
        names::<Restaurant>(),
        [
            ("order.placed", 2),
            ("order.cancelled", 1),
            ("kitchen.prepared", 1),
            ("kitchen.served", 1),
            ("payment.received", 3),
        ]
    );
    assert_eq!(
        names::<Mixed>(),
        [
            ("day_opened", 1),
            ("order.placed", 2),
            ("order.cancelled", 1),
            ("day_closed", 2),
        ]
    );
    assert_eq!(names::<Nested>()[..5], names::<Restaurant>()[..]);
    assert_eq!(names::<Nested>()[5], ("Audit", 1));
    assert_eq!(names::<WithPing>()[0], ("ping", 1));
    assert_eq!(Restaurant::version_of("payment.received"), Some(3));
}

#[test]
fn upcasters_are_the_inner_ones() {
    let ups: Vec<_> = Restaurant::UPCASTERS
        .iter()
        .map(|u| (u.event_type, u.from_version))
        .collect();
    assert_eq!(ups, [("order.placed", 1)]);
    assert_eq!(Nested::UPCASTERS.len(), 1);
    assert!(WithPing::UPCASTERS.is_empty());
}

fn cases() -> Vec<(Restaurant, &'static str, u32, Value)> {
    vec![
        (
            Restaurant::Order(OrderEvent::Placed {
                dish: "soup".into(),
            }),
            "order.placed",
            2,
            json!({ "dish": "soup" }),
        ),
        (
            Restaurant::Order(OrderEvent::Cancelled),
            "order.cancelled",
            1,
            Value::Null,
        ),
        (
            Restaurant::Kitchen(KitchenEvent::Prepared {
                dish: "soup".into(),
            }),
            "kitchen.prepared",
            1,
            json!({ "dish": "soup" }),
        ),
        (
            Restaurant::Kitchen(KitchenEvent::Served(4)),
            "kitchen.served",
            1,
            json!(4),
        ),
        (
            Restaurant::Payment(PaymentReceived { cents: 250 }),
            "payment.received",
            3,
            json!({ "cents": 250 }),
        ),
    ]
}

#[test]
fn name_version_and_data_delegate_to_the_inner_event() -> Result<(), Box<dyn std::error::Error>> {
    for (event, name, version, data) in cases() {
        assert_eq!(event.event_type(), name);
        assert_eq!(event.event_version(), version);
        assert_eq!(event.encode()?, data);
        assert_eq!(Restaurant::decode(name, &data)?, event);
    }
    Ok(())
}

#[test]
fn round_trips_through_the_codec() -> Result<(), Box<dyn std::error::Error>> {
    for (i, (event, ..)) in cases().into_iter().enumerate() {
        let stored = codec::encode(&event, Metadata::default())?.into_stored(
            StreamId::new("any", "1")?,
            i as u64 + 1,
            Position::from_parts(1, i as u64),
            Default::default(),
        );
        // Read back as the outer enum, and as the inner enum that wrote it.
        assert_eq!(codec::decode_data::<Restaurant>(&stored)?, event);
        if let Restaurant::Order(inner) = &event {
            assert_eq!(&codec::decode_data::<OrderEvent>(&stored)?, inner);
        }
    }
    Ok(())
}

#[test]
fn mixed_and_nested_round_trip() -> Result<(), Box<dyn std::error::Error>> {
    let mixed = [
        Mixed::DayOpened,
        Mixed::Order(OrderEvent::Cancelled),
        Mixed::DayClosed { tips: 3 },
    ];
    for event in mixed {
        let back = Mixed::decode(event.event_type(), &event.encode()?)?;
        assert_eq!(back, event);
    }
    assert_eq!(Mixed::DayClosed { tips: 3 }.event_version(), 2);
    let nested = Nested::Restaurant(Restaurant::Kitchen(KitchenEvent::Served(1)));
    assert_eq!(nested.event_type(), "kitchen.served");
    assert_eq!(Nested::decode("kitchen.served", &json!(1))?, nested);
    assert_eq!(Nested::decode("Audit", &Value::Null)?, Nested::Audit);
    assert_eq!(
        WithPing::decode("ping", &Value::Null)?,
        WithPing::Ping(Ping)
    );
    Ok(())
}

#[test]
fn an_unknown_name_is_an_unknown_type() {
    assert!(matches!(
        Restaurant::decode("order.lost", &Value::Null),
        Err(PayloadError::UnknownType)
    ));
    // Bad data is the inner enum's JSON error, not an unknown type.
    assert!(matches!(
        Restaurant::decode("kitchen.served", &json!("four")),
        Err(PayloadError::Json(_))
    ));
}

#[test]
fn the_inner_upcaster_runs_when_decoding_through_the_outer_enum(
) -> Result<(), Box<dyn std::error::Error>> {
    let old = NewEvent::new(
        "order.placed",
        1,
        json!({ "item": "stew" }),
        Metadata::default(),
    )?
    .into_stored(
        StreamId::new("order", "o-1")?,
        1,
        Position::from_parts(1, 1),
        Default::default(),
    );
    let event = codec::decode::<Restaurant>(&old)?;
    assert_eq!(
        event.data,
        Restaurant::Order(OrderEvent::Placed {
            dish: "stew".into()
        })
    );
    let nested = codec::decode_data::<Nested>(&old)?;
    assert_eq!(
        nested,
        Nested::Restaurant(Restaurant::Order(OrderEvent::Placed {
            dish: "stew".into()
        }))
    );
    Ok(())
}

/// A view keyed by dish, fed by orders and the kitchen.
#[derive(Default, Projection)]
#[projection(event = Restaurant, events(Order, Kitchen))]
pub struct DishBoard {
    by_dish: Mutex<BTreeMap<String, &'static str>>,
}

impl DishBoard {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        if let Ok(mut map) = self.by_dish.lock() {
            map.clear();
        }
        Ok(())
    }

    async fn handle(&self, event: &Envelope<Restaurant>) -> Result<(), std::convert::Infallible> {
        let (dish, state) = match &event.data {
            Restaurant::Order(OrderEvent::Placed { dish }) => (dish, "ordered"),
            Restaurant::Kitchen(KitchenEvent::Prepared { dish }) => (dish, "ready"),
            _ => return Ok(()),
        };
        if let Ok(mut map) = self.by_dish.lock() {
            map.insert(dish.clone(), state);
        }
        Ok(())
    }
}

/// Ordinary and flattened variants listed together.
#[derive(Default, Projection)]
#[projection(event = Mixed, events(DayClosed, Order))]
pub struct Day;

impl Day {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn handle(&self, _: &Envelope<Mixed>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

/// Without `events(...)`: every event type of every flattened enum.
#[derive(Default, Projection)]
#[projection(event = Restaurant)]
pub struct Everything;

impl Everything {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn handle(&self, _: &Envelope<Restaurant>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

#[test]
fn a_projection_lists_flattened_variants() {
    assert_eq!(
        DishBoard::event_types(),
        [
            "order.placed",
            "order.cancelled",
            "kitchen.prepared",
            "kitchen.served"
        ]
    );
    assert_eq!(
        Day::event_types(),
        ["day_closed", "order.placed", "order.cancelled"]
    );
    assert_eq!(Everything::event_types().len(), 5);
}

#[tokio::test]
async fn a_view_over_two_aggregates() -> Result<(), Box<dyn std::error::Error>> {
    let board = DishBoard::default();
    let events = [
        Restaurant::Order(OrderEvent::Placed {
            dish: "soup".into(),
        }),
        Restaurant::Order(OrderEvent::Placed { dish: "pie".into() }),
        Restaurant::Kitchen(KitchenEvent::Prepared {
            dish: "soup".into(),
        }),
    ];
    for (i, event) in events.iter().enumerate() {
        let stream = match event {
            Restaurant::Kitchen(_) => StreamId::new("kitchen", "k")?,
            _ => StreamId::new("order", &format!("o-{i}"))?,
        };
        let stored = codec::encode(event, Metadata::default())?.into_stored(
            stream,
            1,
            Position::from_parts(1, i as u64),
            Default::default(),
        );
        board.handle(&codec::decode(&stored)?).await?;
    }
    let map = board.by_dish.lock().map_err(|_| "poisoned")?.clone();
    assert_eq!(
        map,
        BTreeMap::from([("pie".to_owned(), "ordered"), ("soup".to_owned(), "ready")])
    );
    Ok(())
}
