//! `#[derive(ProcessManager)]`, end to end on the memory store: orders confirmed in one
//! aggregate become preparations in another, and a view keyed by order id reads both
//! aggregates' events through a flattened enum.

use cqrs_core::subscription::{Consumer, Project, React};
use cqrs_core::{
    Aggregate, Command, DomainEvent, Engine, EngineError, Envelope, EventLog, Listener, Position,
    ProcessManager, Projection, StreamId, StreamStore,
};
use cqrs_memory::MemoryStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "order.", rename_all = "snake_case")]
pub enum OrderEvent {
    Placed { dish: String },
    Confirmed,
}

#[derive(Debug, Command)]
#[command(id = order_id)]
pub enum OrderCommand {
    Place { order_id: String, dish: String },
    Confirm { order_id: String },
}

#[derive(Debug, thiserror::Error)]
#[error("no such order")]
pub struct NoOrder;

#[derive(Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = OrderCommand, event = OrderEvent, error = NoOrder)]
pub struct Order {
    dish: Option<String>,
}

impl Order {
    async fn handle(&self, cmd: &OrderCommand, _: &()) -> Result<Vec<OrderEvent>, NoOrder> {
        Ok(match cmd {
            OrderCommand::Place { dish, .. } => vec![OrderEvent::Placed { dish: dish.clone() }],
            OrderCommand::Confirm { .. } if self.dish.is_none() => return Err(NoOrder),
            OrderCommand::Confirm { .. } => vec![OrderEvent::Confirmed],
        })
    }

    fn apply(&mut self, event: &OrderEvent) {
        if let OrderEvent::Placed { dish } = event {
            self.dish = Some(dish.clone());
        }
    }
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "kitchen.", rename_all = "snake_case")]
pub enum KitchenEvent {
    /// Keyed by the kitchen's own ticket stream; carries the order it serves.
    Prepared { order_id: String },
}

#[derive(Debug, Command)]
pub struct Prepare {
    #[command(id)]
    pub ticket: String,
    pub order_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the kitchen is closed")]
pub struct Closed;

#[derive(Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = Prepare, event = KitchenEvent, error = Closed)]
pub struct Kitchen;

impl Kitchen {
    async fn handle(&self, cmd: &Prepare, _: &()) -> Result<Vec<KitchenEvent>, Closed> {
        Ok(vec![KitchenEvent::Prepared {
            order_id: cmd.order_id.clone(),
        }])
    }

    fn apply(&mut self, _: &KitchenEvent) {}
}

/// When an order is confirmed, prepare it.
#[derive(ProcessManager)]
#[process_manager(event = OrderEvent, error = EngineError<Closed>, events(Confirmed))]
pub struct SendToKitchen {
    kitchen: Engine<Kitchen>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl SendToKitchen {
    async fn handle(&self, event: &Envelope<OrderEvent>) -> Result<(), EngineError<Closed>> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(event.event_type.clone());
        }
        let order_id = event.stream.id().to_owned();
        let ticket = format!("ticket-{order_id}");
        let command = Prepare { ticket, order_id };
        self.kitchen
            .send_caused_by(command, event)
            .await
            .map(|_| ())
    }
}

/// Every event of both aggregates.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
pub enum Restaurant {
    #[event(flatten)]
    Order(OrderEvent),
    #[event(flatten)]
    Kitchen(KitchenEvent),
}

/// Where each order is, keyed by order id whichever aggregate the event comes from.
#[derive(Clone, Default, Projection)]
#[projection(event = Restaurant)]
pub struct Board {
    by_order: Arc<Mutex<BTreeMap<String, &'static str>>>,
}

impl Board {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        if let Ok(mut map) = self.by_order.lock() {
            map.clear();
        }
        Ok(())
    }

    async fn handle(&self, event: &Envelope<Restaurant>) -> Result<(), std::convert::Infallible> {
        let (order, state) = match &event.data {
            Restaurant::Order(OrderEvent::Placed { .. }) => (event.stream.id(), "placed"),
            Restaurant::Order(OrderEvent::Confirmed) => (event.stream.id(), "confirmed"),
            Restaurant::Kitchen(KitchenEvent::Prepared { order_id }) => {
                (order_id.as_str(), "prepared")
            }
        };
        if let Ok(mut map) = self.by_order.lock() {
            map.insert(order.to_owned(), state);
        }
        Ok(())
    }
}

