//! Every kind of listener reads what its [`Listener`] lists, and only that: a projection
//! and a process manager fed by a subscription, and a projection run inline by the
//! engine, all through the same base trait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::domain::{Add, Counter, CounterEvent};
use super::{unique_stream, Store};
use crate::subscription::{Project, React, Subscription};
use crate::{
    codec, Engine, Envelope, ExpectedVersion, Listener, Metadata, ProcessManager, Projection,
    StreamId,
};

const WAIT: Duration = Duration::from_secs(20);

/// Records the streams of the events it is handed. `ONLY` is the stream type it lists
/// (`""`: every stream).
#[derive(Clone, Default)]
struct Streams<const ONLY: char> {
    seen: Arc<Mutex<Vec<StreamId>>>,
}

impl<const ONLY: char> Streams<ONLY> {
    fn record(&self, event: &Envelope<CounterEvent>) {
        self.seen.lock().expect("lock").push(event.stream.clone());
    }

    fn seen(&self) -> Vec<StreamId> {
        self.seen.lock().expect("lock").clone()
    }
}

/// The stream type a `Streams<ONLY>` lists.
const fn stream_type(only: char) -> &'static str {
    match only {
        'c' => "counter",
        't' => "tally",
        _ => "",
    }
}

impl<const ONLY: char> Listener for Streams<ONLY> {
    const NAME: &'static str = match ONLY {
        'c' => "streams_of_counters",
        't' => "streams_of_tallies",
        _ => "streams_of_all",
    };
    type Event = CounterEvent;
    type Error = std::convert::Infallible;

    fn stream_types() -> Vec<&'static str> {
        match stream_type(ONLY) {
            "" => Vec::new(),
            only => vec![only],
        }
    }
}

impl<const ONLY: char> Projection for Streams<ONLY> {
    async fn handle(&self, event: &Envelope<CounterEvent>) -> Result<(), Self::Error> {
        self.record(event);
        Ok(())
    }

    async fn reset(&self) -> Result<(), Self::Error> {
        self.seen.lock().expect("lock").clear();
        Ok(())
    }
}

/// The same, as a process manager (that sends nothing).
#[derive(Clone, Default)]
struct Reacts(Streams<'t'>);

impl Listener for Reacts {
    const NAME: &'static str = "reacts";
    type Event = CounterEvent;
    type Error = std::convert::Infallible;

    fn stream_types() -> Vec<&'static str> {
        vec!["tally"]
    }
}

impl ProcessManager for Reacts {
    async fn handle(&self, event: &Envelope<CounterEvent>) -> Result<(), Self::Error> {
        self.0.record(event);
        Ok(())
    }
}

/// Two streams of different types holding the same event type: a projection that lists
/// one stream type gets that stream's events only, from a subscription and inline from
/// the engine; a process manager likewise; a listener that lists none gets both.
pub async fn listeners_read_only_the_stream_types_they_list<S: Store>(store: S) {
    let counter = unique_stream("counter");
    let tally = unique_stream("tally");
    let added = |amount| {
        codec::encode(&CounterEvent::Added { amount }, Metadata::default()).expect("encode")
    };
    store
        .append(&tally, ExpectedVersion::Any, vec![added(1), added(2)])
        .await
        .expect("append to tally");

    // Inline, by the engine: its aggregate's streams are `counter`.
    let inline_counter = Streams::<'c'>::default();
    let inline_tally = Streams::<'t'>::default();
    let engine = Engine::<Counter>::new(store.clone(), ())
        .with_projection(inline_counter.clone())
        .with_projection(inline_tally.clone());
    engine
        .execute(counter.id(), Add(3))
        .await
        .expect("add to counter");
    assert_eq!(
        inline_counter.seen(),
        std::slice::from_ref(&counter),
        "inline, listed"
    );
    assert!(inline_tally.seen().is_empty(), "inline, not listed");

    // From a subscription.
    let tallies = Streams::<'t'>::default();
    let everything = Streams::<' '>::default();
    let reacts = Reacts::default();
    let running = [
        Subscription::new(
            store.clone(),
            Project::new(tallies.clone(), store.clone()).expect("valid"),
        )
        .start(),
        Subscription::new(
            store.clone(),
            React::new(reacts.clone(), store.clone()).expect("valid"),
        )
        .start(),
        Subscription::new(
            store.clone(),
            Project::new(everything.clone(), store.clone()).expect("valid"),
        )
        .start(),
    ];
    for handle in &running {
        handle.caught_up(WAIT).await.expect("caught up");
    }
    for handle in running {
        handle.shutdown().await.expect("shutdown");
    }
    let mine = |seen: Vec<StreamId>| {
        seen.into_iter()
            .filter(|s| *s == counter || *s == tally)
            .collect::<Vec<_>>()
    };
    assert_eq!(mine(tallies.seen()), [tally.clone(), tally.clone()]);
    assert_eq!(mine(reacts.0.seen()), [tally.clone(), tally.clone()]);
    assert_eq!(mine(everything.seen()), [tally.clone(), tally, counter]);
}
