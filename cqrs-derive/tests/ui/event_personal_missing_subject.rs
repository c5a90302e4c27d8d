use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum CustomerEvent {
    Registered {
        customer_id: String,
        #[event(personal(forgotten = "[forgotten]"))]
        name: String,
        #[event(personal)]
        email: String,
    },
}

fn main() {}
