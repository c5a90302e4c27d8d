//! The order service's domain: an order is placed, then paid.

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
#[command(id = order_id)]
pub enum OrderCommand {
    Place {
        order_id: String,
        items: Vec<String>,
        total: u64,
    },
    Pay {
        order_id: String,
        amount: u64,
    },
}

/// The events the order service publishes on the bus: its contract with other services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, DomainEvent)]
#[event(prefix = "order.", rename_all = "snake_case")]
pub enum OrderEvent {
    Placed { items: Vec<String>, total: u64 },
    Paid { amount: u64 },
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("the order is already placed")]
    AlreadyPlaced,
    #[error("there is no such order")]
    NotPlaced,
    #[error("the order is already paid")]
    AlreadyPaid,
    #[error("the order costs {total}, not {paid}")]
    WrongAmount { total: u64, paid: u64 },
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = OrderCommand, event = OrderEvent, error = OrderError)]
pub struct Order {
    total: Option<u64>,
    paid: bool,
}

impl Order {
    async fn handle(&self, command: &OrderCommand, _: &()) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::Place { items, total, .. } => match self.total {
                Some(_) => Err(OrderError::AlreadyPlaced),
                None => Ok(vec![OrderEvent::Placed {
                    items: items.clone(),
                    total: *total,
                }]),
            },
            OrderCommand::Pay { amount, .. } => match self.total {
                None => Err(OrderError::NotPlaced),
                Some(_) if self.paid => Err(OrderError::AlreadyPaid),
                Some(total) if total != *amount => Err(OrderError::WrongAmount {
                    total,
                    paid: *amount,
                }),
                Some(_) => Ok(vec![OrderEvent::Paid { amount: *amount }]),
            },
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed { total, .. } => self.total = Some(*total),
            OrderEvent::Paid { .. } => self.paid = true,
        }
    }
}