/// Defaults: the snake_case name, every event type, `Infallible`.
#[derive(ProcessManager)]
#[process_manager(event = Restaurant)]
pub struct AuditTrail;

impl AuditTrail {
    async fn handle(&self, _: &Envelope<Restaurant>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

/// Every option, and a generic type.
#[derive(ProcessManager)]
#[process_manager(name = "notifier-v2", event = OrderEvent, error = Closed, crate = "cqrs_core")]
pub struct Notifier<T: Send + Sync + 'static> {
    _marker: std::marker::PhantomData<T>,
}

impl<T: Send + Sync + 'static> Notifier<T> {
    async fn handle(&self, _: &Envelope<OrderEvent>) -> Result<(), Closed> {
        Err(Closed)
    }
}

#[test]
fn constants() {
    assert_eq!(SendToKitchen::NAME, "send_to_kitchen");
    assert_eq!(SendToKitchen::event_types(), ["order.confirmed"]);
    assert_eq!(AuditTrail::NAME, "audit_trail");
    assert_eq!(
        AuditTrail::event_types(),
        ["order.placed", "order.confirmed", "kitchen.prepared"]
    );
    assert_eq!(Notifier::<u8>::NAME, "notifier-v2");
    assert_eq!(Notifier::<u8>::event_types().len(), 2);
}

/// Reads everything the consumer's filter selects and delivers it as one batch: what a
/// subscription does, without its task, so the test sees the delivery's own result.
async fn deliver_all(
    consumer: &impl Consumer,
    store: &MemoryStore,
) -> Result<usize, Box<dyn std::error::Error>> {
    let batch = store
        .read_all(Position::START, 100, consumer.identity().filter())
        .await?;
    if let Some(last) = batch.last() {
        consumer
            .deliver(Position::START, &batch, last.position)
            .await?;
    }
    Ok(batch.len())
}

#[tokio::test]
async fn confirmed_orders_reach_the_kitchen_and_the_view() -> Result<(), Box<dyn std::error::Error>>
{
    let store = MemoryStore::new();
    let orders = Engine::<Order>::new(store.clone(), ());
    let kitchen = Engine::<Kitchen>::new(store.clone(), ());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let manager = SendToKitchen {
        kitchen,
        seen: Arc::clone(&seen),
    };
    let reacting = React::new(manager, store.clone()).expect("valid");
    let board = Board::default();
    let projecting = Project::new(board.clone(), store.clone()).expect("valid");

    for id in ["o-1", "o-2"] {
        let dish = format!("dish of {id}");
        orders
            .send(OrderCommand::Place {
                order_id: id.into(),
                dish,
            })
            .await?;
    }
    orders
        .send(OrderCommand::Confirm {
            order_id: "o-1".into(),
        })
        .await?;

    // Only the confirmation reaches the process manager (its event types filter the read).
    assert_eq!(deliver_all(&reacting, &store).await?, 1);
    assert_eq!(*seen.lock().map_err(|_| "poisoned")?, ["order.confirmed"]);
    // It prepared one ticket, caused by the confirmation.
    let ticket_stream = StreamId::new("kitchen", "ticket-o-1")?;
    let ticket = store.read_stream(&ticket_stream, 1, 10).await?;
    assert_eq!(ticket.len(), 1);
    assert_eq!(ticket[0].event_type, "kitchen.prepared");
    assert!(ticket[0].metadata.causation_id.is_some());
    // Delivered again (at-least-once), the command is not executed twice.
    deliver_all(&reacting, &store).await?;
    assert_eq!(store.read_stream(&ticket_stream, 1, 10).await?.len(), 1);

    // The view reads both aggregates' events, keyed by order id.
    assert_eq!(deliver_all(&projecting, &store).await?, 4);
    let view = board.by_order.lock().map_err(|_| "poisoned")?.clone();
    assert_eq!(
        view,
        BTreeMap::from([("o-1".to_owned(), "prepared"), ("o-2".to_owned(), "placed")])
    );
    Ok(())
}
