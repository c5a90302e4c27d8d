//! Panics in application code: a handler that panics fails its event under the
//! subscription's failure policy, reported at once; a runner whose task dies says so; a
//! command whose `handle` or `apply` panics is an error, and the next command works.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::domain::{Add, Counter, CounterEvent, OverLimit};
use super::probe::Probe;
use super::{unique_stream, Store};
use crate::subscription::{
    decode, Consumer, DeliveryError, FailurePolicy, Identity, Project, React, Subscription,
    SubscriptionError, SubscriptionHandle, SubscriptionState,
};
use crate::{
    codec, Aggregate, CheckpointStore, Engine, EngineError, Envelope, EventFilter, ExpectedVersion,
    Listener, Metadata, Position, ProcessManager, Projection, RetryPolicy, StoredEvent, StreamId,
    SubscriptionName,
};

const WAIT: Duration = Duration::from_secs(20);

/// How long `caught_up` may take to report a failure once the handler has panicked: the
/// retries (pauses of a few milliseconds) and nothing else, never the caller's timeout.
const AT_ONCE: Duration = Duration::from_secs(1);

/// The amount at which the tripwire panics: the fifth of the ten events.
const TRIP: u64 = 5;

fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
    }
}

/// The events a tripwire handler applied. A delivery of an event already applied is
/// ignored, as an idempotent handler ignores a redelivery (at-least-once), so a missing
/// event is a real skip.
type Applied = HashSet<uuid::Uuid>;

/// A handler with a bug: it panics on the amount `trip_at` (0: fixed).
#[derive(Clone, Default)]
struct Tripwire {
    applied: Arc<Mutex<Applied>>,
    trip_at: Arc<AtomicU64>,
    /// Panics so far.
    trips: Arc<AtomicU32>,
    /// Notified at each panic.
    tripped: Arc<Notify>,
}

impl Tripwire {
    fn armed() -> Self {
        let wire = Self::default();
        wire.trip_at.store(TRIP, Ordering::SeqCst);
        wire
    }

    fn fix(&self) {
        self.trip_at.store(0, Ordering::SeqCst);
    }

    fn trips(&self) -> u32 {
        self.trips.load(Ordering::SeqCst)
    }

    fn handle(&self, event: &Envelope<CounterEvent>) {
        let CounterEvent::Added { amount } = event.data;
        if self.trip_at.load(Ordering::SeqCst) == amount {
            self.trips.fetch_add(1, Ordering::SeqCst);
            self.tripped.notify_one();
            // Before taking the lock, as a handler's bug usually is: a panic while holding
            // it would poison the view, and every later event would fail too.
            panic!("tripwire at amount {amount}");
        }
        self.applied
            .lock()
            .expect("tripwire lock")
            .insert(event.event_id);
    }

    fn reset(&self) {
        self.applied.lock().expect("tripwire lock").clear();
    }

    fn applied(&self, event: &StoredEvent) -> bool {
        self.applied
            .lock()
            .expect("tripwire lock")
            .contains(&event.event_id)
    }

    /// Every event of `events` took effect, and nothing else did.
    fn assert_applied(&self, events: &[Arc<StoredEvent>]) {
        for event in events {
            assert!(
                self.applied(event),
                "event {} applied",
                event.stream_version
            );
        }
        let applied = self.applied.lock().expect("tripwire lock");
        assert_eq!(applied.len(), events.len(), "nothing else applied");
    }
}

/// The tripwire as a projection.
#[derive(Clone)]
struct TripView(Tripwire);

impl Listener for TripView {
    const NAME: &'static str = "trip_view";
    type Event = CounterEvent;
    type Error = Infallible;
}

impl Projection for TripView {
    async fn handle(&self, event: &Envelope<CounterEvent>) -> Result<(), Infallible> {
        self.0.handle(event);
        Ok(())
    }

    async fn reset(&self) -> Result<(), Infallible> {
        self.0.reset();
        Ok(())
    }
}

/// The tripwire as a process manager.
struct TripManager(Tripwire);

