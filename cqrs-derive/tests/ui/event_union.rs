use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
union E {
    a: u32,
    b: f32,
}

fn main() {}
