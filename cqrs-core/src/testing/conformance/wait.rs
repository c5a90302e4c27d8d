//! Waiting for new events.

use std::time::{Duration, Instant};

use super::{events, unique_stream, Store};
use crate::{EventFilter, ExpectedVersion, Position};

/// `wait_for_events` returns at once when events exist after the position, times out
/// when none come, and wakes when an append commits.
pub async fn wait_for_events_wakes_on_append<S: Store>(store: S) {
    let stream = unique_stream("account");
    store
        .append(&stream, ExpectedVersion::NoStream, events("Counted", 0, 1))
        .await
        .expect("append");
    assert!(
        store
            .wait_for_events(Position::START, Duration::from_secs(5))
            .await
            .expect("wait"),
        "events after START exist: no wait"
    );
    let head = store
        .read_all(Position::START, usize::MAX, &EventFilter::all())
        .await
        .expect("read all")
        .last()
        .expect("one event")
        .position;
    let started = Instant::now();
    let woken = store
        .wait_for_events(head, Duration::from_millis(200))
        .await
        .expect("wait");
    assert!(!woken, "nothing new: the wait times out");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the wait lasted its timeout"
    );

    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let woken = store.wait_for_events(head, Duration::from_secs(30)).await;
            (woken, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .append(&stream, ExpectedVersion::Exact(1), events("Counted", 1, 1))
        .await
        .expect("append");
    let (woken, waited) = waiter.await.expect("waiter panicked");
    assert!(woken.expect("wait"), "an append wakes the waiter");
    assert!(
        waited < Duration::from_secs(10),
        "woken by the append, not by the timeout ({waited:?})"
    );
}
