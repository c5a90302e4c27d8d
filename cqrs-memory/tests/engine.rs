//! Engine behaviour that the conformance suite does not cover because it does not depend
//! on the store: inline projections, `send`, identifier checks, giving up on conflicts.

use std::sync::{Arc, Mutex};

use cqrs_core::{
    Aggregate, Command, DomainEvent, Engine, EngineError, Envelope, Projection, RetryPolicy,
    StreamStore,
};
use cqrs_memory::MemoryStore;
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = TallyCommand, event = TallyEvent, error = Never, services = Arc<Barrier>)]
struct Tally {
    count: u64,
}

enum TallyCommand {
    /// Counts once, on the tally named by `id`.
    Count { id: Option<String> },
    /// Counts after every other `Count` of the test reached the barrier.
    CountTogether,
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum TallyEvent {
    Counted,
    Noted,
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Tally {
    async fn handle(
        &self,
        command: &TallyCommand,
        barrier: &Arc<Barrier>,
    ) -> Result<Vec<TallyEvent>, Never> {
        if let TallyCommand::CountTogether = command {
            barrier.wait().await;
        }
        Ok(vec![TallyEvent::Counted, TallyEvent::Noted])
    }

    fn apply(&mut self, event: &TallyEvent) {
        if let TallyEvent::Counted = event {
            self.count += 1;
        }
    }
}

// By hand on purpose: `Count { id: None }` names no aggregate, to test `send` refusing it;
// the derive always yields an id when the command has one.
impl Command for TallyCommand {
    fn command_name(&self) -> &'static str {
        match self {
            TallyCommand::Count { .. } => "Count",
            TallyCommand::CountTogether => "CountTogether",
        }
    }

    fn aggregate_id(&self) -> Option<String> {
        match self {
            TallyCommand::Count { id } => id.clone(),
            TallyCommand::CountTogether => None,
        }
    }
}

/// Records what it sees; consumes only `Counted`; fails when told to.
#[derive(Clone, Default, Projection)]
#[projection(event = TallyEvent, events(Counted), error = ViewDown)]
struct Seen {
    events: Arc<Mutex<Vec<(String, u64)>>>,
    fail: Arc<Mutex<bool>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the view is down")]
struct ViewDown;

impl Seen {
    async fn reset(&self) -> Result<(), ViewDown> {
        self.events.lock().unwrap().clear();
        Ok(())
    }