impl Listener for TripManager {
    const NAME: &'static str = "trip_manager";
    type Event = CounterEvent;
    type Error = Infallible;
}

impl ProcessManager for TripManager {
    async fn handle(&self, event: &Envelope<CounterEvent>) -> Result<(), Infallible> {
        self.0.handle(event);
        Ok(())
    }
}

/// The tripwire behind a consumer written by hand that catches nothing: the runner must
/// find which event of a batch panicked by itself.
struct Careless<S> {
    wire: Tripwire,
    store: S,
    identity: Identity,
}

#[async_trait]
impl<S: Store> Consumer for Careless<S> {
    fn identity(&self) -> &Identity {
        &self.identity
    }

    fn checkpoints(&self) -> &dyn CheckpointStore {
        &self.store
    }

    async fn deliver(
        &self,
        _from: Position,
        events: &[Arc<StoredEvent>],
        to: Position,
    ) -> Result<(), DeliveryError> {
        for stored in events {
            self.wire.handle(&decode::<CounterEvent>(stored)?);
        }
        self.store
            .save_checkpoint(self.identity.checkpoint(), to)
            .await?;
        Ok(())
    }

    async fn reset(&self) -> Result<(), DeliveryError> {
        self.store
            .save_checkpoint(self.identity.checkpoint(), Position::START)
            .await?;
        self.wire.reset();
        Ok(())
    }
}

