use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
#[event(prefix = "order.", rename_all = "snake_case")]
enum OrderEvent {
    Placed,
    Cancelled,
}

#[derive(DomainEvent)]
#[event(rename_all = "snake_case")]
enum KitchenEvent {
    Prepared,
    #[event(name = "order.cancelled")]
    Dropped,
}

#[derive(DomainEvent)]
enum Restaurant {
    #[event(flatten)]
    Order(OrderEvent),
    #[event(flatten)]
    Kitchen(KitchenEvent),
}

/// An ordinary variant whose name a flattened enum has too.
#[derive(DomainEvent)]
#[event(prefix = "order.", rename_all = "snake_case")]
enum Mixed {
    Placed,
    #[event(flatten)]
    Order(OrderEvent),
}

fn main() {}
