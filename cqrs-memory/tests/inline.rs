//! Inline projections of the memory store: run inside the append, before any reader can
//! see the events; a failing one refuses the append.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cqrs_core::{
    Aggregate, Command, DomainEvent, Engine, EngineError, Envelope, EventFilter, EventLog,
    Position, Projection, StoreError,
};
use cqrs_memory::MemoryStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
struct Register {
    #[command(id)]
    name: String,
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum UserEvent {
    Registered { name: String },
}

#[derive(Debug, thiserror::Error)]
#[error("already registered")]
struct Taken;

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = Register, event = UserEvent, error = Taken)]
struct User {
    registered: bool,
}

impl User {
    async fn handle(&self, command: &Register, _: &()) -> Result<Vec<UserEvent>, Taken> {
        if self.registered {
            return Err(Taken);
        }
        Ok(vec![UserEvent::Registered {
            name: command.name.clone(),
        }])
    }

    fn apply(&mut self, _: &UserEvent) {
        self.registered = true;
    }
}

/// Names seen, with the global position at which each was registered; refuses names on
/// its block list.
#[derive(Clone, Default, Projection)]
#[projection(event = UserEvent, error = Blocked)]
struct Directory {
    names: Arc<Mutex<HashMap<String, Position>>>,
    blocked: Arc<Mutex<Vec<String>>>,
    /// Names it panics on (a bug).
    crashing: Arc<Mutex<Vec<String>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the name {0} is blocked")]
struct Blocked(String);

impl Directory {
    async fn handle(&self, event: &Envelope<UserEvent>) -> Result<(), Blocked> {
        let UserEvent::Registered { name } = &event.data;
        if self.blocked.lock().unwrap().contains(name) {
            return Err(Blocked(name.clone()));
        }
        if self.crashing.lock().unwrap().contains(name) {
            panic!("directory bug on {name}");
        }
        self.names
            .lock()
            .unwrap()
            .insert(name.clone(), event.position);
        Ok(())
    }

    async fn reset(&self) -> Result<(), Blocked> {
        self.names.lock().unwrap().clear();
        Ok(())
    }
}

#[tokio::test]
async fn the_view_has_the_event_when_the_command_returns() {
    let directory = Directory::default();
    let store = MemoryStore::new().with_inline_projection(directory.clone());
    let users = Engine::<User>::new(store.clone(), ());
    let committed = users
        .send(Register { name: "ada".into() })
        .await
        .expect("registered");
    assert_eq!(
        directory.names.lock().unwrap().get("ada"),
        Some(&committed.events[0].position)
    );
}

#[tokio::test]
async fn a_failing_inline_projection_refuses_the_append() {
    let directory = Directory::default();
    directory.blocked.lock().unwrap().push("mallory".into());
    let store = MemoryStore::new().with_inline_projection(directory.clone());
    let users = Engine::<User>::new(store.clone(), ());
    let refused = users
        .send(Register {
            name: "mallory".into(),
        })
        .await;
    match refused {
        Err(EngineError::Store(StoreError::Projection {
            stream, projection, ..
        })) => {
            assert_eq!(stream.to_string(), "user/mallory");
            assert_eq!(projection, "directory");
        }
        other => panic!("expected the projection's refusal, got {other:?}"),
    }
    assert!(store.is_empty(), "nothing stored");
    assert!(directory.names.lock().unwrap().is_empty());
    // The store goes on: the next append passes.
    users
        .send(Register {
            name: "grace".into(),
        })
        .await
        .expect("registered");
    assert_eq!(store.len(), 1);
}

/// A handler that panics refuses the append as an error would: the engine gets the
/// projection's failure with the panic, nothing is stored, and the store's append gate
/// is free for the next append.
#[tokio::test]
async fn a_panicking_inline_projection_refuses_the_append_and_the_store_goes_on() {
    let directory = Directory::default();
    directory.crashing.lock().unwrap().push("bobby".into());
    let store = MemoryStore::new().with_inline_projection(directory.clone());
    let users = Engine::<User>::new(store.clone(), ());
    let refused = users
        .send(Register {
            name: "bobby".into(),
        })
        .await;
    match refused {
        Err(EngineError::Store(StoreError::Projection {
            stream,
            projection,
            source,
        })) => {
            assert_eq!(stream.to_string(), "user/bobby");
            assert_eq!(projection, "directory");
            assert_eq!(source.to_string(), "panicked: directory bug on bobby");
        }
        other => panic!("expected the projection's refusal, got {other:?}"),
    }
    assert!(store.is_empty(), "nothing stored");
    // Bounded, so that a gate left locked by the panic fails the test instead of hanging.
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        users.send(Register { name: "ada".into() }),
    )
    .await
    .expect("the append gate is free");
    next.expect("registered");
    assert_eq!(store.len(), 1);
    assert!(directory.names.lock().unwrap().contains_key("ada"));
}

/// Readers never see an event the inline projection has not taken in: while appends
/// race, every event a reader finds is already in the view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_events_before_the_view_does() {
    let directory = Directory::default();
    let store = MemoryStore::new().with_inline_projection(directory.clone());
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let users = Engine::<User>::new(store.clone(), ());
            tokio::spawn(async move {
                for n in 0..100 {
                    users
                        .send(Register {
                            name: format!("user-{w}-{n}"),
                        })
                        .await
                        .expect("registered");
                }
            })
        })
        .collect();
    let mut seen = 0;
    while seen < 400 {
        let events = store
            .read_all(Position::START, usize::MAX, &EventFilter::all())
            .await
            .expect("read");
        let names = directory.names.lock().unwrap().clone();
        for event in &events {
            let name = event.stream.id();
            assert!(
                names.contains_key(name),
                "{name} read before the view had it"
            );
        }
        seen = events.len();
        tokio::task::yield_now().await;
    }
    for writer in writers {
        writer.await.expect("writer");
    }
}