/// Appends one `Added` event per amount to `stream`.
async fn add<S: Store>(store: &S, stream: &StreamId, amounts: &[u64]) -> Vec<Arc<StoredEvent>> {
    let events = amounts
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

fn start(consumer: impl Consumer, store: impl Store, policy: FailurePolicy) -> SubscriptionHandle {
    Subscription::new(store, consumer)
        .retry(quick())
        .on_failure(policy)
        .idle_wait(Duration::from_millis(200))
        .standby_interval(Duration::from_millis(50))
        .start()
}

/// Whether `error` names the fifth event of `stream` (stream, version, type) and the
/// panic's message.
fn names_the_panic(error: &str, stream: &StreamId) -> bool {
    error.contains(&stream.to_string())
        && error.contains("version 5 ")
        && error.contains("(Added v2)")
        && error.contains("tripwire at amount 5")
}

/// The reproduction of the issue, for one consumer and one failure policy: ten events,
/// a handler that panics at the fifth. `caught_up` reports at once (under `Stop`, the
/// failure; under `Park`, caught up past the parked event); the status and `last_error`
/// name the event and the panic; the checkpoint never passes an event that did not take
/// effect; and once the bug is fixed and the subscription started again (`Stop`) or
/// rebuilt (`Park`: nothing replays a parked event by itself), every event took effect
/// once. `trips` is how often the handler is expected to panic.
async fn reproduce<S: Store, C: Consumer>(
    store: S,
    wire: &Tripwire,
    consumer: impl Fn() -> C,
    policy: FailurePolicy,
    trips: u32,
) {
    let stream = unique_stream("counter");
    let events = add(&store, &stream, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).await;
    let (fifth, rest) = (&events[4], [&events[..4], &events[5..]].concat());
    let (name, key) = {
        let consumer = consumer();
        (
            consumer.identity().name().clone(),
            consumer.identity().checkpoint().clone(),
        )
    };
    let running = start(consumer(), store.clone(), policy);

    tokio::time::timeout(WAIT, wire.tripped.notified())
        .await
        .expect("the handler meets the fifth event");
    let caught_up = tokio::time::timeout(AT_ONCE, running.caught_up(WAIT))
        .await
        .expect("caught_up answers at once, not after its timeout");
    assert_eq!(wire.trips(), trips, "tried as an error would be");
    let status = running.status();
    let last_error = status.last_error.clone().unwrap_or_default();
    assert!(names_the_panic(&last_error, &stream), "{status:?}");

    match policy {
        FailurePolicy::Stop => {
            match &caught_up {
                Err(SubscriptionError::NotRunning {
                    state: SubscriptionState::Failed,
                    last_error: Some(error),
                    ..
                }) => assert!(names_the_panic(error, &stream), "{error}"),
                other => panic!("expected the failure, got {other:?}"),
            }
            assert_eq!(status.state, SubscriptionState::Failed);
            assert_eq!(status.position, Some(events[3].position));
            assert_eq!(
                store.load_checkpoint(&key).await.expect("load"),
                Some(events[3].position),
                "the checkpoint stays before the event that panicked"
            );
            match running.join().await {
                Err(SubscriptionError::Failed {
                    source: DeliveryError::Event { event, source },
                    ..
                }) => {
                    assert_eq!(event.event_id, fifth.event_id);
                    assert_eq!(source.to_string(), "panicked: tripwire at amount 5");
                }
                other => panic!("expected the fifth event's failure, got {other:?}"),
            }
            assert!(!wire.applied(fifth));
            assert!(events[5..].iter().all(|e| !wire.applied(e)));

            wire.fix();
            let again = start(consumer(), store.clone(), policy);
            again.caught_up(WAIT).await.expect("caught up once fixed");
            wire.assert_applied(&events);
            again.shutdown().await.expect("clean stop");
        }
        FailurePolicy::Park => {
            caught_up.expect("caught up past the parked event");
            assert_eq!(status.state, SubscriptionState::Live);
            assert_eq!(status.parked, 1);
            assert_eq!(status.position, events.last().map(|e| e.position));
            let parked = store.parked(&name).await.expect("parked");
            assert_eq!(parked.len(), 1);
            assert_eq!(parked[0].event.event_id, fifth.event_id);
            assert!(
                parked[0].error.contains("tripwire at amount 5"),
                "{:?}",
                parked[0]
            );
            wire.assert_applied(&rest);

            wire.fix();
            running.rebuild();
            running.caught_up(WAIT).await.expect("rebuilt once fixed");
            wire.assert_applied(&events);
            running.shutdown().await.expect("clean stop");
        }
    }
}

/// A projection (through `Project`) that panics at the fifth of ten events, under
/// [`FailurePolicy::Stop`]: the subscription fails at once, naming the event and the
/// panic, and resumes before it once the bug is fixed.
pub async fn a_panicking_projection_stops_its_subscription_at_once<S: Store>(store: S) {
    let wire = Tripwire::armed();
    let view = || Project::new(TripView(wire.clone()), store.clone()).expect("valid names");
    reproduce(store.clone(), &wire, view, FailurePolicy::Stop, 3).await;
}

/// The same projection under [`FailurePolicy::Park`]: the event that panics is parked
/// with the panic's message, and the others flow on.
pub async fn a_panicking_projection_has_its_event_parked<S: Store>(store: S) {
    let wire = Tripwire::armed();
    let view = || Project::new(TripView(wire.clone()), store.clone()).expect("valid names");
    reproduce(store.clone(), &wire, view, FailurePolicy::Park, 3).await;
}

/// A process manager (through `React`) that panics, under [`FailurePolicy::Stop`].
pub async fn a_panicking_process_manager_stops_its_subscription_at_once<S: Store>(store: S) {
    let wire = Tripwire::armed();
    let manager = || React::new(TripManager(wire.clone()), store.clone()).expect("valid names");
    reproduce(store.clone(), &wire, manager, FailurePolicy::Stop, 3).await;
}

/// A process manager that panics, under [`FailurePolicy::Park`].
pub async fn a_panicking_process_manager_has_its_event_parked<S: Store>(store: S) {
    let wire = Tripwire::armed();
    let manager = || React::new(TripManager(wire.clone()), store.clone()).expect("valid names");
    reproduce(store.clone(), &wire, manager, FailurePolicy::Park, 3).await;
}

fn careless<S: Store>(wire: &Tripwire, store: &S) -> Careless<S> {
    let name = SubscriptionName::new("careless").expect("valid");
    Careless {
        wire: wire.clone(),
        store: store.clone(),
        identity: Identity::new(name, 1, EventFilter::all()).expect("valid"),
    }
}

/// A consumer that lets its handler's panic escape `deliver`, mid-batch: the runner
/// catches it, delivers that batch's events one at a time to find the one at fault (so
/// one panic more than the retries), then treats it as any failing event; here under
/// [`FailurePolicy::Stop`].
pub async fn a_consumer_that_lets_a_panic_escape_is_stopped_on_the_right_event<S: Store>(store: S) {
    let wire = Tripwire::armed();
    let consumer = || careless(&wire, &store);
    reproduce(store.clone(), &wire, consumer, FailurePolicy::Stop, 4).await;
}

/// The same consumer under [`FailurePolicy::Park`]: the right event is parked.
pub async fn a_consumer_that_lets_a_panic_escape_has_the_right_event_parked<S: Store>(store: S) {
    let wire = Tripwire::armed();
    let consumer = || careless(&wire, &store);
    reproduce(store.clone(), &wire, consumer, FailurePolicy::Park, 4).await;
}

/// A consumer whose own code panics outside any handler (here: finding its checkpoint
/// store): the runner's task ends, and the status says `Failed` with the panic at once;
/// `caught_up` returns that instead of waiting, and `join` the abort.
pub async fn a_runner_that_panics_outside_a_handler_reports_it_at_once<S: Store>(store: S) {
    struct Broken(Identity);

    #[async_trait]
    impl Consumer for Broken {
        fn identity(&self) -> &Identity {
            &self.0
        }
        fn checkpoints(&self) -> &dyn CheckpointStore {
            panic!("no checkpoint store configured")
        }
        async fn deliver(
            &self,
            _: Position,
            _: &[Arc<StoredEvent>],
            _: Position,
        ) -> Result<(), DeliveryError> {
            Ok(())
        }
        async fn reset(&self) -> Result<(), DeliveryError> {
            Ok(())
        }
    }

    add(&store, &unique_stream("counter"), &[1]).await;
    let name = SubscriptionName::new("broken").expect("valid");
    let identity = Identity::new(name, 1, EventFilter::all()).expect("valid");
    let running = start(Broken(identity), store, FailurePolicy::Stop);
    let caught_up = tokio::time::timeout(AT_ONCE, running.caught_up(WAIT))
        .await
        .expect("caught_up answers at once, not after its timeout");
    match caught_up {
        Err(SubscriptionError::NotRunning {
            state: SubscriptionState::Failed,
            last_error: Some(error),
            ..
        }) => assert!(
            error.contains("aborted") && error.contains("no checkpoint store configured"),
            "{error}"
        ),
        other => panic!("expected the abort, got {other:?}"),
    }
    assert_eq!(running.status().state, SubscriptionState::Failed);
    match running.join().await {
        Err(SubscriptionError::Aborted { name, message }) => {
            assert_eq!(name, "broken");
            assert_eq!(message, "no checkpoint store configured");
        }
        other => panic!("expected the abort, got {other:?}"),
    }
}

/// Set while [`Fragile`]'s `apply` has its bug.
static APPLY_BUG: AtomicBool = AtomicBool::new(false);

/// A counter whose `handle` panics on `Add(13)`, and whose `apply` panics on an addition
/// of 666 while [`APPLY_BUG`] is set. Only
/// [`a_panicking_aggregate_leaves_the_next_command_working`] uses it.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Fragile(Counter);

impl Aggregate for Fragile {
    const TYPE: &'static str = "fragile";
    type Command = Add;
    type Event = CounterEvent;
    type Error = OverLimit;
    type Services = ();

    async fn handle(&self, command: &Add, services: &()) -> Result<Vec<CounterEvent>, OverLimit> {
        if command.0 == 13 {
            panic!("handle bug: 13");
        }
        self.0.handle(command, services).await
    }

    fn apply(&mut self, event: &CounterEvent) {
        let CounterEvent::Added { amount } = event;
        if *amount == 666 && APPLY_BUG.load(Ordering::SeqCst) {
            // Half-way through: the state is changed, then the bug.
            self.0.value += 1;
            panic!("apply bug: 666");
        }
        self.0.apply(event);
    }
}

/// With the memory image on: a command whose `handle` panics is an error
/// ([`EngineError::Panicked`]) that writes nothing, and the next command on the aggregate
/// works on the stored state (loaded again, not the image the panic interrupted). An
/// `apply` that panics on committed events is an error naming the committed version,
/// leaves no half-applied image behind, and, once fixed, the next command works.
pub async fn a_panicking_aggregate_leaves_the_next_command_working<S: Store>(store: S) {
    let store = Probe::new(store);
    let engine = Engine::<Fragile>::new(store.clone(), ()).with_image_cache(16);
    let id = uuid::Uuid::now_v7().to_string();
    let stream = StreamId::new("fragile", &id).expect("valid");
    engine.execute(&id, Add(1)).await.expect("first");
    engine
        .execute(&id, Add(2))
        .await
        .expect("second, on the image");

    let panicked = engine.execute(&id, Add(13)).await;
    match &panicked {
        Err(EngineError::Panicked {
            stream: s,
            call: "handle",
            committed: None,
            source,
        }) => {
            assert_eq!(*s, stream);
            assert_eq!(source.message, "handle bug: 13");
        }
        other => panic!("expected the panic, got {other:?}"),
    }
    let reads = store.stream_reads();
    let next = engine.execute(&id, Add(4)).await.expect("the next command");
    assert_eq!(next.version, 3, "nothing was written by the panicking one");
    assert!(
        store.stream_reads() > reads,
        "loaded from the store, not the image"
    );
    let loaded = engine.load(&id).await.expect("load");
    assert_eq!((loaded.state.0.value, loaded.version), (7, 3));
    let reads = store.stream_reads();
    engine
        .execute(&id, Add(1))
        .await
        .expect("on the image again");
    assert_eq!(store.stream_reads(), reads, "the image works again");

    APPLY_BUG.store(true, Ordering::SeqCst);
    let panicked = engine.execute(&id, Add(666)).await;
    assert!(
        matches!(
            &panicked,
            Err(EngineError::Panicked { call: "apply", committed: Some(5), source, .. })
                if source.message == "apply bug: 666"
        ),
        "{panicked:?}"
    );
    // Committed, but not cached: the next command loads, and meets the bug again.
    let again = engine.execute(&id, Add(1)).await;
    assert!(
        matches!(
            &again,
            Err(EngineError::Panicked {
                call: "apply",
                committed: None,
                ..
            })
        ),
        "{again:?}"
    );
    APPLY_BUG.store(false, Ordering::SeqCst);
    let fixed = engine.execute(&id, Add(1)).await.expect("fixed");
    assert_eq!(fixed.version, 6);
    let loaded = engine.load(&id).await.expect("load");
    assert_eq!((loaded.state.0.value, loaded.version), (675, 6));
}

/// A projection run by the engine that panics: the commit stands, `execute` returns
/// [`EngineError::Projection`] with the panic, and the next command runs it again.
pub async fn a_panicking_engine_projection_fails_after_the_commit<S: Store>(store: S) {
    let wire = Tripwire::armed();
    let engine = Engine::<Counter>::new(store.clone(), ()).with_projection(TripView(wire.clone()));
    let id = uuid::Uuid::now_v7().to_string();
    engine.execute(&id, Add(1)).await.expect("first");
    let failed = engine.execute(&id, Add(TRIP)).await;
    match &failed {
        Err(EngineError::Projection {
            version,
            projection,
            source,
            ..
        }) => {
            assert_eq!((*version, *projection), (2, "trip_view"));
            assert_eq!(source.to_string(), "panicked: tripwire at amount 5");
        }
        other => panic!("expected the projection's failure, got {other:?}"),
    }
    let next = engine.execute(&id, Add(3)).await.expect("the next command");
    assert_eq!(
        next.version, 3,
        "the command that met the panic was committed"
    );
    let loaded = engine.load(&id).await.expect("load");
    assert_eq!(loaded.state.value, 9);
    let stream = StreamId::new("counter", &id).expect("valid");
    let stored = store.read_stream(&stream, 1, 10).await.expect("read");
    assert!(wire.applied(&stored[0]) && wire.applied(&stored[2]));
    assert!(!wire.applied(&stored[1]));
}
