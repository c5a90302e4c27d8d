use cqrs_core::{DomainEvent, Envelope, Projection};

#[derive(DomainEvent)]
enum AccountEvent {
    Opened,
    Deposited { amount: u64 },
}

#[derive(Projection)]
#[projection(event = AccountEvent, events(Deposited, Withdrawn))]
struct Balances;

impl Balances {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn handle(&self, _: &Envelope<AccountEvent>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

fn main() {}
