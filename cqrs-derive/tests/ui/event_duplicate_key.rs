use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum E {
    #[event(version = 2, version = 3)]
    Opened,
}

fn main() {}
