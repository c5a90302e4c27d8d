//! Adversarial commit order on PostgreSQL: transactions that take their positions in one
//! order and commit in another must never make a global reader skip (or repeat) an
//! event.
//!
//! 1. 32 writers append through the store's own append inside a transaction
//!    ([`PgStore::append_in`]) and sleep a random 0–10 ms before COMMIT (one in sixteen
//!    rolls back instead), while a reader polls `read_all` in a tight loop: 40,000
//!    committed events, each read exactly once, none skipped, none rolled back.
//! 2. A writer holds its transaction open for seconds while others commit: a running
//!    subscription waits at the horizon (delivering nothing past it), the store reports
//!    the lag and who holds it ([`PgStore::horizon_lag`]), and once the writer commits the
//!    subscription gets everything, once, the late committer first.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cqrs_core::subscription::{Project, Subscription};
use cqrs_core::{
    codec, DomainEvent, Envelope, EventFilter, EventLog, ExpectedVersion, Metadata, NewEvent,
    Position, Projection, StreamId, StreamStore,
};
use cqrs_postgres::sqlx;
use cqrs_postgres::PgStore;
use cqrs_reliability::{exclusive, fresh_pg_store, mix};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum LedgerEvent {
    Entered { writer: u64, seq: u64 },
}

fn stream(writer: u64) -> StreamId {
    StreamId::new("ledger", &format!("w{writer}")).expect("stream id")
}

/// `count` events of `writer`, numbered from `seq`.
fn entries(writer: u64, seq: u64, count: u64) -> Vec<NewEvent> {
    (seq..seq + count)
        .map(|seq| {
            codec::encode(&LedgerEvent::Entered { writer, seq }, Metadata::default())
                .expect("encode")
        })
        .collect()
}

fn expected(version: u64) -> ExpectedVersion {
    match version {
        0 => ExpectedVersion::NoStream,
        v => ExpectedVersion::Exact(v),
    }
}

// ---------------------------------------------------------------------------------------
// 1. 32 writers with random commit delays, one polling reader.

const WRITERS: u64 = 32;
const EVENTS_PER_WRITER: u64 = 1_250;

/// What a writer did: the ids it committed, and those it rolled back; and, per committed
/// transaction, its transaction id and its place in the order of commits.
#[derive(Default)]
struct Written {
    committed: Vec<Uuid>,
    rolled_back: Vec<Uuid>,
    commits: Vec<(u64, u64)>,
}

/// Commits `EVENTS_PER_WRITER` events to its own stream in transactions of 1–4 events,
/// each held open a random 0–10 ms after its insert; one transaction in sixteen rolls
/// back instead.
async fn write(store: PgStore, writer: u64, tickets: Arc<AtomicU64>) -> Written {
    let mut written = Written::default();
    let (mut version, mut round) = (0, 0);
    while version < EVENTS_PER_WRITER {
        round += 1;
        let random = mix(writer << 32 | round);
        let count = (1 + random % 4).min(EVENTS_PER_WRITER - version);
        let pause = Duration::from_millis((random >> 8) % 11);
        let roll_back = (random >> 16).is_multiple_of(16);
        let batch = entries(writer, version + 1, count);
        let ids = batch.iter().map(NewEvent::event_id);
        let mut tx = store.pool().begin().await.expect("begin");
        let stored = store
            .append_in(&mut tx, &stream(writer), expected(version), batch.clone())
            .await
            .expect("append in a transaction");
        assert_eq!(stored.len() as u64, count);
        tokio::time::sleep(pause).await;
        if roll_back {
            tx.rollback().await.expect("rollback");
            written.rolled_back.extend(ids);
        } else {
            tx.commit().await.expect("commit");
            let ticket = tickets.fetch_add(1, Ordering::SeqCst);
            written.commits.push((stored[0].position.commit(), ticket));
            written.committed.extend(ids);
            version += count;
        }
    }
    written
}

/// What the reader saw.
#[derive(Default)]
struct Read {
    ids: Vec<Uuid>,
    reads: u64,
    empty_reads: u64,
}

