//! The subscription runner over the store: catch-up then live, restarts, rebuilds,
//! failures, one active consumer, process managers with idempotent commands.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::domain::{Add, Counter, CounterEvent};
use super::probe::Probe;
use super::{named, unique_stream, Store};
use crate::subscription::{
    DeliveryError, FailurePolicy, Project, React, StartFrom, Subscription, SubscriptionError,
    SubscriptionHandle, SubscriptionState,
};
use crate::{
    codec, Engine, Envelope, ExpectedVersion, Listener, Metadata, NewEvent, Position,
    ProcessManager, Projection, RetryPolicy, StoredEvent, StreamId,
};

pub(super) const WAIT: Duration = Duration::from_secs(20);

/// What a test view saw: how often each event was applied, in which order, and how
/// often it was reset.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) applied: HashMap<uuid::Uuid, u32>,
    pub(super) order: Vec<Position>,
    pub(super) resets: u32,
    /// The streams it was told were deleted, in order.
    pub(super) deleted: Vec<StreamId>,
}

/// A view of counter events, version `V`, that fails on the amount `poison` (until
/// [`cure`](Self::cure)d: shared by its clones, as a fixed deployment would be).
#[derive(Clone, Default)]
pub(super) struct View<const V: u32> {
    seen: Arc<Mutex<Seen>>,
    poison: Arc<Mutex<Option<u64>>>,
    /// When set, each reset waits for a permit of this gate.
    reset_gate: Option<Arc<tokio::sync::Notify>>,
}

impl<const V: u32> View<V> {
    pub(super) fn poisoned(amount: u64) -> Self {
        Self {
            poison: Arc::new(Mutex::new(Some(amount))),
            ..Self::default()
        }
    }

    /// Fixes the handler: no amount fails from now on.
    pub(super) fn cure(&self) {
        *self.poison.lock().expect("poison lock") = None;
    }

    /// The same view at another version.
    fn at<const W: u32>(&self) -> View<W> {
        View {
            seen: Arc::clone(&self.seen),
            poison: Arc::clone(&self.poison),
            reset_gate: self.reset_gate.clone(),
        }
    }

    pub(super) fn seen<T>(&self, read: impl FnOnce(&Seen) -> T) -> T {
        read(&self.seen.lock().expect("view lock"))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("poisoned amount {0}")]
pub(super) struct Poisoned(u64);

impl<const V: u32> Listener for View<V> {
    const NAME: &'static str = "view";
    type Event = CounterEvent;
    type Error = Poisoned;
}

impl<const V: u32> Projection for View<V> {
    const VERSION: u32 = V;

    async fn handle(&self, event: &Envelope<CounterEvent>) -> Result<(), Poisoned> {
        let CounterEvent::Added { amount } = event.data;
        if *self.poison.lock().expect("poison lock") == Some(amount) {
            return Err(Poisoned(amount));
        }
        let mut seen = self.seen.lock().expect("view lock");
        *seen.applied.entry(event.event_id).or_default() += 1;
        seen.order.push(event.position);
        Ok(())
    }

    async fn stream_deleted(&self, stream: &StreamId) -> Result<(), Poisoned> {
        self.seen
            .lock()
            .expect("view lock")
            .deleted
            .push(stream.clone());
        Ok(())
    }

    async fn reset(&self) -> Result<(), Poisoned> {
        if let Some(gate) = &self.reset_gate {
            gate.notified().await;
        }
        let mut seen = self.seen.lock().expect("view lock");
        seen.applied.clear();
        seen.order.clear();
        seen.deleted.clear();
        seen.resets += 1;
        Ok(())
    }
}

/// Appends one `Added` event per amount to `stream`.
pub(super) async fn add<S: Store>(
    store: &S,
    stream: &StreamId,
    amounts: &[u64],
) -> Vec<Arc<StoredEvent>> {
    let events: Vec<NewEvent> = amounts
        .iter()
        .map(|&amount| {
            codec::encode(&CounterEvent::Added { amount }, Metadata::default()).expect("encode")
        })
        .collect();
    store
        .append(stream, ExpectedVersion::Any, events)
        .await
        .expect("append")
}

/// Appends `count` events spread over three streams; returns them in commit order.
pub(super) async fn fill<S: Store>(store: &S, count: u64) -> Vec<Arc<StoredEvent>> {
    let streams = [
        unique_stream("counter"),
        unique_stream("counter"),
        unique_stream("counter"),
    ];
    let mut all = Vec::new();
    for n in 0..count {
        let stream = &streams[(n % 3) as usize];
        all.extend(add(store, stream, &[n + 1_000]).await);
    }
    all
}

pub(super) fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
    }
}

