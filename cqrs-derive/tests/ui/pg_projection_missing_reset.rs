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
    async fn handle(
        &self,
        _: &mut PgConnection,
        _: &Envelope<AccountEvent>,
    ) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

fn main() {}
