//! A database restart under load: writers and a transactional subscription run while
//! the server is stopped at once (`pg_ctl stop -m immediate`, as a crash or a power cut
//! would) and started again, on a private cluster ([`TempCluster`]), never the shared one.
//!
//! What must hold: every append that returned success is stored afterwards; a batch is
//! stored whole or not at all, also one whose commit was in flight when the server died
//! (the writer cannot know: it finds out by retrying the same batch at the same expected
//! version); during the outage writers get typed, retriable errors that say what happened,
//! and succeed after it; a command sent again through the engine with the same command id
//! takes effect once; the subscription resumes from its checkpoint (no reset, no event
//! applied twice); its read model equals a fresh rebuild.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cqrs_core::subscription::{Subscription, SubscriptionHandle};
use cqrs_core::{
    Aggregate, Command, Engine, EngineError, ExpectedVersion, Metadata, RetryPolicy, StoreError,
    StreamId, StreamStore,
};
use cqrs_postgres::sqlx;
use cqrs_postgres::testing::TempCluster;
use cqrs_postgres::{NoConnection, PgStore};
use cqrs_reliability::amounts::{deposits, Amounts, Applications, Money};
use cqrs_reliability::mix;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

const WRITERS: u64 = 4;
/// How long the server stays down.
const OUTAGE: Duration = Duration::from_secs(2);
/// Successful appends each writer makes after the restart before it stops.
const AFTER_RESTART: u64 = 30;

fn stream(writer: u64) -> StreamId {
    StreamId::new("account", &format!("w{writer}")).expect("stream id")
}

/// One batch a writer tried, and how it ended.
struct Batch {
    ids: Vec<Uuid>,
    amounts: Vec<i64>,
    /// The versions it was stored at, as the successful append reported them.
    versions: Vec<u64>,
    settled: Settled,
}

/// How a batch's append ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// The first attempt succeeded.
    AtOnce,
    /// An attempt failed with the server gone; a retry stored it.
    Retried,
    /// An attempt failed with the server gone, yet had committed: a retry found the
    /// batch stored (the outcome was in doubt until then).
    FoundStored,
}

/// What a writer saw.
#[derive(Default)]
struct Writer {
    batches: Vec<Batch>,
    /// What every error an append returned said had happened (see [`what_happened`]).
    errors: Vec<&'static str>,
}

/// Appends batches of 1–5 deposits to the writer's own stream at the exact expected
/// version until `AFTER_RESTART` of them succeeded after the server was `restarted`.
/// A failed append is retried with the same events at the same expected version until it
/// is settled: stored now, or found stored by the attempt that failed.
async fn write(store: PgStore, writer: u64, restarted: Arc<AtomicBool>) -> Writer {
    let mut seen = Writer::default();
    let mut version = 0;
    let mut after_restart = 0;
    for round in 0.. {
        if after_restart >= AFTER_RESTART {
            return seen;
        }
        let random = mix(writer << 32 | round);
        let amounts: Vec<i64> = (0..1 + random % 5)
            .map(|i| 1 + (mix(random + i) % 1_000) as i64)
            .collect();
        let events = deposits(amounts.iter().copied());
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id()).collect();
        let expected = match version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        };
        let mut in_doubt = false;
        let (versions, settled) = loop {
            match store
                .append(&stream(writer), expected, events.clone())
                .await
            {
                Ok(stored) => {
                    assert_eq!(stored.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids);
                    let settled = if in_doubt {
                        Settled::Retried
                    } else {
                        Settled::AtOnce
                    };
                    break (stored.iter().map(|e| e.stream_version).collect(), settled);
                }
                Err(StoreError::Conflict { actual, .. }) if in_doubt => {
                    // The attempt that failed had committed: the stream moved by exactly
                    // this batch (nobody else writes to it).
                    assert_eq!(actual, version + ids.len() as u64);
                    let stored = store
                        .read_stream(&stream(writer), version + 1, usize::MAX)
                        .await
                        .expect("read back a batch in doubt");
                    assert_eq!(
                        stored.iter().map(|e| e.event_id).collect::<Vec<_>>(),
                        ids,
                        "the batch in doubt is stored whole"
                    );
                    let versions = stored.iter().map(|e| e.stream_version).collect();
                    break (versions, Settled::FoundStored);
                }
                Err(error) => {
                    assert!(
                        matches!(error, StoreError::Unavailable(_)) && error.is_retriable(),
                        "writer {writer}: the outage must give a retriable Unavailable, got \
                         {error:?}"
                    );
                    seen.errors.push(what_happened(&error));
                    in_doubt = true;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        };
        version += ids.len() as u64;
        if restarted.load(Ordering::SeqCst) {
            after_restart += 1;
        }
        seen.batches.push(Batch {
            ids,
            amounts,
            versions,
            settled,
        });
    }
    seen
}

/// Deposits in one to three parts, one event each: the engine writer's command.
#[derive(Debug, Clone, Command)]
struct Deposit {
    parts: Vec<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = Deposit, event = Money, error = Infallible)]
struct Account {
    balance: i64,
}

