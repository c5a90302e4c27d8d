//! Racing appenders through the real engine: 16 tasks × 200 commands, on one aggregate
//! and spread over 1,000, on the memory store and on PostgreSQL, with one generic body.
//!
//! Half the tasks go through an engine with a patient retry policy (every command must
//! land), half through one with the default policy and a memory image (a command may give
//! up after its 5 attempts: it is counted as refused and must leave no trace). What must
//! hold afterwards, per aggregate: the state is the sum of the accepted commands; stream
//! versions run 1..=n without a gap; the stored events are exactly the events the accepted
//! commands were told they committed, at the versions they were told, none lost, none
//! twice, none from a refused command.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cqrs_core::{
    Aggregate, Command, DomainEvent, Engine, EngineError, EventFilter, EventStore, ExpectedVersion,
    NewEvent, Position, RetryPolicy, SnapshotPolicy, SnapshotStore, StoreError, StoredEvent,
    StreamId, StreamStore,
};
use cqrs_memory::MemoryStore;
use cqrs_reliability::{exclusive, fresh_pg_store, mix};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const TASKS: u64 = 16;
const COMMANDS_PER_TASK: u64 = 200;

// ---------------------------------------------------------------------------------------
// The domain: a tally of tagged additions.

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum TallyEvent {
    Added {
        amount: u64,
        tag: u64,
    },
    /// The second event of a two-event command: lets a batch be torn apart if it could.
    Noted {
        tag: u64,
    },
}

/// Adds `amount`; `tag` is unique to the command, so its events can be traced.
#[derive(Debug, Clone, Command)]
struct Add {
    amount: u64,
    tag: u64,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = Add, event = TallyEvent, error = Infallible)]
struct Tally {
    total: u64,
    commands: u64,
}

impl Tally {
    async fn handle(&self, command: &Add, _: &()) -> Result<Vec<TallyEvent>, Infallible> {
        // The memory store's calls never wait, so without this a task would rarely be
        // interrupted between its load and its append, and the race would be mild.
        tokio::task::yield_now().await;
        let mut events = vec![TallyEvent::Added {
            amount: command.amount,
            tag: command.tag,
        }];
        if command.tag.is_multiple_of(5) {
            events.push(TallyEvent::Noted { tag: command.tag });
        }
        Ok(events)
    }

    fn apply(&mut self, event: &TallyEvent) {
        if let TallyEvent::Added { amount, .. } = event {
            self.total += amount;
            self.commands += 1;
        }
    }
}

/// How many events command `tag` emits.
fn events_of(tag: u64) -> usize {
    if tag.is_multiple_of(5) {
        2
    } else {
        1
    }
}

// ---------------------------------------------------------------------------------------
// A write-side wrapper that counts appends and their conflicts (the engine uses only
// the write side, so that is all it forwards).

#[derive(Clone)]
struct Counted<S> {
    inner: S,
    appends: Arc<AtomicU64>,
    conflicts: Arc<AtomicU64>,
}

impl<S> Counted<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            appends: Arc::default(),
            conflicts: Arc::default(),
        }
    }
}

#[async_trait]
impl<S: StreamStore> StreamStore for Counted<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.appends.fetch_add(1, Ordering::Relaxed);
        let appended = self.inner.append(stream, expected, events).await;
        if matches!(appended, Err(StoreError::Conflict { .. })) {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        appended
    }

    async fn delete_stream(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        metadata: cqrs_core::Metadata,
    ) -> Result<Arc<StoredEvent>, StoreError> {
        self.inner.delete_stream(stream, expected, metadata).await
    }

    async fn purge_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.purge_stream(stream).await
    }

    async fn truncate_stream(&self, stream: &StreamId, before: u64) -> Result<u64, StoreError> {
        self.inner.truncate_stream(stream, before).await
    }

    async fn archive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.archive_stream(stream).await
    }

    async fn unarchive_stream(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.unarchive_stream(stream).await
    }

    async fn read_archived_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner
            .read_archived_stream(stream, from_version, max_count)
            .await
    }

    async fn forget_subject(
        &self,
        subject: &cqrs_core::personal::Subject,
    ) -> Result<Vec<StreamId>, StoreError> {
        self.inner.forget_subject(subject).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner
            .read_stream(stream, from_version, max_count)
            .await
    }

    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.read_by_command(stream, command_id).await
    }
}

