use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum CustomerEvent {
    Registered {
        customer_id: String,
        #[event(personal(subject = customer_id))]
        #[event(personal(subject = customer_id, forgotten = "[forgotten]"))]
        name: String,
    },
}

fn main() {}
