use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum CustomerEvent {
    Registered {
        customer_id: String,
        #[event(personal(subject = customer))]
        name: String,
    },
}

fn main() {}
