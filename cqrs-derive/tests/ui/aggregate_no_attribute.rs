use cqrs_core::Aggregate;

#[derive(Default, serde::Serialize, serde::Deserialize, Aggregate)]
struct Account {
    balance: u64,
}

fn main() {}
