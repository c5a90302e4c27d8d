use cqrs_core::Aggregate;

#[derive(Default, serde::Serialize, serde::Deserialize, Aggregate)]
#[aggregate(command = (), error = std::io::Error)]
struct Account {
    balance: u64,
}

fn main() {}
