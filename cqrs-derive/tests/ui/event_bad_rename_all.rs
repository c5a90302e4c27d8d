use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
#[event(rename_all = "snake")]
enum E {
    Opened,
}

fn main() {}
