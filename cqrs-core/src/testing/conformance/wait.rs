//! Waiting for new events.

use std::time::{Duration, Instant};

use super::{events, unique_stream, Store};
use crate::{EventFilter, ExpectedVersion, Position};

/// `wait_for_events` returns at once when events exist after the position, times out
/// when none come, and wakes promptly when an append commits (well within a second).
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

    // The waiter has no timeout to speak of, so only the append can end its wait; it
    // waits long enough before the append for a backing-off poller to reach its longest
    // pause (PostgreSQL's default: 100 ms); then it must see the append within a bound
    // no poll of seconds meets. The bound grows with the append's own duration, a
    // measure of how loaded the machine and the store are right now.
    let waiter = {
        let store = store.clone();
        tokio::spawn(async move {
            let woken = store.wait_for_events(head, Duration::from_secs(60)).await;
            (woken, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !waiter.is_finished(),
        "the waiter returned before anything was appended"
    );
    let appending = Instant::now();
    store
        .append(&stream, ExpectedVersion::Exact(1), events("Counted", 1, 1))
        .await
        .expect("append");
    let appended = Instant::now();
    let (woken, woken_at) = waiter.await.expect("waiter panicked");
    assert!(woken.expect("wait"), "an append wakes the waiter");
    let bound = Duration::from_secs(1) + 5 * (appended - appending);
    let late = woken_at.saturating_duration_since(appended);
    assert!(
        late < bound,
        "woken {late:?} after the append returned: not by the append (bound {bound:?})"
    );
}
