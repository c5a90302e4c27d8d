//! Delivery: a courier slot for a prepared order. One delivery per order, with the
//! order's id.

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
#[command(id = order_id)]
pub enum DeliveryCommand {
    /// Sent by the process manager when the kitchen has prepared an order.
    ScheduleDelivery { order_id: String },
}

/// Stored as `delivery.scheduled`.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "delivery.", rename_all = "snake_case")]
pub enum DeliveryEvent {
    Scheduled { courier: String },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeliveryError {
    #[error("this delivery is already scheduled")]
    AlreadyScheduled,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = DeliveryCommand, event = DeliveryEvent, error = DeliveryError)]
pub struct Delivery {
    scheduled: bool,
}

impl Delivery {
    async fn handle(
        &self,
        command: &DeliveryCommand,
        _: &(),
    ) -> Result<Vec<DeliveryEvent>, DeliveryError> {
        match command {
            DeliveryCommand::ScheduleDelivery { .. } if self.scheduled => {
                Err(DeliveryError::AlreadyScheduled)
            }
            DeliveryCommand::ScheduleDelivery { .. } => Ok(vec![DeliveryEvent::Scheduled {
                courier: "the next free courier".into(),
            }]),
        }
    }

    fn apply(&mut self, event: &DeliveryEvent) {
        match event {
            DeliveryEvent::Scheduled { .. } => self.scheduled = true,
        }
    }
}
