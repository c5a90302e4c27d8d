use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum E {
    #[event(version = 2, upcast(from = 1))]
    Opened,
}

fn main() {}
