//! A consumer killed in the middle of a batch: two "processes" (each a tokio runtime of
//! its own with a pool of its own) run the same transactional subscription; the active
//! one stops dead after applying part of a batch; the standby takes over, and every event
//! takes effect exactly once.
//!
//! The active runner's handler blocks after the 25th event of its third batch (its
//! transaction open, the checkpoint row locked, 25 effects written but not committed).
//! Then either
//! - its runtime is dropped (`shutdown_background`): its tasks, connections and lease go
//!   with it, as when a process is killed; or
//! - it stays frozen (as a process stopped by a debugger, or swapped out) while its
//!   connections are terminated (as an operator or a network partition would), and it is
//!   woken once the other has taken over: it must apply nothing more.
//!
//! `cqrs-postgres/tests/subscriptions.rs` covers takeover after a cut network and a closed
//! pool between batches; here the cut falls inside one.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cqrs_core::subscription::{Consumer, Subscription, SubscriptionHandle, SubscriptionState};
use cqrs_core::{
    CheckpointStore, Envelope, ExpectedVersion, Listener, Position, StreamId, StreamStore,
};
use cqrs_postgres::sqlx::{self, PgConnection};
use cqrs_postgres::{PgProjection, PgStore, LEASE_APPLICATION_NAME};
use cqrs_reliability::amounts::{deposits, Amounts, Applications, Money};
use cqrs_reliability::{connect_options, exclusive, fresh_pg_store, mix};
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use uuid::Uuid;

const BATCH: usize = 50;
/// The active runner stalls after this many events in all: the 25th of its third batch.
const STALL_AFTER: u64 = 2 * BATCH as u64 + 25;
/// The `application_name` of process A's pool.
const PROCESS_A: &str = "consumer-a";

/// The read model as run by one process: [`Amounts`], with a handler that can stall.
struct Stalling {
    inner: Amounts<1>,
    /// Stall after this many events (never when `None`).
    stall_after: Option<u64>,
    handled: AtomicU64,
    /// Each event handled, with its position, in order.
    seen: Arc<Mutex<Vec<(Uuid, Position)>>>,
    /// Told when the handler stalls.
    stalled: Arc<Notify>,
    /// Ends the stall.
    release: Arc<Notify>,
}

impl Listener for Stalling {
    const NAME: &'static str = <Amounts<1> as Listener>::NAME;
    type Event = Money;
    type Error = sqlx::Error;
}

impl PgProjection for Stalling {
    const VERSION: u32 = 1;

    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &Envelope<Money>,
    ) -> Result<(), sqlx::Error> {
        self.inner.handle(tx, event).await?;
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((event.event_id, event.position));
        let n = self.handled.fetch_add(1, Ordering::SeqCst) + 1;
        if self.stall_after == Some(n) {
            self.stalled.notify_one();
            self.release.notified().await;
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        self.inner.reset(tx).await
    }
}

/// What the test keeps of process A.
struct ProcessA {
    runtime: Runtime,
    handle: SubscriptionHandle,
    seen: Arc<Mutex<Vec<(Uuid, Position)>>>,
    stalled: Arc<Notify>,
    release: Arc<Notify>,
}

/// A store on the same schema as `store`, through a pool of its own named `app`, as
/// another process would have.
async fn process_store(store: &PgStore, app: &str) -> PgStore {
    let pool = PgStore::pool_options()
        .max_connections(4)
        .connect_with(connect_options().application_name(app))
        .await
        .expect("connect");
    PgStore::with_pool_and_schema(pool, store.schema().as_str()).expect("schema")
}

fn subscribe(store: &PgStore, view: Stalling) -> SubscriptionHandle {
    Subscription::new(store.clone(), store.transactional(view).expect("valid"))
        .batch_size(BATCH)
        .idle_wait(Duration::from_millis(100))
        .standby_interval(Duration::from_millis(100))
        .start()
}

/// Starts process A on a runtime of its own, its runner set to stall.
async fn start_a(store: &PgStore) -> ProcessA {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(PROCESS_A)
        .enable_all()
        .build()
        .expect("process A's runtime");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stalled = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (schema_store, view_seen, view_stalled, view_release) = (
        store.clone(),
        seen.clone(),
        stalled.clone(),
        release.clone(),
    );
    // Everything of A (its pool and its tasks) is made on A's runtime and dies with it.
    let handle = runtime
        .spawn(async move {
            let store = process_store(&schema_store, PROCESS_A).await;
            let view = Stalling {
                inner: Amounts::create(&store, "a").await,
                stall_after: Some(STALL_AFTER),
                handled: AtomicU64::new(0),
                seen: view_seen,
                stalled: view_stalled,
                release: view_release,
            };
            subscribe(&store, view)
        })
        .await
        .expect("start process A");
    ProcessA {
        runtime,
        handle,
        seen,
        stalled,
        release,
    }
}

