use cqrs_core::{DomainEvent, Envelope, Projection};

#[derive(DomainEvent)]
enum AccountEvent {
    Opened,
}

// `on_delete` without an inherent `async fn stream_deleted`.
#[derive(Projection)]
#[projection(event = AccountEvent, on_delete)]
struct Balances;

impl Balances {
    async fn handle(&self, _: &Envelope<AccountEvent>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

fn main() {}
