use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum E<T> {
    Happened { value: T },
}

fn main() {}