    async fn handle(&self, event: &Envelope<TallyEvent>) -> Result<(), ViewDown> {
        if *self.fail.lock().unwrap() {
            return Err(ViewDown);
        }
        self.events
            .lock()
            .unwrap()
            .push((event.event_type.clone(), event.stream_version));
        Ok(())
    }
}

fn engine(store: &MemoryStore) -> Engine<Tally> {
    Engine::new(store.clone(), Arc::new(Barrier::new(2)))
}

#[tokio::test]
async fn inline_projections_see_committed_events_of_the_types_they_consume() {
    let seen = Seen::default();
    let tallies = engine(&MemoryStore::new()).with_projection(seen.clone());
    tallies
        .execute("t", TallyCommand::Count { id: None })
        .await
        .unwrap();
    tallies
        .execute("t", TallyCommand::Count { id: None })
        .await
        .unwrap();
    assert_eq!(
        *seen.events.lock().unwrap(),
        [("Counted".to_owned(), 1), ("Counted".to_owned(), 3)],
        "the projection sees only `Counted`, with its stream version, before execute returns"
    );
}

#[tokio::test]
async fn a_failing_inline_projection_reports_the_commit_it_could_not_follow() {
    let store = MemoryStore::new();
    let seen = Seen::default();
    *seen.fail.lock().unwrap() = true;
    let tallies = engine(&store).with_projection(seen);
    match tallies.execute("t", TallyCommand::Count { id: None }).await {
        Err(EngineError::Projection {
            version,
            projection,
            stream,
            ..
        }) => {
            assert_eq!((version, projection, stream.id()), (2, "seen", "t"));
        }
        other => panic!("expected a projection error, got {other:?}"),
    }
    assert_eq!(
        tallies.load("t").await.unwrap().version,
        2,
        "the events stay committed"
    );
}

#[tokio::test]
async fn send_uses_the_id_the_command_carries() {
    let tallies = engine(&MemoryStore::new());
    let committed = tallies
        .send(TallyCommand::Count {
            id: Some("named".into()),
        })
        .await
        .unwrap();
    assert_eq!(committed.events[0].stream.id(), "named");
    match tallies.send(TallyCommand::Count { id: None }).await {
        Err(EngineError::MissingAggregateId { command: "Count" }) => {}
        other => panic!("expected MissingAggregateId, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_aggregate_ids_are_refused_before_any_io() {
    let store = MemoryStore::new();
    let tallies = engine(&store);
    for bad in ["", "nul\0", &"x".repeat(300)] {
        assert!(matches!(
            tallies.execute(bad, TallyCommand::Count { id: None }).await,
            Err(EngineError::InvalidId(_))
        ));
        assert!(matches!(
            tallies.load(bad).await,
            Err(EngineError::InvalidId(_))
        ));
    }
    assert!(store.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_the_loser_of_a_race_gets_a_conflict() {
    // Both commands load version 0, meet at the barrier, then both append at "no stream".
    let store = MemoryStore::new();
    let tallies = engine(&store).with_retry(RetryPolicy::never());
    let (a, b) = tokio::join!(
        tallies.execute("race", TallyCommand::CountTogether),
        tallies.execute("race", TallyCommand::CountTogether),
    );
    let (won, lost) = match (a, b) {
        (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
        other => panic!("expected one winner and one loser, got {other:?}"),
    };
    assert_eq!(won.version, 2);
    match lost {
        EngineError::Conflict {
            attempts: 1,
            ref stream,
            ..
        } => {
            assert_eq!(stream.id(), "race");
            assert!(lost.is_retriable());
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.len(), 2, "the loser wrote nothing");
}

/// A store that loses version 2 of every stream on read: a broken backend. The engine
/// needs only the write side, so that is all it implements.
#[derive(Clone)]
struct LosesVersionTwo(MemoryStore);

#[async_trait::async_trait]
impl StreamStore for LosesVersionTwo {
    async fn append(
        &self,
        stream: &cqrs_core::StreamId,
        expected: cqrs_core::ExpectedVersion,
        events: Vec<cqrs_core::NewEvent>,
    ) -> Result<Vec<Arc<cqrs_core::StoredEvent>>, cqrs_core::StoreError> {
        self.0.append(stream, expected, events).await
    }

    async fn delete_stream(
        &self,
        stream: &cqrs_core::StreamId,
        expected: cqrs_core::ExpectedVersion,
        metadata: cqrs_core::Metadata,
    ) -> Result<Arc<cqrs_core::StoredEvent>, cqrs_core::StoreError> {
        self.0.delete_stream(stream, expected, metadata).await
    }

    async fn purge_stream(
        &self,
        stream: &cqrs_core::StreamId,
    ) -> Result<u64, cqrs_core::StoreError> {
        self.0.purge_stream(stream).await
    }

    async fn truncate_stream(
        &self,
        stream: &cqrs_core::StreamId,
        before: u64,
    ) -> Result<u64, cqrs_core::StoreError> {
        self.0.truncate_stream(stream, before).await
    }

    async fn archive_stream(
        &self,
        stream: &cqrs_core::StreamId,
    ) -> Result<u64, cqrs_core::StoreError> {
        self.0.archive_stream(stream).await
    }

    async fn unarchive_stream(
        &self,
        stream: &cqrs_core::StreamId,
    ) -> Result<u64, cqrs_core::StoreError> {
        self.0.unarchive_stream(stream).await
    }

    async fn read_archived_stream(
        &self,
        stream: &cqrs_core::StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<std::sync::Arc<cqrs_core::StoredEvent>>, cqrs_core::StoreError> {
        self.0
            .read_archived_stream(stream, from_version, max_count)
            .await
    }

    async fn forget_subject(
        &self,
        subject: &cqrs_core::personal::Subject,
    ) -> Result<Vec<cqrs_core::StreamId>, cqrs_core::StoreError> {
        self.0.forget_subject(subject).await
    }

    async fn read_stream(
        &self,
        stream: &cqrs_core::StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<cqrs_core::StoredEvent>>, cqrs_core::StoreError> {
        let mut events = self.0.read_stream(stream, from_version, max_count).await?;
        events.retain(|e| e.stream_version != 2);
        Ok(events)
    }
}

#[tokio::test]
async fn a_store_that_skips_a_version_is_reported_not_folded() {
    let store = MemoryStore::new();
    let sound = engine(&store);
    sound
        .execute("t", TallyCommand::Count { id: None })
        .await
        .unwrap();
    sound
        .execute("t", TallyCommand::Count { id: None })
        .await
        .unwrap();
    // Versions 1, 3, 4 come back: the gap is seen and reported.
    let broken = Engine::<Tally>::new(LosesVersionTwo(store), Arc::new(Barrier::new(2)));
    match broken.load("t").await {
        Err(EngineError::Store(cqrs_core::StoreError::Corrupt {
            stream_version: 3, ..
        })) => {}
        other => panic!("a gap in the versions must be an error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_store_that_loses_the_tail_cannot_make_the_engine_write_on_stale_state() {
    // One command stores versions 1 and 2; reads return only version 1. A lost tail looks
    // like a shorter stream, but the append at the stale version is refused.
    let store = MemoryStore::new();
    let broken = Engine::<Tally>::new(LosesVersionTwo(store.clone()), Arc::new(Barrier::new(2)))
        .with_retry(RetryPolicy::never());
    broken
        .execute("t", TallyCommand::Count { id: None })
        .await
        .unwrap();
    match broken.execute("t", TallyCommand::Count { id: None }).await {
        Err(EngineError::Conflict { .. }) => {}
        other => panic!("the stale append must conflict, got {other:?}"),
    }
    assert_eq!(store.len(), 2, "nothing was written on the stale state");
}
