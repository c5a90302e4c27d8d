//! What operators ask of subscriptions from another process, and what runners record for
//! them: requests kept until completed, dead letters retried, checkpoints moved and read
//! models rebuilt on request, the runner's filter and state, the lease's holder.

use std::future::Future;
use std::time::Duration;

use super::subscription::{add, assert_exactly_once, fill, quick, View, WAIT};
use super::{named, unique_name, unique_stream, Store};
use crate::subscription::{
    overview, FailurePolicy, OverviewState, Project, Subscription, SubscriptionHandle,
};
use crate::{EventFilter, Position, RecordedState, SubscriptionRecord, SubscriptionRequest};

/// Waits until `check` holds (a runner applies requests between batches, on its own
/// time); panics with `what` after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn parking<S: Store>(store: &S, view: &View<1>) -> SubscriptionHandle {
    Subscription::new(
        store.clone(),
        Project::new(view.clone(), store.clone()).expect("valid"),
    )
    .batch_size(50)
    .retry(quick())
    .on_failure(FailurePolicy::Park)
    .idle_wait(Duration::from_millis(100))
    .start()
}

/// Requests are kept in the order they were made, with what they ask, until completed;
/// a resolved dead letter leaves the store (a discarded one is not resolved); a record
/// replaces the one before; a held lease has a holder, a dropped one none.
pub async fn operators_requests_and_runners_records_are_kept<S: Store>(store: S) {
    let name = unique_name("billing");
    let other = unique_name("audit");
    assert!(store.requests(&name).await.expect("requests").is_empty());
    let event_id = uuid::Uuid::now_v7();
    let asked = [
        SubscriptionRequest::RetryDeadLetter(event_id),
        SubscriptionRequest::RetryDeadLetters,
        SubscriptionRequest::ResetTo(Position::from_parts(7, 3)),
        SubscriptionRequest::Rebuild,
    ];
    let mut ids = Vec::new();
    for request in asked {
        let pending = store.request(&name, request).await.expect("request");
        assert_eq!(pending.request, request);
        ids.push(pending.id);
    }
    store
        .request(&other, SubscriptionRequest::Rebuild)
        .await
        .expect("request");
    let pending = store.requests(&name).await.expect("requests");
    let kept: Vec<_> = pending.iter().map(|p| (p.id, p.request)).collect();
    let expected: Vec<_> = ids.iter().copied().zip(asked).collect();
    assert_eq!(kept, expected, "in the order asked, per subscription");
    assert!(store
        .complete_request(&name, ids[1])
        .await
        .expect("complete"));
    assert!(
        !store
            .complete_request(&name, ids[1])
            .await
            .expect("complete"),
        "completing twice changes nothing, and says so"
    );
    let left: Vec<_> = store
        .requests(&name)
        .await
        .expect("requests")
        .iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(left, vec![ids[0], ids[2], ids[3]]);
    assert_eq!(store.requests(&other).await.expect("requests").len(), 1);

    let stream = unique_stream("invoice");
    let stored = add(&store, &stream, &[1, 2]).await;
    store.park(&name, &stored[0], "failed").await.expect("park");
    store.park(&name, &stored[1], "failed").await.expect("park");
    assert!(store
        .discard(&name, stored[1].event_id, "not ours")
        .await
        .expect("discard"));
    assert!(store
        .resolve(&name, stored[0].event_id)
        .await
        .expect("resolve"));
    assert!(
        !store
            .resolve(&name, stored[0].event_id)
            .await
            .expect("resolve"),
        "gone"
    );
    assert!(
        !store
            .resolve(&name, stored[1].event_id)
            .await
            .expect("resolve"),
        "a discarded letter is not resolved"
    );
    assert!(store.parked(&name).await.expect("parked").is_empty());
    assert_eq!(store.discarded(&name).await.expect("discarded").len(), 1);

    let checkpoint = named(&format!("{name}@v2"));
    let filter = EventFilter::all()
        .with_stream_types(["invoice"])
        .and_then(|f| f.with_event_types(["Added", "Removed"]))
        .expect("valid filter");
    let running =
        SubscriptionRecord::new(checkpoint.clone(), filter.clone(), RecordedState::Running);
    store.record(&running).await.expect("record");
    let failed = SubscriptionRecord::new(
        checkpoint.clone(),
        filter.clone(),
        RecordedState::Failed {
            error: "event 3 failed".to_owned(),
        },
    );
    store.record(&failed).await.expect("record");
    let records = store.records().await.expect("records");
    let record = records
        .iter()
        .find(|r| r.checkpoint == checkpoint)
        .expect("kept");
    assert_eq!(record.filter, filter);
    assert_eq!(
        record.state, failed.state,
        "the latest replaces the one before"
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r.checkpoint == checkpoint)
            .count(),
        1
    );

    assert_eq!(store.lease_holder(&name).await.expect("holder"), None);
    let lease = store
        .acquire_lease(&name)
        .await
        .expect("acquire")
        .expect("free");
    let holder = store
        .lease_holder(&name)
        .await
        .expect("holder")
        .expect("held");
    assert!(!holder.holder.is_empty());
    assert_eq!(store.lease_holder(&other).await.expect("holder"), None);
    drop(lease);
    // A backend may release asynchronously (a connection closing).
    eventually("a dropped lease has no holder", || async {
        store.lease_holder(&name).await.expect("holder").is_none()
    })
    .await;
}

