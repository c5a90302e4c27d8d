use cqrs_core::{Aggregate, Command, DomainEvent};

#[derive(DomainEvent)]
enum CounterEvent {
    Incremented,
}

#[derive(Command)]
struct Increment;

#[derive(Debug, thiserror::Error)]
#[error("full")]
struct Full;

#[derive(Default, serde::Serialize, serde::Deserialize, Aggregate)]
#[aggregate(command = Increment, event = CounterEvent, error = Full)]
struct Counter {
    value: u32,
}

impl Counter {
    async fn handle(&self, _: &Increment, _: &()) -> Result<Vec<CounterEvent>, Full> {
        Ok(vec![CounterEvent::Incremented])
    }
}

fn main() {}
