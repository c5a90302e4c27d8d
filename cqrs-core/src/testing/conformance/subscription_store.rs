//! What the stores keep for subscriptions and idempotent commands: leases, dead letters,
//! events by command id, counts for the lag.

use super::{event, events, unique_name, unique_stream, Store};
use crate::{EventFilter, ExpectedVersion, Metadata, NewEvent, Position};

/// One holder per subscription name: a second acquire gets `None` until the first lease
/// is dropped; other names are independent.
pub async fn leases_are_exclusive_until_dropped<S: Store>(store: S) {
    let name = unique_name("orders");
    let other = unique_name("audit");
    let lease = store
        .acquire_lease(&name)
        .await
        .expect("acquire")
        .expect("free");
    assert!(lease.is_held().await);
    assert!(
        store.acquire_lease(&name).await.expect("acquire").is_none(),
        "a second holder of the same subscription"
    );
    let other_lease = store.acquire_lease(&other).await.expect("acquire");
    assert!(other_lease.is_some(), "leases are per name");
    drop(lease);
    // A backend may release asynchronously (a connection closing): give it a moment.
    let mut again = None;
    for _ in 0..100 {
        again = store.acquire_lease(&name).await.expect("acquire");
        if again.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let again = again.expect("a dropped lease is free again");
    assert!(again.is_held().await);
}

/// Parked events are listed per subscription in global order, with their error; parking
/// the same event again keeps one entry with the latest error.
pub async fn dead_letters_are_kept_per_subscription<S: Store>(store: S) {
    let stream = unique_stream("parcel");
    let stored = store
        .append(&stream, ExpectedVersion::NoStream, events("Shipped", 1, 3))
        .await
        .expect("append");
    let name = unique_name("shipping");
    let other = unique_name("billing");
    assert!(store.parked(&name).await.expect("parked").is_empty());
    store
        .park(&name, &stored[2], "third failed")
        .await
        .expect("park");
    store
        .park(&name, &stored[0], "first failed")
        .await
        .expect("park");
    store
        .park(&name, &stored[2], "third failed again")
        .await
        .expect("park again");
    let parked = store.parked(&name).await.expect("parked");
    assert_eq!(parked.len(), 2, "one entry per event");
    assert_eq!(*parked[0].event, *stored[0]);
    assert_eq!(parked[0].error, "first failed");
    assert_eq!(*parked[1].event, *stored[2]);
    assert_eq!(parked[1].error, "third failed again");
    assert!(store.parked(&other).await.expect("parked").is_empty());
}

/// A discarded dead letter leaves the parked list and is kept with its reason; parking
/// the event again brings it back; discarding what is not parked changes nothing.
pub async fn dead_letters_are_discarded_with_their_reason<S: Store>(store: S) {
    let stored = store
        .append(
            &unique_stream("parcel"),
            ExpectedVersion::NoStream,
            events("Shipped", 1, 2),
        )
        .await
        .expect("append");
    let name = unique_name("shipping");
    store
        .park(&name, &stored[0], "first failed")
        .await
        .expect("park");
    store
        .park(&name, &stored[1], "second failed")
        .await
        .expect("park");
    let reason = "ops: parcel recalled, nothing to ship (ticket 42)";
    assert!(store
        .discard(&name, stored[0].event_id, reason)
        .await
        .expect("discard"));
    assert!(
        !store
            .discard(&name, stored[0].event_id, "again")
            .await
            .expect("discard again"),
        "discarded already: nothing to do"
    );
    assert!(!store
        .discard(&name, uuid::Uuid::now_v7(), "no such letter")
        .await
        .expect("discard unknown"));
    assert!(!store
        .discard(
            &unique_name("billing"),
            stored[1].event_id,
            "other subscription"
        )
        .await
        .expect("discard elsewhere"));
    let parked = store.parked(&name).await.expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].event.event_id, stored[1].event_id);
    assert_eq!(parked[0].discarded, None);
    let discarded = store.discarded(&name).await.expect("discarded");
    assert_eq!(discarded.len(), 1);
    assert_eq!(*discarded[0].event, *stored[0]);
    assert_eq!(discarded[0].error, "first failed", "the error is kept too");
    let record = discarded[0].discarded.as_ref().expect("why and when");
    assert_eq!(record.reason, reason);
    assert!(record.at >= discarded[0].parked_at);

    store
        .park(&name, &stored[0], "failed again after a replay")
        .await
        .expect("park again");
    let parked = store.parked(&name).await.expect("parked");
    assert_eq!(parked.len(), 2, "parked again: a dead letter again");
    assert_eq!(parked[0].error, "failed again after a replay");
    assert!(store.discarded(&name).await.expect("discarded").is_empty());
}

