use cqrs_core::{DomainEvent, Projection};

#[derive(DomainEvent)]
enum AccountEvent {
    Opened,
}

#[derive(Projection)]
#[projection(event = AccountEvent)]
struct Balances;

fn main() {}
