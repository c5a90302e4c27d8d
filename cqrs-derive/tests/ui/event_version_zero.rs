use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum E {
    #[event(version = 0)]
    Opened,
}

fn main() {}
