use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum OrderEvent {
    Placed,
}

fn v1(data: serde_json::Value) -> Result<serde_json::Value, String> {
    Ok(data)
}

#[derive(DomainEvent)]
enum Restaurant {
    #[event(flatten, name = "order", version = 2, upcast(from = 1, with = v1))]
    Order(#[serde(default)] OrderEvent),
}

fn main() {}
