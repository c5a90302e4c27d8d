use cqrs_core::DomainEvent;

fn up(v: serde_json::Value) -> Result<serde_json::Value, String> {
    Ok(v)
}

#[derive(DomainEvent)]
enum E {
    #[event(version = 4, upcast(from = 1, with = up), upcast(from = 3, with = up))]
    Opened,
}

fn main() {}
