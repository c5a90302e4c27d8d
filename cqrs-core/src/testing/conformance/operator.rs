//! The reads an operator makes: a stream's last events, everything one request caused,
//! the streams a store holds.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{events, unique_stream, Store};
use crate::{
    EventFilter, EventLog, ExpectedVersion, Metadata, NewEvent, Position, StoreError, StoredEvent,
    StreamId,
};

/// A store's log seen through the trait's provided methods only, to check them against
/// the store's own.
struct Provided<S>(S);

#[async_trait]
impl<S: EventLog> EventLog for Provided<S> {
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.0.read_all(after, max_count, filter).await
    }

    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.0.wait_for_events(after, timeout).await
    }

    async fn read_horizon(&self) -> Result<Position, StoreError> {
        self.0.read_horizon().await
    }
}

fn ids(events: &[Arc<StoredEvent>]) -> Vec<uuid::Uuid> {
    events.iter().map(|e| e.event_id).collect()
}

/// `read_all_backwards` gives the log's newest events first, at or before a position,
/// filtered like `read_all`; the trait's provided implementation agrees with the store's.
pub async fn the_log_reads_backwards_from_a_position<S: Store>(store: S) {
    let parcel = unique_stream("parcel");
    let invoice = unique_stream("invoice");
    let mut all = Vec::new();
    for n in 0..4 {
        for (stream, event_type) in [(&parcel, "Shipped"), (&invoice, "Billed")] {
            let stored = store
                .append(stream, ExpectedVersion::Any, events(event_type, n, 1))
                .await
                .expect("append");
            all.extend(stored);
        }
    }
    let newest_first: Vec<_> = ids(&all).into_iter().rev().collect();
    let horizon = store.read_horizon().await.expect("horizon");
    let parcels = EventFilter::all()
        .with_stream_types(["parcel"])
        .expect("valid");
    let billed = EventFilter::all()
        .with_event_types(["Billed"])
        .expect("valid");
    let provided = Provided(store.clone());
    for log in [&store as &dyn EventLog, &provided] {
        let back = |to, max, filter: &EventFilter| {
            let filter = filter.clone();
            async move {
                ids(&log
                    .read_all_backwards(to, max, &filter)
                    .await
                    .expect("read"))
            }
        };
        let everything = EventFilter::all();
        assert_eq!(back(horizon, 3, &everything).await, newest_first[..3]);
        assert_eq!(back(horizon, usize::MAX, &everything).await, newest_first);
        let expected: Vec<_> = newest_first.iter().step_by(2).copied().collect();
        // `all` alternates parcel, invoice: newest first, the invoices come first.
        assert_eq!(back(horizon, usize::MAX, &billed).await, expected);
        let parcel_ids: Vec<_> = newest_first.iter().skip(1).step_by(2).copied().collect();
        assert_eq!(back(horizon, 2, &parcels).await, parcel_ids[..2]);
        assert_eq!(
            back(all[4].position, 2, &everything).await,
            [all[4].event_id, all[3].event_id],
            "at or before the position"
        );
        assert!(back(Position::START, 5, &everything).await.is_empty());
        assert!(
            back(horizon, 0, &everything).await.is_empty(),
            "max 0: none"
        );
    }
}

fn versions(events: &[Arc<StoredEvent>]) -> Vec<u64> {
    events.iter().map(|e| e.stream_version).collect()
}

/// `read_stream_backwards` gives the newest events first, from a version down, paged.
pub async fn a_stream_reads_backwards_from_its_end<S: Store>(store: S) {
    let stream = unique_stream("account");
    store
        .append(&stream, ExpectedVersion::NoStream, events("Counted", 1, 10))
        .await
        .expect("append");
    let back = |to, max| store.read_stream_backwards(&stream, to, max);
    assert_eq!(
        versions(&back(u64::MAX, 3).await.expect("read")),
        [10, 9, 8]
    );
    assert_eq!(versions(&back(7, 3).await.expect("read")), [7, 6, 5]);
    assert_eq!(versions(&back(2, 5).await.expect("read")), [2, 1]);
    assert_eq!(
        versions(&back(u64::MAX, usize::MAX).await.expect("read")),
        (1..=10).rev().collect::<Vec<_>>()
    );
    assert!(back(0, 5).await.expect("read").is_empty(), "below 1: none");
    assert!(
        back(u64::MAX, 0).await.expect("read").is_empty(),
        "max 0: none"
    );
    let missing = unique_stream("account");
    assert!(store
        .read_stream_backwards(&missing, u64::MAX, 5)
        .await
        .expect("read")
        .is_empty());
}

