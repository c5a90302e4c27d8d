use cqrs_core::{DomainEvent, Envelope, ProcessManager};

#[derive(DomainEvent)]
enum OrderEvent {
    Placed,
    Confirmed,
}

#[derive(ProcessManager)]
#[process_manager(event = OrderEvent, events(Confirmed, Paid))]
struct SendToKitchen;

impl SendToKitchen {
    async fn handle(&self, _: &Envelope<OrderEvent>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

fn main() {}
