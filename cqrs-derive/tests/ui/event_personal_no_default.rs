use cqrs_core::DomainEvent;

#[derive(serde::Serialize, serde::Deserialize)]
struct Name(String);

#[derive(DomainEvent)]
struct Registered {
    customer_id: String,
    #[event(personal(subject = customer_id))]
    name: Name,
}

fn main() {}
