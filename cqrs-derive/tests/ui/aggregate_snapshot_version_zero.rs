use cqrs_core::Aggregate;

#[derive(Default, serde::Serialize, serde::Deserialize, Aggregate)]
#[aggregate(command = (), event = (), error = std::io::Error, snapshot_version = 0)]
struct Account {
    balance: u64,
}

fn main() {}
