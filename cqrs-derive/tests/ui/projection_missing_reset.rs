use cqrs_core::{DomainEvent, Envelope, Projection};

#[derive(DomainEvent)]
enum AccountEvent {
    Opened,
}

#[derive(Projection)]
#[projection(event = AccountEvent)]
struct Balances;

impl Balances {
    async fn handle(&self, _: &Envelope<AccountEvent>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

fn main() {}