impl Account {
    async fn handle(&self, command: &Deposit, _: &()) -> Result<Vec<Money>, Infallible> {
        Ok(command
            .parts
            .iter()
            .map(|&amount| Money::Deposited { amount })
            .collect())
    }

    fn apply(&mut self, event: &Money) {
        let Money::Deposited { amount } = event;
        self.balance += amount;
    }
}

/// The stream the engine writer's commands go to.
const ENGINE_ACCOUNT: &str = "engine";

/// A command the engine writer sent, and what it was finally told.
struct Sent {
    command_id: Uuid,
    parts: Vec<i64>,
    events: Vec<Uuid>,
    /// An attempt failed first; the same command (same id) was sent again.
    retried: bool,
}

/// Sends deposits through the engine, each with a command id of its own, until
/// `AFTER_RESTART` of them succeeded after the server was `restarted`. A command that fails
/// is sent again with the same id: whether or not the failed attempt had committed, it
/// must take effect once.
async fn execute(store: PgStore, restarted: Arc<AtomicBool>) -> (Vec<Sent>, Vec<&'static str>) {
    let engine = Engine::<Account>::new(store, ()).with_image_cache(10);
    let (mut sent, mut errors) = (Vec::new(), Vec::new());
    let mut after_restart = 0;
    for round in 0_u64.. {
        if after_restart >= AFTER_RESTART {
            break;
        }
        let random = mix(u64::MAX - round);
        let parts: Vec<i64> = (0..1 + random % 3)
            .map(|i| 1 + (mix(random ^ i) % 1_000) as i64)
            .collect();
        let command_id = Uuid::new_v4();
        let mut retried = false;
        let committed = loop {
            let metadata = Metadata::default().with_command_id(command_id);
            let command = Deposit {
                parts: parts.clone(),
            };
            match engine
                .execute_with_metadata(ENGINE_ACCOUNT, command, metadata)
                .await
            {
                Ok(committed) => break committed,
                Err(EngineError::Store(error)) if error.is_retriable() => {
                    errors.push(what_happened(&error));
                    retried = true;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(other) => panic!("the engine writer got {other:?}"),
            }
        };
        if restarted.load(Ordering::SeqCst) {
            after_restart += 1;
        }
        sent.push(Sent {
            command_id,
            parts,
            events: committed.events.iter().map(|e| e.event_id).collect(),
            retried,
        });
    }
    (sent, errors)
}

/// What an append's error says happened during the outage; panics when it does not say
/// (the Display of the error is checked too: it is what an operator reads).
fn what_happened(error: &StoreError) -> &'static str {
    let said = error.to_string();
    let StoreError::Unavailable(source) = error else {
        panic!("the outage must give Unavailable, got {error:?}");
    };
    if let Some(why) = source.downcast_ref::<NoConnection>() {
        let kind = match why {
            NoConnection::Unreachable { .. } => "no new connection: the server cannot be reached",
            NoConnection::Recovered { .. } => "no new connection until the server was back",
            NoConnection::NoAnswer { .. } => "no new connection: no answer",
            other => panic!("a wrong diagnosis of the outage: {other}"),
        };
        assert!(
            said.starts_with("store unavailable: no connection within"),
            "{said}"
        );
        return kind;
    }
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_)) => {
            assert!(said.contains("error communicating with database"), "{said}");
            "a connection the stop cut"
        }
        Some(sqlx::Error::Database(db)) if db.code().is_some_and(|c| c.starts_with("57P")) => {
            "the server ended the session (shutdown)"
        }
        _ => panic!("an outage error that does not say what happened: {said} ({error:?})"),
    }
}

fn subscribe<const V: u32>(store: &PgStore, view: Amounts<V>) -> SubscriptionHandle {
    Subscription::new(store.clone(), store.transactional(view).expect("valid"))
        .batch_size(100)
        .retry(RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(10),
        })
        .idle_wait(Duration::from_millis(100))
        .standby_interval(Duration::from_millis(100))
        .start()
}

