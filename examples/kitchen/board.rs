//! The order board: one row per order, across the order, kitchen and delivery
//! aggregates, keyed by the order's id.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use cqrs_core::{Envelope, Projection};

use crate::delivery::DeliveryEvent;
use crate::flow::Journey;
use crate::kitchen::KitchenEvent;
use crate::order::OrderEvent;

/// Where an order is in its journey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Placed,
    Confirmed,
    InTheKitchen,
    Prepared,
    OutForDelivery,
}

/// One order on the board.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub customer: String,
    pub dishes: Vec<String>,
    pub value: String,
    pub status: Status,
}

/// The board, shared between the subscription that writes it and the code that reads
/// it. Cloning shares the same rows.
#[derive(Debug, Clone, Default, Projection)]
#[projection(event = Journey)]
pub struct OrderBoard {
    rows: Arc<RwLock<BTreeMap<String, Row>>>,
}

impl OrderBoard {
    /// The row of an order, if the board has seen it placed.
    pub fn get(&self, order_id: &str) -> Option<Row> {
        self.rows.read().ok()?.get(order_id).cloned()
    }

    async fn handle(&self, event: &Envelope<Journey>) -> Result<(), Infallible> {
        // A poisoned lock still holds consistent rows: each update is one assignment.
        let mut rows = self.rows.write().unwrap_or_else(|e| e.into_inner());
        let order_id = event.stream.id();
        if let Journey::Order(OrderEvent::Placed {
            customer,
            dishes,
            order_value,
        }) = &event.data
        {
            let value = format!(
                "{}.{:02} {}",
                order_value.value / 100,
                order_value.value % 100,
                order_value.currency
            );
            rows.insert(
                order_id.to_owned(),
                Row {
                    customer: customer.clone(),
                    dishes: dishes.clone(),
                    value,
                    status: Status::Placed,
                },
            );
            return Ok(());
        }
        let Some(row) = rows.get_mut(order_id) else {
            return Ok(());
        };
        let status = match &event.data {
            Journey::Order(OrderEvent::Confirmed { .. }) => Status::Confirmed,
            Journey::Kitchen(KitchenEvent::PreparationStarted { .. }) => Status::InTheKitchen,
            Journey::Kitchen(KitchenEvent::OrderPrepared) => Status::Prepared,
            Journey::Delivery(DeliveryEvent::Scheduled { .. }) => Status::OutForDelivery,
            Journey::Order(OrderEvent::Placed { .. }) => return Ok(()),
        };
        // Delivery is at-least-once and in order: a status only moves forward, so an
        // event seen again changes nothing.
        row.status = row.status.max(status);
        Ok(())
    }

    async fn reset(&self) -> Result<(), Infallible> {
        self.rows.write().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }
}
