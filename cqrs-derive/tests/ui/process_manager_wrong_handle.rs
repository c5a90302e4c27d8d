use cqrs_core::{DomainEvent, Envelope, ProcessManager};

#[derive(DomainEvent)]
enum OrderEvent {
    Confirmed,
}

#[derive(ProcessManager)]
#[process_manager(event = OrderEvent)]
struct SendToKitchen;

impl SendToKitchen {
    // Not async, and the wrong error type.
    fn handle(&self, _: &Envelope<OrderEvent>) -> Result<(), String> {
        Ok(())
    }
}

fn main() {}
