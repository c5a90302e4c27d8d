use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum Inner {
    Happened,
}

#[derive(DomainEvent)]
enum CustomerEvent {
    Renamed(#[event(personal(subject = customer_id))] String),
    #[event(flatten)]
    Other(#[event(personal(subject = customer_id))] Inner),
}

fn main() {}
