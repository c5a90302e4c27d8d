use cqrs_core::Projection;

#[derive(Projection)]
struct Balances;

fn main() {}
