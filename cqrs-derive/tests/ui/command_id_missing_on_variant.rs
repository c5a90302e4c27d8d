use cqrs_core::Command;

#[derive(Command)]
enum AccountCommand {
    Open {
        #[command(id)]
        account_id: String,
    },
    Close {
        account: String,
    },
}

fn main() {}
