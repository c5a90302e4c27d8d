//! The shipping service's domain: a shipment is opened when an order is placed and
//! dispatched when it is paid, by a process manager fed from the bus.

use cqrs_core::{Aggregate, Command, DomainEvent, Engine, EngineError, Envelope, ProcessManager};
use serde::{Deserialize, Serialize};

use crate::order::OrderEvent;

#[derive(Debug, Clone, Command)]
#[command(id = order_id)]
pub enum ShipmentCommand {
    Open {
        order_id: String,
        items: Vec<String>,
    },
    Dispatch {
        order_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(prefix = "shipment.", rename_all = "snake_case")]
pub enum ShipmentEvent {
    Opened { items: Vec<String> },
    Dispatched,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ShipmentError {
    #[error("no shipment was opened for this order")]
    NotOpened,
}

/// A shipment, one per order (same id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Aggregate)]
#[aggregate(command = ShipmentCommand, event = ShipmentEvent, error = ShipmentError)]
pub struct Shipment {
    pub items: Vec<String>,
    pub dispatched: bool,
}

impl Shipment {
    async fn handle(
        &self,
        command: &ShipmentCommand,
        _: &(),
    ) -> Result<Vec<ShipmentEvent>, ShipmentError> {
        match command {
            // Opening twice, or dispatching twice, changes nothing: the bus may deliver
            // an event again, and the process manager's command ids catch the rest.
            ShipmentCommand::Open { .. } if !self.items.is_empty() => Ok(vec![]),
            ShipmentCommand::Open { items, .. } => Ok(vec![ShipmentEvent::Opened {
                items: items.clone(),
            }]),
            ShipmentCommand::Dispatch { .. } if self.items.is_empty() => {
                Err(ShipmentError::NotOpened)
            }
            ShipmentCommand::Dispatch { .. } if self.dispatched => Ok(vec![]),
            ShipmentCommand::Dispatch { .. } => Ok(vec![ShipmentEvent::Dispatched]),
        }
    }

    fn apply(&mut self, event: &ShipmentEvent) {
        match event {
            ShipmentEvent::Opened { items } => self.items = items.clone(),
            ShipmentEvent::Dispatched => self.dispatched = true,
        }
    }
}

/// Turns the order service's events, received from the bus, into the shipping
/// service's commands. The same process manager could run from a store subscription:
/// only what feeds it changed.
#[derive(Clone, ProcessManager)]
#[process_manager(event = OrderEvent, error = EngineError<ShipmentError>)]
pub struct ShipOrders {
    pub shipments: Engine<Shipment>,
}

impl ShipOrders {
    async fn handle(&self, event: &Envelope<OrderEvent>) -> Result<(), EngineError<ShipmentError>> {
        let order_id = event.stream.id().to_owned();
        let command = match &event.data {
            OrderEvent::Placed { items, .. } => ShipmentCommand::Open {
                order_id,
                items: items.clone(),
            },
            OrderEvent::Paid { .. } => ShipmentCommand::Dispatch { order_id },
        };
        // Caused by the order's event: the shipment's events carry its correlation id,
        // across the bus, and a redelivered event returns the first outcome.
        self.shipments.send_caused_by(command, event).await?;
        Ok(())
    }
}
