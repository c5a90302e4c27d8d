use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum OrderEvent {
    Placed,
}

#[derive(DomainEvent)]
enum Restaurant {
    #[event(flatten)]
    Order { event: OrderEvent },
    #[event(flatten)]
    Closed,
    #[event(flatten)]
    Both(OrderEvent, OrderEvent),
}

fn main() {}