/// A parked event retried while its handler still fails stays parked with the new
/// error; retried after the fix, it takes effect once and leaves the dead letters, and
/// the checkpoint does not move. "Retry all" does the same for every letter.
pub async fn a_parked_event_retried_on_request_takes_effect_once<S: Store>(store: S) {
    let stream = unique_stream("counter");
    let events = add(&store, &stream, &[1, 13, 3, 13, 5]).await;
    let view = View::<1>::poisoned(13);
    let running = parking(&store, &view);
    running
        .caught_up(WAIT)
        .await
        .expect("caught up past parked");
    let name = named("view");
    let first = store.parked(&name).await.expect("parked");
    assert_eq!(first.len(), 2);
    let checkpoint = store
        .load_checkpoint(&named("view@v1"))
        .await
        .expect("load");
    assert_eq!(checkpoint, Some(events[4].position));

    // Still broken: parked again, later.
    store
        .request(
            &name,
            SubscriptionRequest::RetryDeadLetter(events[1].event_id),
        )
        .await
        .expect("request");
    eventually("the request is applied", || async {
        store.requests(&name).await.expect("requests").is_empty()
    })
    .await;
    let again = store.parked(&name).await.expect("parked");
    assert_eq!(again.len(), 2, "still parked: {again:?}");
    assert!(again[0].parked_at >= first[0].parked_at);
    assert!(again[0].error.contains("poisoned amount 13"));
    assert_eq!(
        view.seen(|s| s.applied.get(&events[1].event_id).copied()),
        None
    );

    // Fixed: one letter, then all.
    view.cure();
    store
        .request(
            &name,
            SubscriptionRequest::RetryDeadLetter(events[1].event_id),
        )
        .await
        .expect("request");
    eventually("the fixed event leaves the dead letters", || async {
        store.parked(&name).await.expect("parked").len() == 1
    })
    .await;
    assert_eq!(
        view.seen(|s| s.applied.get(&events[1].event_id).copied()),
        Some(1)
    );
    store
        .request(&name, SubscriptionRequest::RetryDeadLetters)
        .await
        .expect("request");
    eventually("every letter is handled", || async {
        store.parked(&name).await.expect("parked").is_empty()
    })
    .await;
    eventually("the request is completed", || async {
        store.requests(&name).await.expect("requests").is_empty()
    })
    .await;
    let applied = |id| view.seen(|s| s.applied.get(&id).copied());
    // The events around a failing one were delivered again with each retry of their
    // batch (at-least-once); the retried ones exactly once.
    assert_eq!(applied(events[1].event_id), Some(1));
    assert_eq!(applied(events[3].event_id), Some(1));
    for event in &events {
        assert!(applied(event.event_id).is_some(), "{event:?} applied");
    }
    assert_eq!(
        store
            .load_checkpoint(&named("view@v1"))
            .await
            .expect("load"),
        checkpoint,
        "a retry does not move the checkpoint"
    );
    let later = add(&store, &stream, &[6]).await;
    running.caught_up(WAIT).await.expect("caught up");
    assert_eq!(applied(later[0].event_id), Some(1));
    running.shutdown().await.expect("clean stop");
}

