use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum E {
    Moved(i32, i32),
}

fn main() {}
