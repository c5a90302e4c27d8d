use cqrs_core::{DomainEvent, Envelope};
use cqrs_postgres::sqlx::PgConnection;
use cqrs_postgres::PgProjection;

#[derive(DomainEvent)]
enum AccountEvent {
    Opened,
}

#[derive(PgProjection)]
#[pg_projection(event = AccountEvent)]
struct Balances;

impl Balances {
    // The signature of a `Projection`'s handler: no transaction to write through.
    async fn handle(&self, _: &Envelope<AccountEvent>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn reset(&self, _: &mut PgConnection) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

fn main() {}
