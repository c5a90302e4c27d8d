//! Private types with every derive compile without any warning.
#![deny(warnings)]

use cqrs_core::{Aggregate, Command, DomainEvent, Envelope, Listener, Projection};

#[derive(DomainEvent)]
#[event(rename_all = "snake_case")]
enum Ev {
    A,
    B(u8),
    C {
        #[serde(default)]
        x: Option<u8>,
    },
}

#[derive(DomainEvent)]
enum Flat {
    #[event(flatten)]
    Inner(Ev),
    Own,
}

#[derive(DomainEvent)]
struct Private {
    subject: u8,
    #[event(personal(subject = subject))]
    defaulted: String,
    #[event(personal(subject = subject, forgotten = 0))]
    explicit: u8,
}

#[derive(Command)]
enum Cmd {
    Go {
        #[command(id)]
        id: u8,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("no")]
struct No;

#[derive(Default, serde::Serialize, serde::Deserialize, Aggregate)]
#[aggregate(command = Cmd, event = Ev, error = No)]
struct Agg;

impl Agg {
    async fn handle(&self, _: &Cmd, _: &()) -> Result<Vec<Ev>, No> {
        Ok(vec![Ev::A, Ev::B(1), Ev::C { x: None }])
    }
    fn apply(&mut self, _: &Ev) {}
}

#[derive(Projection)]
#[projection(event = Ev)]
struct View;

impl View {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        Ok(())
    }

    async fn handle(&self, _: &Envelope<Ev>) -> Result<(), std::convert::Infallible> {
        Ok(())
    }
}

#[test]
fn compiles_cleanly() {
    assert_eq!(Ev::event_type_names(), ["a", "b", "c"]);
    assert_eq!(Flat::event_type_names(), ["a", "b", "c", "Own"]);
    assert_eq!(Flat::Own.event_type(), "Own");
    assert!(Flat::personal_fields("a").is_empty());
    assert_eq!(Private::personal_fields("Private").len(), 2);
    assert_eq!(Cmd::Go { id: 1 }.command_name(), "Go");
    assert_eq!(Agg::TYPE, "agg");
    assert_eq!(View::NAME, "view");
}
