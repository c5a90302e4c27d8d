use cqrs_core::Command;

#[derive(Command)]
struct Transfer {
    #[command(id)]
    from: String,
    #[command(id)]
    to: String,
}

fn main() {}
