use cqrs_core::Projection;

#[derive(Projection)]
#[projection(event = (), version = 0)]
struct Balances;

fn main() {}
