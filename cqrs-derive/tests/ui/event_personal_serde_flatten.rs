use cqrs_core::DomainEvent;
use std::collections::BTreeMap;

#[derive(DomainEvent)]
struct Registered {
    customer_id: String,
    #[serde(flatten)]
    #[event(personal(subject = customer_id))]
    details: BTreeMap<String, String>,
}

fn main() {}
