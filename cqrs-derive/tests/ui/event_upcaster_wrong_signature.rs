use cqrs_core::DomainEvent;

fn up(v: String) -> String {
    v
}

#[derive(DomainEvent)]
enum E {
    #[event(version = 2, upcast(from = 1, with = up))]
    Opened,
}

fn main() {}
