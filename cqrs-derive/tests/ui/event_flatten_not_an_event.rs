use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum Restaurant {
    #[event(flatten)]
    Note(String),
}

fn main() {}
