use cqrs_core::Command;

#[derive(Command)]
struct Open {
    #[command(key)]
    account_id: String,
}

fn main() {}