/// A consumer fed from a bus parks events this store never stored (another service's, or
/// a message that was no event at all): they are kept whole, in global order with the
/// others, and parking one again keeps one entry with the latest error.
pub async fn dead_letters_keep_events_this_store_never_stored<S: Store>(store: S) {
    let local = store
        .append(
            &unique_stream("parcel"),
            ExpectedVersion::NoStream,
            events("Shipped", 1, 1),
        )
        .await
        .expect("append");
    let elsewhere = |position: Position, stream_version| crate::StoredEvent {
        event_id: uuid::Uuid::now_v7(),
        stream: unique_stream("order"),
        stream_version,
        position,
        event_type: "order.placed".into(),
        event_version: 2,
        // Whole microseconds: what every store keeps of a time.
        recorded_at: chrono::DateTime::from_timestamp_micros(1_765_000_000_123_456).expect("time"),
        metadata: Metadata::default()
            .with_correlation_id(uuid::Uuid::now_v7())
            .with_extra("tenant", "acme"),
        data: serde_json::json!({"total": 12.5, "lines": ["a", "b"]}),
    };
    let foreign = elsewhere(Position::START, 0);
    let late = elsewhere(Position::from_parts(u64::MAX / 2, 7), 3);
    let name = unique_name("shipping");
    store.park(&name, &late, "late failed").await.expect("park");
    store
        .park(&name, &local[0], "local failed")
        .await
        .expect("park");
    store
        .park(&name, &foreign, "not an event")
        .await
        .expect("park");
    store
        .park(&name, &foreign, "still not an event")
        .await
        .expect("park again");

    let parked = store.parked(&name).await.expect("parked");
    let got: Vec<(&crate::StoredEvent, &str)> = parked
        .iter()
        .map(|d| (d.event.as_ref(), d.error.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (&foreign, "still not an event"),
            (local[0].as_ref(), "local failed"),
            (&late, "late failed"),
        ]
    );
}

/// The events a command wrote are found by its id, in version order, and only in its
/// stream.
pub async fn events_are_found_by_command_id<S: Store>(store: S) {
    let stream = unique_stream("basket");
    let other = unique_stream("basket");
    let command = uuid::Uuid::now_v7();
    let with_command = |n| {
        NewEvent::new(
            "Added",
            1,
            serde_json::json!({ "n": n }),
            Metadata::default().with_command_id(command),
        )
        .expect("valid")
    };
    store
        .append(&stream, ExpectedVersion::NoStream, vec![event("Added", 0)])
        .await
        .expect("append");
    let written = store
        .append(
            &stream,
            ExpectedVersion::Exact(1),
            vec![with_command(1), with_command(2)],
        )
        .await
        .expect("append");
    store
        .append(&stream, ExpectedVersion::Exact(3), vec![event("Added", 3)])
        .await
        .expect("append");
    let found = store
        .read_by_command(&stream, command)
        .await
        .expect("read by command");
    assert_eq!(found, written);
    assert!(store
        .read_by_command(&stream, uuid::Uuid::now_v7())
        .await
        .expect("read")
        .is_empty());
    assert!(store
        .read_by_command(&other, command)
        .await
        .expect("read")
        .is_empty());
}

/// Counting after a position honours the filter and the limit.
pub async fn counts_after_a_position_with_filter_and_limit<S: Store>(store: S) {
    let a = unique_stream("cart");
    let b = unique_stream("till");
    let first = store
        .append(&a, ExpectedVersion::NoStream, events("Added", 1, 4))
        .await
        .expect("append");
    store
        .append(&b, ExpectedVersion::NoStream, events("Rung", 1, 3))
        .await
        .expect("append");
    store
        .append(&a, ExpectedVersion::Exact(4), events("Removed", 5, 2))
        .await
        .expect("append");
    let carts = EventFilter::all()
        .with_stream_types([a.stream_type()])
        .expect("valid");
    let tills = EventFilter::all()
        .with_stream_types([b.stream_type()])
        .expect("valid");
    let added = EventFilter::all()
        .with_stream_types([a.stream_type()])
        .expect("valid")
        .with_event_types(["Added"])
        .expect("valid");
    let store = &store;
    let count = |after, filter: EventFilter, limit| async move {
        store.count_after(after, &filter, limit).await
    };
    assert_eq!(
        count(Position::START, carts.clone(), 100)
            .await
            .expect("count"),
        6
    );
    assert_eq!(
        count(Position::START, tills.clone(), 100)
            .await
            .expect("count"),
        3
    );
    assert_eq!(
        count(Position::START, added.clone(), 100)
            .await
            .expect("count"),
        4
    );
    assert_eq!(
        count(first[1].position, carts.clone(), 100)
            .await
            .expect("count"),
        4
    );
    assert_eq!(
        count(first[1].position, added, 100).await.expect("count"),
        2
    );
    assert_eq!(count(Position::START, carts, 5).await.expect("count"), 5);
}

/// The read horizon covers every event readable now, and events appended later come
/// after it.
pub async fn read_horizon_covers_what_is_readable<S: Store>(store: S) {
    let stream = unique_stream("ledger");
    let before = store.read_horizon().await.expect("horizon");
    let stored = store
        .append(&stream, ExpectedVersion::NoStream, events("Booked", 1, 3))
        .await
        .expect("append");
    let horizon = store.read_horizon().await.expect("horizon");
    assert!(horizon >= before, "the horizon never goes back");
    assert!(horizon >= stored[2].position, "covers committed events");
    assert!(store
        .read_all(horizon, 10, &EventFilter::all())
        .await
        .expect("read")
        .is_empty());
    let later = store
        .append(&stream, ExpectedVersion::Exact(3), events("Booked", 4, 1))
        .await
        .expect("append");
    assert!(later[0].position > horizon, "later events come after it");
    let read = store
        .read_all(horizon, 10, &EventFilter::all())
        .await
        .expect("read");
    assert_eq!(read, later);
}
