use cqrs_core::{DomainEvent, Projection};

#[derive(DomainEvent)]
enum AccountEvent {
    Opened,
}

#[derive(Projection)]
#[projection(event = AccountEvent, streams("account", "", "account"))]
struct Balances;

#[derive(Projection)]
#[projection(event = AccountEvent, streams())]
struct Nothing;

fn main() {}
