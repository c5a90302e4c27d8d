use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum OrderEvent {
    Placed,
}

#[derive(DomainEvent)]
#[event(flatten)]
struct Wrapper(OrderEvent);

#[derive(DomainEvent)]
#[event(flatten)]
enum Restaurant {
    Order(OrderEvent),
}

fn main() {}
