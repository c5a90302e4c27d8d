use cqrs_core::DomainEvent;

fn up(v: serde_json::Value) -> Result<serde_json::Value, String> {
    Ok(v)
}

#[derive(DomainEvent)]
enum E {
    #[event(version = 2, upcast(from = 1, with = up), upcast(from = 2, with = up))]
    Opened,
}

fn main() {}
