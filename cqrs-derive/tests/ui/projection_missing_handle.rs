use cqrs_core::{DomainEvent, Projection};

#[derive(DomainEvent)]
enum AccountEvent {
    Opened,
}

#[derive(Projection)]
#[projection(event = AccountEvent)]
struct Balances;

impl Balances {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

fn main() {}
