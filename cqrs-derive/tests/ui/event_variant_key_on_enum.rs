use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
#[event(version = 2)]
enum E {
    Opened,
}

fn main() {}
