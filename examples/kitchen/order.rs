//! The order: placed by a customer, then confirmed. What happens next is the kitchen's
//! and the delivery's business, driven by the process manager in `flow.rs`.

use cqrs_core::{Aggregate, Command, DomainEvent};
use serde::{Deserialize, Serialize};

/// An amount of money in a currency, in minor units (cents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub value: u64,
    pub currency: String,
}

#[derive(Debug, Clone, Command)]
#[command(id = order_id)]
pub enum OrderCommand {
    Place {
        order_id: String,
        customer: String,
        dishes: Vec<String>,
        value: Money,
    },
    Confirm {
        order_id: String,
    },
}

/// Stored as `order.placed` and `order.confirmed`.
///
/// `order.placed` is at schema version 2: version 1, written by last year's version of
/// the application, stored `orderValue` as a plain number of euro cents. Those events
/// are still in the log, never rewritten; the upcaster below turns each into version 2
/// when it is read.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
#[event(prefix = "order.", rename_all = "snake_case")]
pub enum OrderEvent {
    #[event(version = 2, upcast(from = 1, with = upcast::placed_v1))]
    Placed {
        customer: String,
        dishes: Vec<String>,
        #[serde(rename = "orderValue")]
        order_value: Money,
    },
    /// Carries the dishes, so that the kitchen needs nothing else to start.
    Confirmed { dishes: Vec<String> },
}

mod upcast {
    use serde_json::{json, Value};

    /// Version 1: `"orderValue": 1250` (euro cents). Version 2: `"orderValue": {"value":
    /// 1250, "currency": "EUR"}`.
    pub fn placed_v1(mut data: Value) -> Result<Value, String> {
        let cents = data
            .get("orderValue")
            .and_then(Value::as_u64)
            .ok_or("order.placed v1 without a numeric orderValue")?;
        data["orderValue"] = json!({ "value": cents, "currency": "EUR" });
        Ok(data)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("the order was already placed")]
    AlreadyPlaced,
    #[error("there is no such order")]
    Unknown,
    #[error("an order needs at least one dish")]
    NoDishes,
    #[error("the order is already confirmed")]
    AlreadyConfirmed,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = OrderCommand, event = OrderEvent, error = OrderError)]
pub struct Order {
    placed: bool,
    confirmed: bool,
    dishes: Vec<String>,
}

impl Order {
    async fn handle(&self, command: &OrderCommand, _: &()) -> Result<Vec<OrderEvent>, OrderError> {
        match command {
            OrderCommand::Place { .. } if self.placed => Err(OrderError::AlreadyPlaced),
            OrderCommand::Place { dishes, .. } if dishes.is_empty() => Err(OrderError::NoDishes),
            OrderCommand::Place {
                customer,
                dishes,
                value,
                ..
            } => Ok(vec![OrderEvent::Placed {
                customer: customer.clone(),
                dishes: dishes.clone(),
                order_value: value.clone(),
            }]),
            OrderCommand::Confirm { .. } if !self.placed => Err(OrderError::Unknown),
            OrderCommand::Confirm { .. } if self.confirmed => Err(OrderError::AlreadyConfirmed),
            OrderCommand::Confirm { .. } => Ok(vec![OrderEvent::Confirmed {
                dishes: self.dishes.clone(),
            }]),
        }
    }

    fn apply(&mut self, event: &OrderEvent) {
        match event {
            OrderEvent::Placed { dishes, .. } => {
                self.placed = true;
                self.dishes = dishes.clone();
            }
            OrderEvent::Confirmed { .. } => self.confirmed = true,
        }
    }
}