/// Waits until the subscription has applied every stored event.
async fn settle(handle: &SubscriptionHandle) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        handle
            .caught_up(Duration::from_secs(60))
            .await
            .expect("caught up");
        if handle.lag().await.expect("lag") == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never settled: {:?}",
            handle.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_and_a_subscription_ride_out_an_immediate_stop_and_restart() {
    let mut cluster = tokio::task::block_in_place(TempCluster::start).expect("a private cluster");
    // An acquire timeout shorter than the outage, so that appends also fail while no
    // connection can be made at all (not only on connections the stop cut).
    let pool = PgStore::pool_options()
        .max_connections(12)
        .acquire_timeout(Duration::from_secs(1))
        .connect_with(cluster.connect_options())
        .await
        .expect("connect");
    let store = PgStore::with_pool_and_schema(pool, "restart").expect("schema");
    store.migrate().await.expect("migrate");
    let view = Amounts::<1>::create(&store, "live").await;
    let live = subscribe(&store, view.clone());

    let restarted = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| tokio::spawn(write(store.clone(), writer, restarted.clone())))
        .collect();
    let engine_writer = tokio::spawn(execute(store.clone(), restarted.clone()));

    // Under way: events written and delivered.
    let deadline = Instant::now() + Duration::from_secs(60);
    while live.status().delivered < 200 {
        assert!(
            Instant::now() < deadline,
            "no progress: {:?}",
            live.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let delivered_before = live.status().delivered;

    let stopped_at = Instant::now();
    tokio::task::block_in_place(|| cluster.stop_immediately()).expect("stop");
    tokio::time::sleep(OUTAGE).await;
    let during = live.status();
    tokio::task::block_in_place(|| cluster.restart()).expect("restart");
    let outage = stopped_at.elapsed();
    restarted.store(true, Ordering::SeqCst);

    let mut batches = Vec::new();
    let mut errors = Vec::new();
    for writer in writers {
        let seen = writer.await.expect("a writer panicked");
        batches.push(seen.batches);
        errors.extend(seen.errors);
    }
    let (sent, engine_errors) = engine_writer.await.expect("the engine writer panicked");
    errors.extend(engine_errors);
    settle(&live).await;
    let status = live.status();

    // Every append that returned success is stored, with nothing else, batches whole and
    // at the versions reported.
    let mut expected: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut settled: BTreeMap<String, usize> = BTreeMap::new();
    let mut total_events = 0;
    for (writer, batches) in batches.iter().enumerate() {
        let stream = stream(writer as u64);
        let stored = store
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read");
        let stored_ids: Vec<Uuid> = stored.iter().map(|e| e.event_id).collect();
        let acked: Vec<Uuid> = batches.iter().flat_map(|b| b.ids.clone()).collect();
        assert_eq!(
            stored_ids, acked,
            "{stream}: exactly the acknowledged batches, in order"
        );
        for batch in batches {
            let at: Vec<u64> = batch
                .ids
                .iter()
                .map(|id| stored_ids.iter().position(|s| s == id).expect("stored") as u64 + 1)
                .collect();
            assert_eq!(
                at, batch.versions,
                "{stream}: a batch at the versions reported"
            );
            *settled.entry(format!("{:?}", batch.settled)).or_default() += 1;
            let entry = expected.entry(stream.id().to_owned()).or_default();
            entry.0 += batch.amounts.iter().sum::<i64>();
            entry.1 += batch.amounts.len() as i64;
        }
        total_events += stored.len() as i64;
    }
    // Each command of the engine writer took effect once, with the events it was told.
    let engine_stream = StreamId::new(Account::TYPE, ENGINE_ACCOUNT).expect("stream id");
    let stored = store
        .read_stream(&engine_stream, 1, usize::MAX)
        .await
        .expect("read");
    let mut by_command: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for event in &stored {
        let command_id = event.metadata.command_id.expect("a command id");
        by_command
            .entry(command_id)
            .or_default()
            .push(event.event_id);
    }
    assert_eq!(by_command.len(), sent.len(), "every command stored, once");
    for command in &sent {
        assert_eq!(
            by_command.get(&command.command_id),
            Some(&command.events),
            "command {} stored once, with the events it was told",
            command.command_id
        );
        let entry = expected.entry(ENGINE_ACCOUNT.to_owned()).or_default();
        entry.0 += command.parts.iter().sum::<i64>();
        entry.1 += command.parts.len() as i64;
    }
    let commands_retried = sent.iter().filter(|c| c.retried).count();
    total_events += stored.len() as i64;

    // The outage was seen, as retriable errors that say what happened.
    assert!(!errors.is_empty(), "no writer noticed the outage");
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for kind in &errors {
        *kinds.entry(kind).or_default() += 1;
    }

    // The subscription went through the outage, resumed from its checkpoint and applied
    // each event once.
    assert!(
        during.last_error.is_some() || status.last_error.is_some(),
        "the subscription never noticed the outage: {during:?}"
    );
    assert_eq!(
        status.delivered, total_events as u64,
        "each event delivered once: no replay from the start, no batch delivered twice"
    );
    assert_eq!(
        view.applications(store.pool()).await,
        Applications {
            events: total_events,
            most: 1
        },
        "each event applied exactly once"
    );
    let live_totals = view.totals(store.pool()).await;
    assert_eq!(
        live_totals, expected,
        "the read model holds every acknowledged deposit"
    );
    live.shutdown()
        .await
        .expect("the live subscription stopped");

    // A fresh rebuild (version 2, tables of its own) equals the live read model.
    let rebuilt = Amounts::<2>::create(&store, "rebuild").await;
    let rebuild = subscribe(&store, rebuilt.clone());
    settle(&rebuild).await;
    assert_eq!(rebuilt.totals(store.pool()).await, live_totals);
    rebuild.shutdown().await.expect("the rebuild stopped");

    eprintln!(
        "outage {outage:.1?}; {} batches and {} engine commands ({commands_retried} sent \
         again after an error) stored, {total_events} events; batches settled {settled:?}; \
         {} append errors: {kinds:?}; subscription: {} delivered before the stop, \
         {} in all, last error {:?}",
        batches.iter().map(Vec::len).sum::<usize>(),
        sent.len(),
        errors.len(),
        delivered_before,
        status.delivered,
        status.last_error,
    );
}
