//! The process manager: order -> kitchen -> delivery.
//!
//! It reacts to events of two aggregates and sends commands to two others. It keeps no
//! state of its own: everything it needs is in the event it reacts to.

use cqrs_core::{DomainEvent, Engine, EngineError, Envelope, ProcessManager};

use crate::delivery::{Delivery, DeliveryCommand, DeliveryError};
use crate::kitchen::{KitchenCommand, KitchenError, KitchenEvent, KitchenTicket};
use crate::order::OrderEvent;

/// Every event of the order's journey, from its three aggregates: the type that the
/// process manager and the order board read. Each variant gathers one aggregate's event
/// enum, whose names and versions it keeps.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
pub enum Journey {
    #[event(flatten)]
    Order(OrderEvent),
    #[event(flatten)]
    Kitchen(KitchenEvent),
    #[event(flatten)]
    Delivery(crate::delivery::DeliveryEvent),
}

/// Why a step of the journey could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum StepFailed {
    #[error("the kitchen: {0}")]
    Kitchen(#[from] EngineError<KitchenError>),
    #[error("the delivery: {0}")]
    Delivery(#[from] EngineError<DeliveryError>),
}

/// When an order is confirmed, the kitchen prepares it; when the kitchen has prepared
/// it, a delivery is scheduled.
#[derive(Clone, ProcessManager)]
#[process_manager(event = Journey, error = StepFailed)]
pub struct KitchenFlow {
    pub kitchen: Engine<KitchenTicket>,
    pub delivery: Engine<Delivery>,
}

impl KitchenFlow {
    async fn handle(&self, event: &Envelope<Journey>) -> Result<(), StepFailed> {
        // The three aggregates of one order share its id.
        let order_id = event.stream.id().to_owned();
        match &event.data {
            Journey::Order(OrderEvent::Confirmed { dishes }) => {
                let prepare = KitchenCommand::PrepareOrder {
                    order_id,
                    dishes: dishes.clone(),
                };
                // Caused by the event: same correlation id, the event's id as causation,
                // and a command id derived from the event, so that a redelivery of this
                // event returns the first outcome instead of preparing twice.
                self.kitchen.send_caused_by(prepare, event).await?;
            }
            Journey::Kitchen(KitchenEvent::OrderPrepared) => {
                let schedule = DeliveryCommand::ScheduleDelivery { order_id };
                self.delivery.send_caused_by(schedule, event).await?;
            }
            _ => {}
        }
        Ok(())
    }
}
