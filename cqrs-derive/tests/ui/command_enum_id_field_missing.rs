use cqrs_core::Command;

#[derive(Command)]
#[command(id = account_id)]
enum AccountCommand {
    Open { account_id: String },
    Close { account: String },
}

fn main() {}
