//! The kitchen: prepares the dishes of an order. One kitchen ticket per order, with the
//! order's id.

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
#[command(id = order_id)]
pub enum KitchenCommand {
    /// Sent by the process manager when an order is confirmed.
    PrepareOrder {
        order_id: String,
        dishes: Vec<String>,
    },
    /// Sent by the cook when the dishes are ready.
    FinishPreparation { order_id: String },
}

/// Stored as `kitchen.preparation_started` and `kitchen.order_prepared`.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "kitchen.", rename_all = "snake_case")]
pub enum KitchenEvent {
    PreparationStarted { dishes: Vec<String> },
    OrderPrepared,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KitchenError {
    #[error("this order is already being prepared")]
    AlreadyStarted,
    #[error("this order was never sent to the kitchen")]
    NotStarted,
    #[error("this order is already prepared")]
    AlreadyPrepared,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = KitchenCommand, event = KitchenEvent, error = KitchenError)]
pub struct KitchenTicket {
    started: bool,
    prepared: bool,
}

impl KitchenTicket {
    async fn handle(
        &self,
        command: &KitchenCommand,
        _: &(),
    ) -> Result<Vec<KitchenEvent>, KitchenError> {
        match command {
            KitchenCommand::PrepareOrder { .. } if self.started => {
                Err(KitchenError::AlreadyStarted)
            }
            KitchenCommand::PrepareOrder { dishes, .. } => {
                Ok(vec![KitchenEvent::PreparationStarted {
                    dishes: dishes.clone(),
                }])
            }
            KitchenCommand::FinishPreparation { .. } if !self.started => {
                Err(KitchenError::NotStarted)
            }
            KitchenCommand::FinishPreparation { .. } if self.prepared => {
                Err(KitchenError::AlreadyPrepared)
            }
            KitchenCommand::FinishPreparation { .. } => Ok(vec![KitchenEvent::OrderPrepared]),
        }
    }

    fn apply(&mut self, event: &KitchenEvent) {
        match event {
            KitchenEvent::PreparationStarted { .. } => self.started = true,
            KitchenEvent::OrderPrepared => self.prepared = true,
        }
    }
}
