use cqrs_core::Aggregate;

#[derive(Default, serde::Serialize, serde::Deserialize, Aggregate)]
#[aggregate(command = (), event = (), error = std::io::Error, type_name = "account")]
struct Account {
    balance: u64,
}

fn main() {}
