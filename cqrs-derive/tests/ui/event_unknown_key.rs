use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
enum E {
    #[event(nmae = "opened")]
    Opened,
}

fn main() {}