pub(super) fn start<S: Store, const V: u32>(store: &S, view: &View<V>) -> SubscriptionHandle {
    start_from(store, view, StartFrom::Beginning)
}

pub(super) fn start_from<S: Store, const V: u32>(
    store: &S,
    view: &View<V>,
    from: StartFrom,
) -> SubscriptionHandle {
    Subscription::new(
        store.clone(),
        Project::new(view.clone(), store.clone()).expect("valid"),
    )
    .batch_size(50)
    .retry(quick())
    .idle_wait(Duration::from_millis(200))
    .standby_interval(Duration::from_millis(50))
    .start_from(from)
    .start()
}

/// Every event in `events` applied exactly once, in global order.
pub(super) fn assert_exactly_once<const V: u32>(view: &View<V>, events: &[Arc<StoredEvent>]) {
    view.seen(|seen| {
        for event in events {
            assert_eq!(
                seen.applied.get(&event.event_id),
                Some(&1),
                "event {} applied once",
                event.stream_version
            );
        }
        assert_eq!(seen.applied.len(), events.len(), "nothing else applied");
        let mut sorted = seen.order.clone();
        sorted.sort();
        assert_eq!(seen.order, sorted, "delivered in global order");
    });
}

/// A subscription reads the history in batches, then follows new events as they come;
/// its status reports the position, the lag and the state.
pub async fn subscription_catches_up_then_goes_live<S: Store>(store: S) {
    let mut events = fill(&store, 120).await;
    let view = View::<1>::default();
    let running = start(&store, &view);
    running.caught_up(WAIT).await.expect("caught up");
    assert_exactly_once(&view, &events);
    assert_eq!(view.seen(|s| s.resets), 1, "a new view is reset once");

    events.extend(fill(&store, 30).await);
    running.caught_up(WAIT).await.expect("caught up again");
    assert_exactly_once(&view, &events);
    let status = running.status();
    assert_eq!(status.state, SubscriptionState::Live);
    assert_eq!(status.position, events.last().map(|e| e.position));
    assert_eq!(status.delivered, 150);
    assert_eq!(status.name, "view");
    assert_eq!(running.lag().await.expect("lag"), 0);
    running.shutdown().await.expect("clean stop");
}

