use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum CustomerEvent {
    Registered {
        customer_id: String,
        #[event(personal(subject = customer_id, placeholder = "?"))]
        name: String,
        #[event(secret)]
        email: String,
    },
}

fn main() {}
