use cqrs_core::{DomainEvent, ProcessManager};

#[derive(DomainEvent)]
enum OrderEvent {
    Confirmed,
}

#[derive(ProcessManager)]
#[process_manager(event = OrderEvent, events(Confirmed, Confirmed))]
struct SendToKitchen;

fn main() {}