/// Eight writers race on four shared streams, with exact versions (reloading on conflict)
/// and with `Any`, in batches of one to three: in the global log, and in what a running
/// subscription delivers, each stream's versions come in order, from 1, with no gap.
/// (Commit order across streams cannot be had exactly; within a stream it must be: a read
/// model that ignores versions it has already passed would otherwise drop an event.)
pub async fn every_stream_is_in_version_order_in_the_log<S: Store>(store: S) {
    let streams: Vec<StreamId> = (0..4).map(|_| unique_stream("counter")).collect();
    let view = View::<1>::default();
    let running = start(&store, &view);
    let writers: Vec<_> = (0..8u64)
        .map(|writer| {
            let (store, streams) = (store.clone(), streams.clone());
            tokio::spawn(async move {
                for round in 0..20u64 {
                    let stream = &streams[((writer + round) % 4) as usize];
                    let amounts: Vec<u64> = (0..1 + (writer * 7 + round) % 3).collect();
                    if (writer + round) % 2 == 0 {
                        add(&store, stream, &amounts).await;
                        continue;
                    }
                    let mut version = store
                        .read_stream(stream, 1, usize::MAX)
                        .await
                        .expect("read")
                        .len() as u64;
                    loop {
                        let batch: Vec<NewEvent> = amounts
                            .iter()
                            .map(|&amount| {
                                codec::encode(&CounterEvent::Added { amount }, Metadata::default())
                                    .expect("encode")
                            })
                            .collect();
                        let expected = match version {
                            0 => ExpectedVersion::NoStream,
                            v => ExpectedVersion::Exact(v),
                        };
                        match store.append(stream, expected, batch).await {
                            Ok(_) => break,
                            Err(crate::StoreError::Conflict { actual, .. }) => version = actual,
                            Err(e) => panic!("append failed: {e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer task panicked");
    }
    let mut log = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = store
            .read_all(after, 37, &crate::EventFilter::all())
            .await
            .expect("read_all");
        let Some(last) = batch.last() else { break };
        after = last.position;
        log.extend(batch);
    }
    let in_order = |log: &[(StreamId, u64)], source: &str| {
        let mut last: HashMap<&StreamId, u64> = HashMap::new();
        for (stream, version) in log {
            let previous = last.insert(stream, *version).unwrap_or(0);
            assert_eq!(
                *version,
                previous + 1,
                "{source}: {stream} goes from version {previous} to {version}"
            );
        }
        last.values().sum::<u64>()
    };
    let read: Vec<(StreamId, u64)> = log
        .iter()
        .map(|e| (e.stream.clone(), e.stream_version))
        .collect();
    let total = in_order(&read, "read_all");
    let mut stored = 0;
    for stream in &streams {
        stored += store
            .read_stream(stream, 1, usize::MAX)
            .await
            .expect("read")
            .len() as u64;
    }
    assert_eq!(total, stored, "the log holds every stored event");

    running.caught_up(WAIT).await.expect("caught up");
    let at: HashMap<Position, (StreamId, u64)> = log
        .iter()
        .map(|e| (e.position, (e.stream.clone(), e.stream_version)))
        .collect();
    let delivered: Vec<(StreamId, u64)> =
        view.seen(|seen| seen.order.iter().map(|p| at[p].clone()).collect());
    assert_eq!(in_order(&delivered, "the subscription"), stored);
    running.shutdown().await.expect("clean stop");
}

/// A view added when 10,000 events already exist catches up on all of them, in order.
pub async fn a_view_added_late_catches_up_on_ten_thousand_events<S: Store>(store: S) {
    let mut events = Vec::new();
    for _ in 0..100 {
        let amounts: Vec<u64> = (0..100).collect();
        events.extend(add(&store, &unique_stream("counter"), &amounts).await);
    }
    let view = View::<1>::default();
    let running = Subscription::new(
        store.clone(),
        Project::new(view.clone(), store.clone()).expect("valid"),
    )
    .start();
    running.caught_up(WAIT).await.expect("caught up");
    assert_exactly_once(&view, &events);
    assert_eq!(running.status().delivered, 10_000);
    running.shutdown().await.expect("clean stop");
}

/// A subscription to some event types, behind on none of them but with other events
/// after its position, waits for new events instead of reading again and again.
pub async fn a_filtered_subscription_idles_quietly<S: Store>(store: S) {
    let counting = Probe::new(store.clone());
    let stream = unique_stream("counter");
    let consumed = add(&store, &stream, &[1]).await;
    let other = unique_stream("gauge");
    for n in 0..20 {
        let event = NewEvent::new(
            "Measured",
            1,
            serde_json::json!({ "n": n }),
            Metadata::default(),
        )
        .expect("valid");
        store
            .append(&other, ExpectedVersion::Any, vec![event])
            .await
            .expect("append");
    }
    let view = View::<1>::default();
    let running = Subscription::new(
        counting.clone(),
        Project::new(view.clone(), store.clone()).expect("valid"),
    )
    .idle_wait(Duration::from_millis(100))
    .start();
    running.caught_up(WAIT).await.expect("caught up");
    assert_exactly_once(&view, &consumed);
    let before = counting.global_reads();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reads = counting.global_reads() - before;
    // One read per idle wait (100 ms) at most, plus slack for a slow machine.
    assert!(reads <= 15, "{reads} reads in 500 ms while idle");
    running.shutdown().await.expect("clean stop");
}

/// A subscription stopped and started again resumes from its checkpoint: nothing is lost,
/// nothing applied twice, and the view is not reset again.
pub async fn subscription_resumes_from_its_checkpoint<S: Store>(store: S) {
    let mut events = fill(&store, 40).await;
    let view = View::<1>::default();
    let first = start(&store, &view);
    first.caught_up(WAIT).await.expect("caught up");
    first.shutdown().await.expect("clean stop");
    let checkpoint = store
        .load_checkpoint(&named("view@v1"))
        .await
        .expect("load checkpoint");
    assert_eq!(checkpoint, events.last().map(|e| e.position));

    events.extend(fill(&store, 40).await);
    let second = start(&store, &view);
    second.caught_up(WAIT).await.expect("caught up");
    assert_exactly_once(&view, &events);
    assert_eq!(view.seen(|s| s.resets), 1, "resumed, not rebuilt");
    second.shutdown().await.expect("clean stop");
}

/// A subscription that starts from now skips the history, records its start as its
/// checkpoint and resumes from there; one that starts after a position skips what is at
/// or before it.
pub async fn a_subscription_starts_from_now_or_after_a_position<S: Store>(store: S) {
    let history = fill(&store, 30).await;
    let view = View::<1>::default();
    let running = start_from(&store, &view, StartFrom::Now);
    running.caught_up(WAIT).await.expect("caught up");
    assert_eq!(view.seen(|s| s.applied.len()), 0, "the history is skipped");
    assert_eq!(view.seen(|s| s.resets), 1, "the view starts empty");
    let recorded = store
        .load_checkpoint(&named("view@v1"))
        .await
        .expect("load checkpoint")
        .expect("the start is recorded");
    let last = history.last().map(|e| e.position).expect("events");
    assert!(
        recorded >= last,
        "recorded {recorded}, the history ends at {last}"
    );
    let mut later = fill(&store, 10).await;
    running.caught_up(WAIT).await.expect("caught up");
    assert_exactly_once(&view, &later);
    running.shutdown().await.expect("clean stop");

    later.extend(fill(&store, 5).await);
    let again = start_from(&store, &view, StartFrom::Now);
    again.caught_up(WAIT).await.expect("caught up");
    assert_exactly_once(&view, &later);
    assert_eq!(
        view.seen(|s| s.resets),
        1,
        "resumed from its checkpoint, not started anew"
    );
    again.shutdown().await.expect("clean stop");

    let after = View::<3>::default();
    let running = start_from(&store, &after, StartFrom::After(history[9].position));
    running.caught_up(WAIT).await.expect("caught up");
    let expected: Vec<_> = history[10..].iter().chain(&later).cloned().collect();
    assert_exactly_once(&after, &expected);
    running.shutdown().await.expect("clean stop");
}

/// A new version of a view, or a rebuild on request, resets the view and replays the
/// whole log; another subscription keeps going meanwhile.
pub async fn subscription_rebuilds_on_new_version_and_on_request<S: Store>(store: S) {
    let mut events = fill(&store, 60).await;
    let v1 = View::<1>::default();
    let running = start(&store, &v1);
    running.caught_up(WAIT).await.expect("caught up");
    running.shutdown().await.expect("clean stop");

    let other = View::<7>::default();
    let other_running = Subscription::new(
        store.clone(),
        Project::new(Renamed(other.clone()), store.clone()).expect("valid"),
    )
    .idle_wait(Duration::from_millis(200))
    .start();

    let v2: View<2> = v1.at();
    let running = start(&store, &v2);
    running.caught_up(WAIT).await.expect("caught up");
    assert_eq!(
        v2.seen(|s| s.resets),
        2,
        "version 2 starts from a reset view"
    );
    assert_exactly_once(&v2, &events);

    running.rebuild();
    events.extend(fill(&store, 10).await);
    running
        .caught_up(WAIT)
        .await
        .expect("caught up after rebuild");
    // The rebuild happens at the next batch boundary, which may come before or after the
    // new events; either way the view ends with everything exactly once.
    assert_eq!(v2.seen(|s| s.resets), 3, "rebuilt on request");
    assert_exactly_once(&v2, &events);

    other_running
        .caught_up(WAIT)
        .await
        .expect("other caught up");
    assert_exactly_once(&other, &events);
    running.shutdown().await.expect("clean stop");
    other_running.shutdown().await.expect("clean stop");
}

/// `caught_up()` after `rebuild()` returns only once the rebuild is done, even when the
/// rebuild is asked for while the runner is between its rebuild check and its read.
pub async fn caught_up_after_a_rebuild_waits_for_the_rebuild<S: Store>(store: S) {
    let events = fill(&store, 20).await;
    // Resets wait at a gate, so that a `caught_up` that returned before the rebuild
    // would be seen returning before the view was reset.
    let reset_gate = Arc::new(tokio::sync::Notify::new());
    reset_gate.notify_one(); // the first reset, of a new view, goes through
    let view = View::<1> {
        reset_gate: Some(Arc::clone(&reset_gate)),
        ..View::default()
    };
    let checkpoints = Probe::new(store.clone());
    let running = Subscription::new(
        store.clone(),
        Project::new(view.clone(), checkpoints.clone()).expect("valid"),
    )
    .idle_wait(Duration::from_millis(20))
    .start();
    running.caught_up(WAIT).await.expect("caught up");
    assert_eq!(view.seen(|s| s.resets), 1, "a new view starts from a reset");

    // Held at its lease check, the runner is past its rebuild check and before its read.
    checkpoints.lease_check.arm();
    tokio::time::timeout(WAIT, checkpoints.lease_check.entered())
        .await
        .expect("the runner comes round to its lease check");
    running.rebuild();
    // `caught_up` takes its starting time when first polled, which is before the release.
    let (caught_up, ()) = tokio::join!(running.caught_up(WAIT), async {
        checkpoints.lease_check.release();
        tokio::time::sleep(Duration::from_millis(300)).await;
        reset_gate.notify_one();
    });
    caught_up.expect("caught up after rebuild");
    assert_eq!(view.seen(|s| s.resets), 2, "the rebuild happened first");
    assert_exactly_once(&view, &events);
    running.shutdown().await.expect("clean stop");
}

/// A second view under another name, sharing the test view's logic.
#[derive(Clone)]
struct Renamed(View<7>);

impl Listener for Renamed {
    const NAME: &'static str = "other-view";
    type Event = CounterEvent;
    type Error = Poisoned;
}

impl Projection for Renamed {
    async fn handle(&self, event: &Envelope<CounterEvent>) -> Result<(), Poisoned> {
        self.0.handle(event).await
    }

    async fn reset(&self) -> Result<(), Poisoned> {
        self.0.reset().await
    }
}

/// A failing event is retried, then stops the subscription with a typed error and the
/// checkpoint just before it; with [`FailurePolicy::Park`] it is parked with its error
/// (as is an event that does not decode) and the rest is delivered.
pub async fn failing_events_stop_the_subscription_or_are_parked<S: Store>(store: S) {
    let stream = unique_stream("counter");
    let events = add(&store, &stream, &[1, 2, 13, 4]).await;
    let view = View::<1>::poisoned(13);
    let stopping = start(&store, &view);
    let ended = tokio::time::timeout(WAIT, stopping.join())
        .await
        .expect("the subscription stops by itself");
    match ended {
        Err(SubscriptionError::Failed {
            name,
            source: DeliveryError::Event { event, source },
        }) => {
            assert_eq!(name, "view");
            assert_eq!(event.event_id, events[2].event_id);
            assert!(
                source.to_string().contains("poisoned amount 13"),
                "{source}"
            );
        }
        other => panic!("expected the poisoned event's failure, got {other:?}"),
    }
    // Recorded for operators in other processes: stopped, and why.
    let records = store.records().await.expect("records");
    let record = records
        .iter()
        .find(|r| r.checkpoint == named("view@v1"))
        .expect("recorded");
    assert!(
        matches!(&record.state, crate::RecordedState::Failed { error } if error.contains("poisoned amount 13")),
        "{record:?}"
    );
    assert_eq!(
        store
            .load_checkpoint(&named("view@v1"))
            .await
            .expect("load"),
        Some(events[1].position),
        "the checkpoint stays before the failing event"
    );
    view.seen(|s| {
        // Delivered at least once (again with each retry: at-least-once), and nothing
        // after the failing event.
        assert!(s.applied.contains_key(&events[0].event_id));
        assert!(s.applied.contains_key(&events[1].event_id));
        assert!(!s.applied.contains_key(&events[3].event_id));
    });

    // An event whose data does not decode: a typed failure like a handler's.
    let bad = NewEvent::new(
        "Added",
        2,
        serde_json::json!({ "amount": "not a number" }),
        Metadata::default(),
    )
    .expect("valid type");
    let bad = store
        .append(&stream, ExpectedVersion::Exact(4), vec![bad])
        .await
        .expect("append");
    let after = add(&store, &stream, &[6]).await;

    let parking = Subscription::new(
        store.clone(),
        Project::new(view.clone(), store.clone()).expect("valid"),
    )
    .retry(quick())
    .on_failure(FailurePolicy::Park)
    .start();
    parking
        .caught_up(WAIT)
        .await
        .expect("caught up past parked");
    let status = parking.status();
    assert_eq!(status.parked, 2);
    assert!(status.last_error.is_some());
    let parked = store.parked(&named("view")).await.expect("parked");
    assert_eq!(parked.len(), 2);
    assert_eq!(parked[0].event.event_id, events[2].event_id);
    assert!(parked[0].error.contains("poisoned amount 13"));
    assert_eq!(parked[1].event.event_id, bad[0].event_id);
    assert!(
        parked[1].error.contains(&stream.to_string()),
        "the error names the stream: {}",
        parked[1].error
    );
    view.seen(|s| {
        // Before the undecodable event in its batch, and so delivered again with each
        // retry of that batch: at least once.
        assert!(s.applied.contains_key(&events[3].event_id));
        assert_eq!(s.applied.get(&after[0].event_id), Some(&1));
    });
    parking.shutdown().await.expect("clean stop");
}

/// Two runners of one subscription: one delivers, the other stands by, and takes over
/// from the checkpoint when the first stops; every event is applied exactly once.
pub async fn one_runner_is_active_and_another_takes_over<S: Store>(store: S) {
    let mut events = fill(&store, 50).await;
    let view = View::<1>::default();
    let a = start(&store, &view);
    let b = start(&store, &view);
    let (active, standby) = tokio::time::timeout(WAIT, async {
        loop {
            let (sa, sb) = (a.status().state, b.status().state);
            if sa == SubscriptionState::Standby && sb == SubscriptionState::Live {
                return (b, a);
            }
            if sb == SubscriptionState::Standby && sa == SubscriptionState::Live {
                return (a, b);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("one live, one standby");
    active.caught_up(WAIT).await.expect("caught up");
    assert_exactly_once(&view, &events);
    assert_eq!(standby.status().delivered, 0);

    active.shutdown().await.expect("clean stop");
    events.extend(fill(&store, 50).await);
    standby
        .caught_up(WAIT)
        .await
        .expect("took over and caught up");
    assert_exactly_once(&view, &events);
    assert_eq!(
        standby.status().delivered,
        50,
        "resumed from the checkpoint"
    );
    standby.shutdown().await.expect("clean stop");
}

/// Mirrors each addition to counter `a-…` onto counter `b-…`.
struct Mirror {
    engine: Engine<Counter>,
}

impl Listener for Mirror {
    const NAME: &'static str = "mirror";
    type Event = CounterEvent;
    type Error = crate::EngineError<super::domain::OverLimit>;
}

impl ProcessManager for Mirror {
    async fn handle(&self, event: &Envelope<CounterEvent>) -> Result<(), Self::Error> {
        let Some(id) = event.stream.id().strip_prefix("a-") else {
            return Ok(());
        };
        let CounterEvent::Added { amount } = event.data;
        self.engine
            .execute_caused_by(&format!("b-{id}"), Add(amount), event)
            .await?;
        Ok(())
    }
}

/// A process manager's commands carry the cause's correlation id and its id as
/// causation; replaying the same events (a redelivery) does not act twice.
pub async fn process_manager_commands_are_idempotent<S: Store>(store: S) {
    let engine = Engine::<Counter>::new(store.clone(), ());
    let id = uuid::Uuid::now_v7().to_string();
    let correlation = uuid::Uuid::now_v7();
    let mut causes = Vec::new();
    for amount in [3, 4, 5] {
        let committed = engine
            .execute_with_metadata(
                &format!("a-{id}"),
                Add(amount),
                Metadata::default().with_correlation_id(correlation),
            )
            .await
            .expect("execute");
        causes.extend(committed.events);
    }
    let mirror = Subscription::new(
        store.clone(),
        React::new(
            Mirror {
                engine: engine.clone(),
            },
            store.clone(),
        )
        .expect("valid"),
    )
    .retry(quick())
    .idle_wait(Duration::from_millis(200))
    .start();
    mirror.caught_up(WAIT).await.expect("caught up");
    let mirrored = engine.load(&format!("b-{id}")).await.expect("load");
    assert_eq!((mirrored.state.value, mirrored.version), (12, 3));
    let stream = StreamId::new("counter", &format!("b-{id}")).expect("valid");
    let written = store.read_stream(&stream, 1, 10).await.expect("read");
    for (event, cause) in written.iter().zip(&causes) {
        assert_eq!(event.metadata.correlation_id, Some(correlation));
        assert_eq!(event.metadata.causation_id, Some(cause.event_id));
        assert!(event.metadata.command_id.is_some());
    }

    // Redelivery of everything: the commands find their earlier outcome.
    mirror.rebuild();
    mirror
        .caught_up(WAIT)
        .await
        .expect("caught up after replay");
    let again = engine.load(&format!("b-{id}")).await.expect("load");
    assert_eq!(
        (again.state.value, again.version),
        (12, 3),
        "no second effect"
    );
    let outcome = engine
        .execute_caused_by(&format!("b-{id}"), Add(3), &causes[0])
        .await
        .expect("repeat");
    assert_eq!(outcome.version, 1, "the first outcome, at its version");
    assert_eq!(outcome.events[0].event_id, written[0].event_id);
    mirror.shutdown().await.expect("clean stop");
}