/// A reset asked for while the subscription is stopped is applied when it starts (the
/// events in between are skipped); a rebuild asked for while it runs empties the read
/// model and replays the log. The runner records its filter, running then stopped.
pub async fn a_subscription_is_reset_or_rebuilt_on_request<S: Store>(store: S) {
    let history = fill(&store, 20).await;
    let view = View::<1>::default();
    let running = parking(&store, &view);
    running.caught_up(WAIT).await.expect("caught up");
    let checkpoint = named("view@v1");
    let record = |store: S| async move {
        let records = store.records().await.expect("records");
        records
            .into_iter()
            .find(|r| r.checkpoint == named("view@v1"))
    };
    let seen = |store: S| async move {
        let all = overview(&store, 1_000).await.expect("overview");
        all.into_iter()
            .find(|o| o.checkpoint == named("view@v1"))
            .expect("listed")
    };
    let live = seen(store.clone()).await;
    let one = crate::subscription::overview_one(&store, &named("view@v1"), 1_000)
        .await
        .expect("overview of one");
    assert_eq!(one.map(|o| o.checkpoint), Some(named("view@v1")));
    let none = crate::subscription::overview_one(&store, &named("nobody@v1"), 1_000)
        .await
        .expect("overview of one");
    assert!(none.is_none());
    assert_eq!(live.state(), OverviewState::CaughtUp, "{live:?}");
    assert!(live.lease_holder.is_some());
    assert_eq!((live.name.as_str(), live.version), ("view", Some(1)));
    assert!(live.behind.filtered && live.behind.events == 0);
    let recorded = record(store.clone()).await.expect("recorded");
    assert_eq!(recorded.state, RecordedState::Running);
    let expected_filter = EventFilter::all()
        .with_event_types(<View<1> as crate::Listener>::event_types())
        .and_then(|f| f.with_stream_types(<View<1> as crate::Listener>::stream_types()))
        .expect("valid");
    assert_eq!(recorded.filter, expected_filter);
    running.shutdown().await.expect("clean stop");
    assert_eq!(
        record(store.clone()).await.map(|r| r.state),
        Some(RecordedState::Stopped)
    );

    let skipped = fill(&store, 10).await;
    eventually("the lease is released", || async {
        seen(store.clone()).await.lease_holder.is_none()
    })
    .await;
    let stopped = seen(store.clone()).await;
    assert_eq!(stopped.state(), OverviewState::Stopped);
    assert_eq!(stopped.behind.events, 10, "counted with its filter");
    let head = skipped.last().map(|e| e.position).expect("events");
    let name = named("view");
    store
        .request(&name, SubscriptionRequest::ResetTo(head))
        .await
        .expect("request");
    let running = parking(&store, &view);
    let later = fill(&store, 5).await;
    running.caught_up(WAIT).await.expect("caught up");
    assert!(store.requests(&name).await.expect("requests").is_empty());
    assert_exactly_once(&view, &[history.clone(), later.clone()].concat());
    assert_eq!(view.seen(|s| s.resets), 1, "moved, not rebuilt");

    store
        .request(&name, SubscriptionRequest::Rebuild)
        .await
        .expect("request");
    eventually("the rebuild is applied", || async {
        view.seen(|s| s.resets) == 2
    })
    .await;
    running
        .caught_up(WAIT)
        .await
        .expect("caught up after the rebuild");
    assert_exactly_once(&view, &[history, skipped, later].concat());
    assert!(store.requests(&name).await.expect("requests").is_empty());
    assert!(store
        .load_checkpoint(&checkpoint)
        .await
        .expect("load")
        .is_some_and(|p| p >= head));
    running.shutdown().await.expect("clean stop");
}