// ---------------------------------------------------------------------------------------
// The race.

/// Which aggregate each command goes to.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// All of them to one.
    One,
    /// Over 1,000, skewed (the cube of a uniform number) so that the hottest still see
    /// many conflicts: about a tenth of the commands go to the first one.
    Thousand,
}

impl Target {
    fn aggregate(self, tag: u64) -> String {
        match self {
            Target::One => "a0".to_owned(),
            Target::Thousand => {
                let uniform = (mix(tag) >> 11) as f64 / (1u64 << 53) as f64;
                format!("a{}", (uniform.powi(3) * 1_000.0) as u64)
            }
        }
    }
}

/// What a command's caller was told.
enum Outcome {
    /// Committed: these event ids, at these versions.
    Accepted {
        amount: u64,
        events: Vec<(Uuid, u64)>,
    },
    /// Gave up after the retry policy's attempts.
    Refused,
}

struct Sent {
    tag: u64,
    aggregate: String,
    outcome: Outcome,
}

/// What the doc table reports.
struct Figures {
    aggregates: usize,
    accepted: u64,
    refused: u64,
    appends: u64,
    conflicts: u64,
    events: u64,
    seconds: f64,
}

/// The patient policy: enough attempts that no command gives up (the pause between
/// attempts grows to its cap long before the last one).
fn patient() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 100_000,
        base_delay: Duration::from_micros(100),
    }
}