/// `read_by_correlation` finds one request's events across streams, in global order,
/// and pages on from a position.
pub async fn events_are_found_by_correlation_id<S: Store>(store: S) {
    let request = uuid::Uuid::now_v7();
    let other = uuid::Uuid::now_v7();
    let tagged = |n: u64, correlation: uuid::Uuid| {
        NewEvent::new(
            "Counted",
            1,
            serde_json::json!({ "n": n }),
            Metadata::default().with_correlation_id(correlation),
        )
        .expect("valid event type")
    };
    let (a, b) = (unique_stream("order"), unique_stream("kitchen"));
    let mut expected = Vec::new();
    for (stream, n, correlation) in [
        (&a, 1, request),
        (&b, 2, other),
        (&b, 3, request),
        (&a, 4, request),
    ] {
        let stored = store
            .append(stream, ExpectedVersion::Any, vec![tagged(n, correlation)])
            .await
            .expect("append");
        if correlation == request {
            expected.extend(stored);
        }
    }
    store
        .append(&a, ExpectedVersion::Any, events("Counted", 5, 3))
        .await
        .expect("append without a correlation id");
    let found = store
        .read_by_correlation(request, Position::START, 100)
        .await
        .expect("read");
    let ids = |events: &[Arc<StoredEvent>]| events.iter().map(|e| e.event_id).collect::<Vec<_>>();
    assert_eq!(
        ids(&found),
        ids(&expected),
        "one request's events, in global order"
    );
    let first = store
        .read_by_correlation(request, Position::START, 2)
        .await
        .expect("read");
    assert_eq!(ids(&first), ids(&expected[..2]));
    let rest = store
        .read_by_correlation(request, first[1].position, 2)
        .await
        .expect("read");
    assert_eq!(
        ids(&rest),
        ids(&expected[2..]),
        "the next page after the last position"
    );
    assert!(store
        .read_by_correlation(uuid::Uuid::now_v7(), Position::START, 10)
        .await
        .expect("read")
        .is_empty());
}

/// `list_streams` lists streams by type and id with their last version, paged;
/// `stream_types` counts streams and events per type; a bad type name is refused.
pub async fn streams_are_listed_by_type_and_paged<S: Store>(store: S) {
    let id = |t: &str, n: u32| StreamId::new(t, &format!("s-{n:02}")).expect("valid stream id");
    for n in 0..5 {
        store
            .append(
                &id("order", n),
                ExpectedVersion::NoStream,
                events("Placed", 1, u64::from(n) + 1),
            )
            .await
            .expect("append");
    }
    let last = store
        .append(
            &id("kitchen", 0),
            ExpectedVersion::NoStream,
            events("Cooked", 1, 2),
        )
        .await
        .expect("append");
    let orders = store
        .list_streams(Some("order"), None, 3)
        .await
        .expect("list");
    assert_eq!(
        orders
            .iter()
            .map(|s| (s.stream.clone(), s.version))
            .collect::<Vec<_>>(),
        [
            (id("order", 0), 1),
            (id("order", 1), 2),
            (id("order", 2), 3)
        ]
    );
    let next = store
        .list_streams(Some("order"), Some(&orders[2].stream), 3)
        .await
        .expect("list");
    assert_eq!(
        next.iter()
            .map(|s| (s.stream.clone(), s.version))
            .collect::<Vec<_>>(),
        [(id("order", 3), 4), (id("order", 4), 5)]
    );
    let all = store.list_streams(None, None, 100).await.expect("list");
    assert_eq!(all.len(), 6);
    assert_eq!(all[0].stream, id("kitchen", 0), "ordered by type, then id");
    assert_eq!(all[0].last_position, last[1].position);
    assert_eq!(all[0].last_recorded_at, last[1].recorded_at);
    assert!(store
        .list_streams(Some("nothing"), None, 10)
        .await
        .expect("list")
        .is_empty());
    let types = store.stream_types().await.expect("types");
    assert_eq!(
        types
            .iter()
            .map(|t| (t.stream_type.as_str(), t.streams, t.events))
            .collect::<Vec<_>>(),
        [("kitchen", 1, 2), ("order", 5, 15)]
    );
    assert!(matches!(
        store.list_streams(Some(""), None, 10).await,
        Err(StoreError::InvalidIdentifier(_))
    ));
}
