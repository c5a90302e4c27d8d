use cqrs_core::{DomainEvent, ProcessManager};

#[derive(DomainEvent)]
enum OrderEvent {
    Confirmed,
}

#[derive(ProcessManager)]
#[process_manager(event = OrderEvent)]
struct SendToKitchen;

fn main() {}