/// Reads everything in a tight loop until `done` is set and nothing committed is left
/// after its position. Checks, as it goes, that positions only grow and that each
/// stream's events arrive in version order without a gap (a writer's transactions take
/// their transaction ids one after the other, so the global order keeps its versions in
/// order).
async fn poll(store: PgStore, done: Arc<AtomicBool>) -> Read {
    let mut read = Read::default();
    let mut position = Position::START;
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let all = EventFilter::all();
    loop {
        let finished = done.load(Ordering::SeqCst);
        let batch = store.read_all(position, 1_000, &all).await.expect("read");
        read.reads += 1;
        for event in &batch {
            assert!(event.position > position, "positions only grow");
            position = event.position;
            let last = versions.entry(event.stream.clone()).or_default();
            assert_eq!(
                event.stream_version,
                *last + 1,
                "{}: version {} read after {}",
                event.stream,
                event.stream_version,
                last
            );
            *last = event.stream_version;
            read.ids.push(event.event_id);
        }
        if batch.is_empty() {
            read.empty_reads += 1;
            // Finished only when nothing committed is left after the position: an empty
            // read alone may mean that another transaction of the cluster holds the
            // horizon for a moment.
            if finished && store.count_after(position, &all, 1).await.expect("count") == 0 {
                return read;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_writers_committing_out_of_order_and_a_polling_reader_lose_nothing() {
    let _one = exclusive().await;
    let store = fresh_pg_store(WRITERS as u32 + 4).await;
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let tickets = Arc::new(AtomicU64::new(0));
    let reader = tokio::spawn(poll(store.clone(), done.clone()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write(store.clone(), writer, tickets.clone())))
        .collect();
    let mut committed = HashSet::new();
    let mut rolled_back = HashSet::new();
    let mut commits = Vec::new();
    for writer in writers {
        let written = writer.await.expect("a writer panicked");
        committed.extend(written.committed);
        rolled_back.extend(written.rolled_back);
        commits.extend(written.commits);
    }
    done.store(true, Ordering::SeqCst);
    let read = reader.await.expect("the reader panicked");
    let seconds = started.elapsed().as_secs_f64();

    assert_eq!(committed.len() as u64, WRITERS * EVENTS_PER_WRITER);
    // The order really was adversarial: transactions that committed after a younger one
    // (one with a greater transaction id, so a later place in the global order).
    commits.sort_unstable_by_key(|&(_, ticket)| ticket);
    let mut youngest = 0;
    let mut late = 0;
    for &(xid, _) in &commits {
        if xid < youngest {
            late += 1;
        }
        youngest = youngest.max(xid);
    }
    assert!(late > 0, "no transaction committed out of order");
    let seen: HashSet<Uuid> = read.ids.iter().copied().collect();
    assert_eq!(seen.len(), read.ids.len(), "an event was read twice");
    assert!(
        seen.is_disjoint(&rolled_back),
        "an event of a rolled-back transaction was read"
    );
    let missed = committed.difference(&seen).count();
    assert_eq!(missed, 0, "committed events never read");
    assert_eq!(seen, committed, "every committed event read exactly once");
    eprintln!(
        "{} committed events in {} transactions, {late} of which committed after a younger \
         one, read once each ({} rolled back, never read), {} reads of which {} empty, \
         {seconds:.1} s",
        seen.len(),
        commits.len(),
        rolled_back.len(),
        read.reads,
        read.empty_reads
    );
}

// ---------------------------------------------------------------------------------------
// 2. A transaction held open for seconds.

/// Every event delivered to it, in delivery order.
#[derive(Clone, Default, Projection)]
#[projection(event = LedgerEvent, name = "ledger_log", error = Infallible)]
struct Log {
    ids: Arc<Mutex<Vec<Uuid>>>,
}

impl Log {
    async fn reset(&self) -> Result<(), Infallible> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).clear();
        Ok(())
    }

    async fn handle(&self, event: &Envelope<LedgerEvent>) -> Result<(), Infallible> {
        self.ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event.event_id);
        Ok(())
    }

    fn ids(&self) -> Vec<Uuid> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How long the writer keeps its transaction open.
const HOLD: Duration = Duration::from_secs(3);

/// Appends `per_writer` events to each of the streams of writers `first..first + 4`, one
/// event per commit, four writers at once; returns their ids.
async fn commit_quickly(store: &PgStore, first: u64, per_writer: u64) -> HashSet<Uuid> {
    let tasks: Vec<_> = (first..first + 4)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                let version = store
                    .read_stream(&stream(writer), 1, usize::MAX)
                    .await
                    .expect("read")
                    .len() as u64;
                for seq in version + 1..=version + per_writer {
                    let stored = store
                        .append(&stream(writer), expected(seq - 1), entries(writer, seq, 1))
                        .await
                        .expect("append");
                    ids.push(stored[0].event_id);
                }
                ids
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        ids.extend(task.await.expect("writer"));
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_held_open_for_seconds_holds_the_reader_back_then_nothing_is_lost() {
    let _one = exclusive().await;
    let store = fresh_pg_store(10).await;
    let before = commit_quickly(&store, 0, 25).await;
    let log = Log::default();
    let subscription = Subscription::new(
        store.clone(),
        Project::new(log.clone(), store.clone()).expect("valid"),
    )
    .batch_size(50)
    .idle_wait(Duration::from_millis(50))
    .start();
    subscription
        .caught_up(Duration::from_secs(30))
        .await
        .expect("caught up");
    assert_eq!(log.ids().len(), 100);

    // The long writer takes its transaction id (at its insert), then stays open.
    let mut long = store.pool().begin().await.expect("begin");
    let long_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *long)
        .await
        .expect("pid");
    let late: Vec<Uuid> = store
        .append_in(
            &mut long,
            &stream(99),
            ExpectedVersion::NoStream,
            entries(99, 1, 3),
        )
        .await
        .expect("append in the long transaction")
        .iter()
        .map(|e| e.event_id)
        .collect();
    let held_since = Instant::now();
    // Others commit after it took its id: their events are held back until it ends.
    let after = commit_quickly(&store, 4, 50).await;

    let mut polls = 0;
    let mut lag_seen = 0;
    let mut horizon = None;
    while held_since.elapsed() < HOLD {
        polls += 1;
        assert_eq!(
            subscription.status().delivered,
            100,
            "nothing past the open transaction is delivered"
        );
        lag_seen = subscription.lag().await.expect("lag");
        let lag = store.horizon_lag().await.expect("horizon lag");
        assert_eq!(lag.held_back_events, 200, "{lag:?}");
        let holder = lag.oldest_transaction.clone().expect("a holder");
        assert_eq!(holder.pid, long_pid);
        assert_eq!(holder.state.as_deref(), Some("idle in transaction"));
        horizon = Some(lag);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        lag_seen, 200,
        "the subscription counts the held-back events as lag"
    );
    assert_eq!(log.ids().len(), 100);
    let horizon = horizon.expect("polled at least once");

    long.commit().await.expect("commit");
    subscription
        .caught_up(Duration::from_secs(30))
        .await
        .expect("caught up after the commit");
    let ids = log.ids();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was delivered twice");
    assert_eq!(ids.len(), 303);
    assert_eq!(
        ids[100..103],
        late[..],
        "the late committer's events come first: their transaction is the oldest"
    );
    let expected: HashSet<Uuid> = before.iter().chain(&after).chain(&late).copied().collect();
    assert_eq!(unique, expected, "everything delivered once");
    assert_eq!(
        store
            .horizon_lag()
            .await
            .expect("horizon lag")
            .held_back_events,
        0
    );
    subscription.shutdown().await.expect("shutdown");
    eprintln!(
        "held {:?}: {polls} polls saw 100 delivered, lag {lag_seen}, horizon_lag {} held back \
         by pid {} ({:?} old); after the commit 303 delivered once, the late 3 first",
        HOLD,
        horizon.held_back_events,
        long_pid,
        horizon
            .oldest_transaction
            .map(|h| h.transaction_age)
            .unwrap_or_default(),
    );
}