async fn race<S>(store: S, target: Target) -> Figures
where
    S: EventStore + SnapshotStore + Clone,
{
    let counted = Counted::new(store.clone());
    let snapshots = SnapshotPolicy::EveryEvents(64);
    let patient_engine = Engine::<Tally>::new(counted.clone(), ())
        .with_snapshots(store.clone(), snapshots)
        .with_retry(patient());
    let default_engine = Engine::<Tally>::new(counted.clone(), ())
        .with_snapshots(store.clone(), snapshots)
        .with_image_cache(1_000);
    let default_attempts = RetryPolicy::default().max_attempts;

    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (engine, may_give_up) = if task % 2 == 0 {
                (patient_engine.clone(), false)
            } else {
                (default_engine.clone(), true)
            };
            tokio::spawn(async move {
                let mut sent = Vec::new();
                for i in 0..COMMANDS_PER_TASK {
                    let tag = task * 1_000 + i;
                    let amount = 1 + mix(tag ^ 0xa5a5) % 100;
                    let aggregate = target.aggregate(tag);
                    let outcome = match engine.execute(&aggregate, Add { amount, tag }).await {
                        Ok(committed) => {
                            let events: Vec<(Uuid, u64)> = committed
                                .events
                                .iter()
                                .map(|e| (e.event_id, e.stream_version))
                                .collect();
                            assert_eq!(events.len(), events_of(tag), "command {tag}");
                            assert_eq!(events.last().map(|e| e.1), Some(committed.version));
                            Outcome::Accepted { amount, events }
                        }
                        Err(EngineError::Conflict { attempts, .. }) if may_give_up => {
                            assert_eq!(attempts, default_attempts, "gave up early");
                            Outcome::Refused
                        }
                        Err(other) => panic!("command {tag} on {aggregate} failed: {other:?}"),
                    };
                    sent.push(Sent {
                        tag,
                        aggregate,
                        outcome,
                    });
                }
                sent
            })
        })
        .collect();
    let mut sent = Vec::new();
    for task in tasks {
        sent.extend(task.await.expect("a racing task panicked"));
    }
    let seconds = started.elapsed().as_secs_f64();

    let mut by_aggregate: BTreeMap<String, Vec<Sent>> = BTreeMap::new();
    for s in sent {
        by_aggregate.entry(s.aggregate.clone()).or_default().push(s);
    }
    // Loaded without snapshots: a full replay of each stream.
    let replay = Engine::<Tally>::new(store.clone(), ());
    let (mut accepted, mut refused, mut events) = (0, 0, 0);
    for (aggregate, sent) in &by_aggregate {
        let stream = StreamId::new(Tally::TYPE, aggregate).expect("stream id");
        let stored = store
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read stream");
        let versions: Vec<u64> = stored.iter().map(|e| e.stream_version).collect();
        assert_eq!(
            versions,
            (1..=stored.len() as u64).collect::<Vec<_>>(),
            "{aggregate}: versions are contiguous from 1"
        );
        let at: HashMap<u64, Uuid> = stored
            .iter()
            .map(|e| (e.stream_version, e.event_id))
            .collect();
        let (mut sum, mut count, mut told) = (0, 0, HashSet::new());
        let mut accepted_tags = HashSet::new();
        for s in sent {
            match &s.outcome {
                Outcome::Accepted { amount, events } => {
                    sum += amount;
                    count += 1;
                    accepted_tags.insert(s.tag);
                    for &(id, version) in events {
                        assert_eq!(
                            at.get(&version),
                            Some(&id),
                            "{aggregate}: command {} was told it committed {id} at version \
                             {version}",
                            s.tag
                        );
                        assert!(told.insert(id), "{id} reported twice");
                    }
                }
                Outcome::Refused => refused += 1,
            }
        }
        let stored_ids: HashSet<Uuid> = stored.iter().map(|e| e.event_id).collect();
        assert_eq!(
            stored_ids.len(),
            stored.len(),
            "{aggregate}: an event twice"
        );
        assert_eq!(
            stored_ids, told,
            "{aggregate}: stored events are exactly the accepted commands' events"
        );
        let stored_tags: HashSet<u64> = stored
            .iter()
            .map(|e| e.data["tag"].as_u64().expect("a tag"))
            .collect();
        assert_eq!(
            stored_tags, accepted_tags,
            "{aggregate}: no refused command"
        );
        let loaded = replay.load(aggregate).await.expect("load");
        assert_eq!(loaded.version, stored.len() as u64);
        assert_eq!(
            (loaded.state.total, loaded.state.commands),
            (sum, count),
            "{aggregate}: the state is the sum of the accepted commands"
        );
        accepted += count;
        events += stored.len() as u64;
    }

    // The global log holds the same events, each once.
    let mut global = HashSet::new();
    let mut after = Position::START;
    loop {
        let batch = store
            .read_all(after, 1_000, &EventFilter::all())
            .await
            .expect("read all");
        let Some(last) = batch.last() else { break };
        after = last.position;
        for e in &batch {
            assert!(global.insert(e.event_id), "{} read twice", e.event_id);
        }
    }
    assert_eq!(
        global.len() as u64,
        events,
        "the global log holds every event"
    );

    let figures = Figures {
        aggregates: by_aggregate.len(),
        accepted,
        refused,
        appends: counted.appends.load(Ordering::Relaxed),
        conflicts: counted.conflicts.load(Ordering::Relaxed),
        events,
        seconds,
    };
    assert_eq!(accepted + refused, TASKS * COMMANDS_PER_TASK);
    eprintln!("{target:?}: {figures}");
    figures
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} aggregates, {} commands accepted, {} refused after the default policy's \
             attempts, {} appends of which {} conflicted, {} events, {:.1} s",
            self.aggregates,
            self.accepted,
            self.refused,
            self.appends,
            self.conflicts,
            self.events,
            self.seconds
        )
    }
}

/// Checks common to both stores on one aggregate: the tasks really raced, and every
/// command of the patient engine landed.
fn check_one_aggregate(figures: &Figures) {
    assert_eq!(figures.aggregates, 1);
    assert!(figures.conflicts > 0, "the tasks never collided: {figures}");
    assert!(
        figures.accepted >= TASKS / 2 * COMMANDS_PER_TASK,
        "{figures}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_on_one_aggregate_memory() {
    check_one_aggregate(&race(MemoryStore::new(), Target::One).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_on_one_aggregate_postgres() {
    let _one = exclusive().await;
    check_one_aggregate(&race(fresh_pg_store(17).await, Target::One).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_on_a_thousand_aggregates_memory() {
    let figures = race(MemoryStore::new(), Target::Thousand).await;
    assert!(figures.aggregates > 100, "{figures}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_tasks_on_a_thousand_aggregates_postgres() {
    let _one = exclusive().await;
    let figures = race(fresh_pg_store(17).await, Target::Thousand).await;
    assert!(figures.aggregates > 100, "{figures}");
}