/// Starts process B on the test's runtime: it never stalls.
async fn start_b(store: &PgStore) -> SubscriptionHandle {
    let store = process_store(store, "consumer-b").await;
    let view = Stalling {
        inner: Amounts::create(&store, "b").await,
        stall_after: None,
        handled: AtomicU64::new(0),
        seen: Arc::default(),
        stalled: Arc::default(),
        release: Arc::default(),
    };
    subscribe(&store, view)
}

/// Appends `n` deposits spread over ten accounts and adds them to `expected`.
async fn append(store: &PgStore, first: u64, n: u64, expected: &mut BTreeMap<String, (i64, i64)>) {
    for i in first..first + n {
        let account = format!("acc{}", i % 10);
        let amount = 1 + (mix(i) % 500) as i64;
        store
            .append(
                &StreamId::new("account", &account).expect("stream id"),
                ExpectedVersion::Any,
                deposits([amount]),
            )
            .await
            .expect("append");
        let entry = expected.entry(account).or_default();
        entry.0 += amount;
        entry.1 += 1;
    }
}

async fn wait_until(
    handle: &SubscriptionHandle,
    what: &str,
    done: impl Fn(&cqrs_core::subscription::SubscriptionStatus) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = handle.status();
        if done(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

/// Where the tests stand once A has stalled mid-batch with B on standby.
struct Stalled {
    a: ProcessA,
    b: SubscriptionHandle,
    /// The read model, as the test reads it.
    view: Amounts<1>,
    /// The events A applied in the batch it stalled in (not committed).
    in_flight: Vec<Uuid>,
    /// What the read model must hold in the end, per account.
    expected: BTreeMap<String, (i64, i64)>,
}

/// The set-up the tests share: 300 events, A started and stalled mid-batch, B on
/// standby, 100 more events.
async fn stall_a_mid_batch(store: &PgStore) -> Stalled {
    let view = Amounts::<1>::create(store, "test").await;
    let mut expected = BTreeMap::new();
    append(store, 0, 300, &mut expected).await;

    let a = start_a(store).await;
    tokio::time::timeout(Duration::from_secs(60), a.stalled.notified())
        .await
        .expect("A reaches the middle of its third batch");
    let b = start_b(store).await;
    wait_until(&b, "B on standby", |s| {
        s.state == SubscriptionState::Standby
    })
    .await;

    // Two batches committed, the third half applied and not committed.
    let consumer = store.transactional(view.clone()).expect("valid");
    let checkpoint = store
        .load_checkpoint(consumer.identity().checkpoint())
        .await
        .expect("load the checkpoint")
        .expect("A saved a checkpoint");
    let in_flight: Vec<Uuid> = a
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(_, position)| *position > checkpoint)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(in_flight.len(), 25, "A is in the middle of a batch");
    assert_eq!(
        view.applications(store.pool()).await,
        Applications {
            events: 2 * BATCH as i64,
            most: 1
        },
        "only A's committed batches are visible"
    );
    assert_eq!(b.status().delivered, 0);
    // More events while A hangs: B must deliver them too.
    append(store, 300, 100, &mut expected).await;
    Stalled {
        a,
        b,
        view,
        in_flight,
        expected,
    }
}

/// What must hold once B has taken over: every event applied once, A's committed batches
/// by A, everything else (the batch A died in included) by B.
async fn check_taken_over(
    store: &PgStore,
    view: &Amounts<1>,
    in_flight: &[Uuid],
    expected: &BTreeMap<String, (i64, i64)>,
) {
    let total: i64 = expected.values().map(|(_, n)| n).sum();
    assert_eq!(
        view.applications(store.pool()).await,
        Applications {
            events: total,
            most: 1
        },
        "every event applied exactly once"
    );
    assert_eq!(&view.totals(store.pool()).await, expected);
    assert_eq!(
        view.applied_by(store.pool()).await,
        BTreeMap::from([
            ("a".to_owned(), 2 * BATCH as i64),
            ("b".to_owned(), total - 2 * BATCH as i64)
        ])
    );
    let mut by_b = HashSet::new();
    for id in in_flight {
        by_b.insert(view.runner_of(store.pool(), *id).await);
    }
    assert_eq!(
        by_b,
        HashSet::from([Some("b".to_owned())]),
        "A's half-applied batch was rolled back and applied by B"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_whose_runtime_dies_mid_batch_is_taken_over_and_every_event_applies_once() {
    let _one = exclusive().await;
    let store = fresh_pg_store(4).await;
    let Stalled {
        a,
        b,
        view,
        in_flight,
        expected,
    } = stall_a_mid_batch(&store).await;

    let killed_at = Instant::now();
    a.runtime.shutdown_background();
    wait_until(&b, "B to take over", |s| s.delivered > 0).await;
    let takeover = killed_at.elapsed();
    settle(&b).await;
    check_taken_over(&store, &view, &in_flight, &expected).await;
    b.shutdown().await.expect("B stopped");
    drop(a.handle);
    eprintln!(
        "runtime dropped mid-batch ({} of its events applied, not committed): B took over \
         after {takeover:.1?} and applied them and the rest once",
        in_flight.len()
    );
}

/// The backends of process A: its pool's connections and its lease's.
async fn terminate_process_a(store: &PgStore) -> u64 {
    let lease_app = format!("{LEASE_APPLICATION_NAME}:{}", Stalling::NAME);
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 OR application_name = $2",
    )
    .bind(PROCESS_A)
    .bind(lease_app)
    .fetch_all(store.pool())
    .await
    .expect("terminate A's connections");
    terminated.iter().filter(|t| **t).count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_frozen_mid_batch_and_cut_off_is_taken_over_and_applies_nothing_on_waking() {
    let _one = exclusive().await;
    let store = fresh_pg_store(4).await;
    let Stalled {
        a,
        b,
        view,
        in_flight,
        mut expected,
    } = stall_a_mid_batch(&store).await;

    // B has not taken (and must not take) the lease from a live holder: it is still on
    // standby. Then A's connections are cut while A itself stays frozen.
    assert_eq!(b.status().state, SubscriptionState::Standby);
    let terminated = terminate_process_a(&store).await;
    assert!(
        terminated >= 2,
        "A's transaction and its lease: {terminated}"
    );
    wait_until(&b, "B to take over", |s| s.delivered > 0).await;
    settle(&b).await;
    check_taken_over(&store, &view, &in_flight, &expected).await;

    // A wakes up in the middle of the batch it was applying: its transaction is gone,
    // and so is its lease; it must apply nothing and stand by.
    a.release.notify_one();
    wait_until(&a.handle, "A to stand by", |s| {
        s.state == SubscriptionState::Standby
            && s.last_error.as_deref().is_some_and(|e| e.contains("lease"))
    })
    .await;
    append(&store, 400, 50, &mut expected).await;
    settle(&b).await;
    check_taken_over(&store, &view, &in_flight, &expected).await;
    let a_status = a.handle.status();
    assert_eq!(
        a_status.delivered,
        2 * BATCH as u64,
        "A delivered nothing more"
    );

    b.shutdown().await.expect("B stopped");
    a.handle.shutdown().await.expect("A stopped");
    let runtime = a.runtime;
    tokio::task::block_in_place(move || drop(runtime));
    eprintln!(
        "frozen mid-batch, {terminated} connections terminated: B took over; A woke, found \
         its lease lost ({:?}) and applied nothing",
        a_status.last_error
    );
}

/// Waits until a backend of `app` waits for a lock (the checkpoint row), and returns its
/// pid.
async fn blocked_on_a_lock(store: &PgStore, app: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity \
             WHERE application_name = $1 AND wait_event_type = 'Lock'",
        )
        .bind(app)
        .fetch_optional(store.pool())
        .await
        .expect("pg_stat_activity");
        if let Some(pid) = pid {
            return pid;
        }
        assert!(Instant::now() < deadline, "{app} never waited for a lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_frozen_mid_batch_that_loses_only_its_lease_commits_and_fences_the_new_holder() {
    let _one = exclusive().await;
    let store = fresh_pg_store(4).await;
    let Stalled {
        a,
        b,
        view,
        in_flight,
        expected,
    } = stall_a_mid_batch(&store).await;

    // Only A's lease connection breaks; its batch's transaction stays open. B gets the
    // lease, but its first batch waits for the checkpoint row that A's transaction locks.
    let lease_app = format!("{LEASE_APPLICATION_NAME}:{}", Stalling::NAME);
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&lease_app)
    .fetch_all(store.pool())
    .await
    .expect("terminate A's lease connection");
    assert_eq!(terminated, [true]);
    blocked_on_a_lock(&store, "consumer-b").await;
    assert_eq!(b.status().delivered, 0, "B waits behind A's open batch");

    // A wakes and finishes its batch: it commits (its transaction checked the checkpoint
    // when it began). B's batch then finds the checkpoint moved and applies nothing; one of
    // them goes on from A's checkpoint.
    a.release.notify_one();
    let total: i64 = expected.values().map(|(_, n)| n).sum();
    let deadline = Instant::now() + Duration::from_secs(60);
    while view.applications(store.pool()).await.events < total {
        assert!(
            Instant::now() < deadline,
            "not everything applied: A {:?}, B {:?}",
            a.handle.status(),
            b.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        view.applications(store.pool()).await,
        Applications {
            events: total,
            most: 1
        },
        "every event applied exactly once"
    );
    assert_eq!(view.totals(store.pool()).await, expected);
    let by_a = view.applied_by(store.pool()).await.get("a").copied();
    assert!(
        by_a >= Some(3 * BATCH as i64),
        "A committed its third batch: {by_a:?}"
    );
    for id in &in_flight {
        assert_eq!(
            view.runner_of(store.pool(), *id).await.as_deref(),
            Some("a"),
            "the batch A was frozen in is A's"
        );
    }

    b.shutdown().await.expect("B stopped");
    a.handle.shutdown().await.expect("A stopped");
    let runtime = a.runtime;
    tokio::task::block_in_place(move || drop(runtime));
    eprintln!(
        "frozen mid-batch, lease connection cut: B waited on the checkpoint row; A committed \
         its batch; {by_a:?} events applied by A, the rest by B, each once"
    );
}
