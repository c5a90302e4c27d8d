use cqrs_core::DomainEvent;

#[derive(DomainEvent)]
#[event(prefix = "account.", rename_all = "snake_case")]
enum E {
    MoneyDeposited { amount: u64 },
    #[event(name = "account.money_deposited")]
    Deposited { amount: u64 },
}

fn main() {}
