use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
struct Registered {
    #[event(personal(subject = customer_id))]
    customer_id: String,
    #[event(personal(subject = email))]
    name: String,
    #[event(personal(subject = customer_id))]
    email: String,
}

fn main() {}
