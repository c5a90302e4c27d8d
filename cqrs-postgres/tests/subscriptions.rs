//! Subscriptions on PostgreSQL, through the core runner: transactional projections
//! (exactly-once effect across restarts), catch-up then live, rebuilds, failures and dead
//! letters, filters applied in SQL, one active runner across pools, idempotent commands
//! and inline projections. Real PostgreSQL, no mocks; each test takes the binary-wide
//! lock (see `common`).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{exclusive, fresh_pg_store};
use cqrs_core::subscription::{
    Consumer, DeliveryError, FailurePolicy, Project, React, Subscription, SubscriptionError,
    SubscriptionHandle, SubscriptionState,
};
use cqrs_core::{
    codec, Aggregate, CheckpointStore, Command, DomainEvent, Engine, EngineError, Envelope,
    EventFilter, EventLog, ExpectedVersion, Listener, Metadata, NewEvent, Position, ProcessManager,
    Projection, RetryPolicy, StoreError, StreamId, StreamStore,
};
use cqrs_postgres::sqlx::{self, PgConnection, Row};
use cqrs_postgres::{PgProjection, PgStore};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------
// The domain: two aggregate types whose events feed one view keyed by owner.

/// Events of `account` streams.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum AccountEvent {
    Deposited { owner: String, amount: i64 },
    Closed { owner: String },
}

/// Events of `wallet` streams.
#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum WalletEvent {
    Credited { owner: String, amount: i64 },
}

/// What the owner view reads: `Deposited` from accounts and `Credited` from wallets (same
/// names and fields as the aggregates' events; `Closed` is not consumed).
#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum MoneyEvent {
    Deposited { owner: String, amount: i64 },
    Credited { owner: String, amount: i64 },
}

impl MoneyEvent {
    fn owner_and_amount(&self) -> (&str, i64) {
        match self {
            MoneyEvent::Deposited { owner, amount } | MoneyEvent::Credited { owner, amount } => {
                (owner, *amount)
            }
        }
    }
}

#[derive(Debug, Command)]
#[command(id = owner)]
enum AccountCommand {
    Deposit { owner: String, amount: i64 },
}

#[derive(Debug, thiserror::Error)]
#[error("refused")]
struct Refused;

/// Stream type `account`.
#[derive(Default, Serialize, Deserialize, Aggregate)]
#[aggregate(command = AccountCommand, event = AccountEvent, error = Refused)]
struct Account {
    balance: i64,
}

impl Account {
    async fn handle(&self, command: &AccountCommand, _: &()) -> Result<Vec<AccountEvent>, Refused> {
        let AccountCommand::Deposit { owner, amount } = command;
        Ok(vec![AccountEvent::Deposited {
            owner: owner.clone(),
            amount: *amount,
        }])
    }

    fn apply(&mut self, event: &AccountEvent) {
        if let AccountEvent::Deposited { amount, .. } = event {
            self.balance += amount;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The transactional view under test.

/// What the tests observe of a view from outside the database.
#[derive(Default)]
struct Stats {
    /// Calls of `handle`.
    handled: AtomicU64,
    /// Calls of `handle` with the poisoned amount.
    poisoned_calls: AtomicU32,
    /// Calls of `reset`.
    resets: AtomicU32,
    /// Calls of `handle` with the `kill_once` amount (the first one kills).
    killed: AtomicU32,
    /// Calls of `handle` that panicked (the `crash` amount).
    crashes: AtomicU32,
}

/// Totals per owner (a key the test chooses, carried in the events) in table `totals`,
/// fed by `account` and `wallet` streams; and one row per applied event in `applied`
/// counting its applications (`times`) and naming the runner that applied it, so that a
/// double application, or who delivered, is visible.
#[derive(Clone)]
struct OwnerTotals<const V: u32 = 1> {
    schema: String,
    runner: &'static str,
    /// Events with this amount fail.
    poison: Option<i64>,
    /// A pause in every `handle`, to make a catch-up last.
    delay: Duration,
    /// The first event with this amount kills its own database connection.
    kill_once: Option<i64>,
    /// Events with this amount panic, after the handler's writes (a bug).
    crash: Option<i64>,
    stats: Arc<Stats>,
}

impl<const V: u32> OwnerTotals<V> {
    fn new(store: &PgStore) -> Self {
        Self {
            schema: format!("\"{}\"", store.schema()),
            runner: "a",
            poison: None,
            delay: Duration::ZERO,
            kill_once: None,
            crash: None,
            stats: Arc::default(),
        }
    }

    fn runner(mut self, runner: &'static str) -> Self {
        self.runner = runner;
        self
    }

    fn poison(mut self, amount: i64) -> Self {
        self.poison = Some(amount);
        self
    }

    fn crash_at(mut self, amount: i64) -> Self {
        self.crash = Some(amount);
        self
    }

    fn kill_connection_once_at(mut self, amount: i64) -> Self {
        self.kill_once = Some(amount);
        self
    }

    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug, thiserror::Error)]
enum ViewError {
    #[error("amount {0} is poisoned")]
    Poisoned(i64),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl<const V: u32> Listener for OwnerTotals<V> {
    const NAME: &'static str = "owner_totals";
    type Event = MoneyEvent;
    type Error = ViewError;
}

impl<const V: u32> PgProjection for OwnerTotals<V> {
    const VERSION: u32 = V;

    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &Envelope<MoneyEvent>,
    ) -> Result<(), ViewError> {
        self.stats.handled.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let (owner, amount) = event.data.owner_and_amount();
        if self.poison == Some(amount) {
            self.stats.poisoned_calls.fetch_add(1, Ordering::SeqCst);
            return Err(ViewError::Poisoned(amount));
        }
        if self.kill_once == Some(amount) && self.stats.killed.fetch_add(1, Ordering::SeqCst) == 0 {
            sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
                .execute(&mut *tx)
                .await?;
        }
        let s = &self.schema;
        sqlx::query(&format!(
            "INSERT INTO {s}.applied AS a (event_id, owner, amount, times, runner) \
             VALUES ($1, $2, $3, 1, $4) \
             ON CONFLICT (event_id) DO UPDATE SET times = a.times + 1, runner = excluded.runner"
        ))
        .bind(event.event_id)
        .bind(owner)
        .bind(amount)
        .bind(self.runner)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {s}.totals AS t (owner, total, events) VALUES ($1, $2, 1) \
             ON CONFLICT (owner) DO UPDATE SET total = t.total + $2, events = t.events + 1"
        ))
        .bind(owner)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
        if self.crash == Some(amount) {
            self.stats.crashes.fetch_add(1, Ordering::SeqCst);
            panic!("owner_totals bug at amount {amount}");
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), ViewError> {
        self.stats.resets.fetch_add(1, Ordering::SeqCst);
        let s = &self.schema;
        sqlx::query(&format!("DELETE FROM {s}.applied"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("DELETE FROM {s}.totals"))
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Helpers.

/// Runs SQL against the store's schema (`{schema}` is replaced by the quoted name).
async fn exec(store: &PgStore, sql: &str) {
    let sql = sql.replace("{schema}", &format!("\"{}\"", store.schema()));
    sqlx::query(&sql)
        .execute(store.pool())
        .await
        .expect("manual SQL");
}

/// A migrated store in a fresh schema, with the view's tables.
async fn store_with_view() -> PgStore {
    let store = fresh_pg_store().await;
    exec(
        &store,
        "CREATE TABLE {schema}.applied (event_id uuid PRIMARY KEY, owner text NOT NULL, \
         amount bigint NOT NULL, times int NOT NULL, runner text NOT NULL)",
    )
    .await;
    exec(
        &store,
        "CREATE TABLE {schema}.totals (owner text PRIMARY KEY, total bigint NOT NULL, \
         events int NOT NULL)",
    )
    .await;
    store
}

fn encode<E: DomainEvent>(event: &E) -> NewEvent {
    codec::encode(event, Metadata::default()).expect("encode")
}

fn account(id: &str) -> StreamId {
    StreamId::new("account", id).expect("stream id")
}

fn wallet(id: &str) -> StreamId {
    StreamId::new("wallet", id).expect("stream id")
}

/// What the view should hold: per owner, the total and the number of events.
type Expected = BTreeMap<String, (i64, i32)>;

/// Appends `n` consumed events (alternately an account deposit and a wallet credit, for
/// owners `o0`..`o4`, amounts `first`, `first + 1`, ...) and one `Closed` (not consumed)
/// after every fourth, and records them in `expected`.
async fn append_money(store: &PgStore, first: i64, n: i64, expected: &mut Expected) {
    for amount in first..first + n {
        let owner = format!("o{}", amount % 5);
        let event = if amount % 2 == 0 {
            (
                account(&owner),
                encode(&AccountEvent::Deposited {
                    owner: owner.clone(),
                    amount,
                }),
            )
        } else {
            (
                wallet(&owner),
                encode(&WalletEvent::Credited {
                    owner: owner.clone(),
                    amount,
                }),
            )
        };
        store
            .append(&event.0, ExpectedVersion::Any, vec![event.1])
            .await
            .expect("append");
        let entry = expected.entry(owner.clone()).or_default();
        entry.0 += amount;
        entry.1 += 1;
        if amount % 4 == 0 {
            store
                .append(
                    &account(&owner),
                    ExpectedVersion::Any,
                    vec![encode(&AccountEvent::Closed { owner })],
                )
                .await
                .expect("append");
        }
    }
}

async fn totals(store: &PgStore) -> Expected {
    let rows = sqlx::query(&format!(
        "SELECT owner, total, events FROM \"{}\".totals",
        store.schema()
    ))
    .fetch_all(store.pool())
    .await
    .expect("totals");
    rows.iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// `(applied events, the largest number of applications of one event)`.
async fn applications(store: &PgStore) -> (i64, i32) {
    let row = sqlx::query(&format!(
        "SELECT count(*), coalesce(max(times), 0) FROM \"{}\".applied",
        store.schema()
    ))
    .fetch_one(store.pool())
    .await
    .expect("applied");
    (row.get(0), row.get(1))
}

/// Applied events per runner.
async fn applied_by(store: &PgStore) -> BTreeMap<String, i64> {
    let rows = sqlx::query(&format!(
        "SELECT runner, count(*) FROM \"{}\".applied GROUP BY runner",
        store.schema()
    ))
    .fetch_all(store.pool())
    .await
    .expect("applied by");
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(10),
    }
}

fn start<const V: u32>(store: &PgStore, view: OwnerTotals<V>, batch: usize) -> SubscriptionHandle {
    Subscription::new(store.clone(), store.transactional(view).expect("valid"))
        .batch_size(batch)
        .retry(quick_retries())
        .idle_wait(Duration::from_millis(200))
        .standby_interval(Duration::from_millis(200))
        .start()
}

/// Waits until `done` holds for the handle's status, or panics after `timeout`.
async fn wait_until(
    handle: &SubscriptionHandle,
    timeout: Duration,
    what: &str,
    done: impl Fn(&cqrs_core::subscription::SubscriptionStatus) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let status = handle.status();
        if done(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

const CAUGHT_UP: Duration = Duration::from_secs(30);

/// Waits until the subscription has delivered every committed event it consumes: caught
/// up, and no lag. `caught_up` alone is not enough on PostgreSQL when another
/// subscription runs meanwhile: an event committed before the call is not readable yet
/// while a transaction older than it (another view's batch) is still open, so a read can
/// find "nothing more" before it. The lag counts such events.
async fn settle(handle: &SubscriptionHandle) {
    let deadline = Instant::now() + CAUGHT_UP;
    loop {
        handle.caught_up(CAUGHT_UP).await.expect("caught up");
        if handle.lag().await.expect("lag") == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never settled: {:?}",
            handle.status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------------------
// (a) catch-up, then live.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_view_catches_up_then_follows_live_events_of_two_stream_types() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    let mut expected = Expected::new();
    append_money(&store, 0, 40, &mut expected).await;

    let view = OwnerTotals::<1>::new(&store);
    let stats = Arc::clone(&view.stats);
    let running = start(&store, view, 7);
    running.caught_up(CAUGHT_UP).await.expect("caught up");
    assert_eq!(totals(&store).await, expected);
    assert_eq!(applications(&store).await, (40, 1));
    assert_eq!(
        stats.resets.load(Ordering::SeqCst),
        1,
        "a new view is reset once before its first replay"
    );
    assert_eq!(running.lag().await.expect("lag"), 0);

    // Live: new events of both stream types arrive while it runs.
    append_money(&store, 40, 15, &mut expected).await;
    running.caught_up(CAUGHT_UP).await.expect("caught up live");
    assert_eq!(totals(&store).await, expected);
    assert_eq!(applications(&store).await, (55, 1));
    let status = running.status();
    assert_eq!(status.state, SubscriptionState::Live);
    assert_eq!(status.delivered, 55, "only consumed events are delivered");
    assert_eq!(status.name, "owner_totals");

    // The checkpoint committed with the view is where the status says.
    let saved = store
        .load_checkpoint(&subscription_name("owner_totals@v1"))
        .await
        .expect("load");
    assert_eq!(saved, status.position);
    running.shutdown().await.expect("clean shutdown");
}

// ---------------------------------------------------------------------------------------
// (b) restart: no loss, no duplicate effect.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_resume_from_the_checkpoint_without_loss_or_duplicate_effect() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    let mut expected = Expected::new();
    append_money(&store, 0, 150, &mut expected).await;
    let slow = Duration::from_millis(2);

    // 1. Shut down mid-way: the current batch finishes and its checkpoint is saved.
    let first = start(&store, OwnerTotals::<1>::new(&store).delay(slow), 5);
    wait_until(&first, CAUGHT_UP, "30 events delivered", |s| {
        s.delivered >= 30
    })
    .await;
    first.shutdown().await.expect("clean shutdown");
    let (applied, most) = applications(&store).await;
    assert!(
        (30..150).contains(&applied),
        "stopped mid-way: {applied} applied"
    );
    assert_eq!(most, 1);
    let checkpoint = store
        .load_checkpoint(&subscription_name("owner_totals@v1"))
        .await
        .expect("load")
        .expect("a checkpoint");
    let read = store
        .read_all(Position::START, usize::MAX, &EventFilter::all())
        .await
        .expect("read");
    let consumed_up_to_checkpoint = read
        .iter()
        .filter(|e| e.position <= checkpoint && e.event_type != "Closed")
        .count() as i64;
    assert_eq!(
        applied, consumed_up_to_checkpoint,
        "the view holds exactly the events up to its checkpoint"
    );

    // 2. Dropped mid-way (the handle gone, no waiting), and a new runner started at once:
    //    it stands by until the old one let go of the lease, then resumes.
    append_money(&store, 150, 20, &mut expected).await;
    let second = start(&store, OwnerTotals::<1>::new(&store).delay(slow), 5);
    wait_until(&second, CAUGHT_UP, "more delivered", |s| s.delivered >= 20).await;
    drop(second);
    let third_view = OwnerTotals::<1>::new(&store).runner("third");
    let third_stats = Arc::clone(&third_view.stats);
    let third = start(&store, third_view, 50);
    third.caught_up(CAUGHT_UP).await.expect("caught up");
    assert_eq!(totals(&store).await, expected);
    assert_eq!(
        applications(&store).await,
        (170, 1),
        "each event exactly once"
    );
    assert_eq!(
        third_stats.resets.load(Ordering::SeqCst),
        0,
        "a restart resumes, it does not rebuild"
    );
    assert!(applied_by(&store).await.contains_key("third"));
    third.shutdown().await.expect("clean shutdown");
}

// ---------------------------------------------------------------------------------------
// (c) a view added after 10,000 events.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_added_after_ten_thousand_events_catches_up() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    // 10,000 events in appends of 100: 4,000 deposits, 4,000 credits, 2,000 not consumed.
    let mut expected = Expected::new();
    for batch in 0..100i64 {
        let owner = format!("o{}", batch % 7);
        let stream = if batch % 2 == 0 {
            account(&format!("bulk-{batch}"))
        } else {
            wallet(&format!("bulk-{batch}"))
        };
        let events: Vec<NewEvent> = (0..100i64)
            .map(|i| {
                let amount = batch * 100 + i;
                if i % 5 == 4 {
                    return encode(&AccountEvent::Closed {
                        owner: owner.clone(),
                    });
                }
                let entry = expected.entry(owner.clone()).or_default();
                entry.0 += amount;
                entry.1 += 1;
                if batch % 2 == 0 {
                    encode(&AccountEvent::Deposited {
                        owner: owner.clone(),
                        amount,
                    })
                } else {
                    encode(&WalletEvent::Credited {
                        owner: owner.clone(),
                        amount,
                    })
                }
            })
            .collect();
        store
            .append(&stream, ExpectedVersion::NoStream, events)
            .await
            .expect("append");
    }

    let started = Instant::now();
    let running = start(&store, OwnerTotals::<1>::new(&store), 500);
    running
        .caught_up(Duration::from_secs(120))
        .await
        .expect("caught up");
    let took = started.elapsed();
    assert_eq!(applications(&store).await, (8_000, 1));
    assert_eq!(totals(&store).await, expected);
    assert_eq!(running.status().delivered, 8_000);
    assert_eq!(running.lag().await.expect("lag"), 0);
    eprintln!("8,000 of 10,000 events caught up in {took:?}");
    running.shutdown().await.expect("clean shutdown");
}

// ---------------------------------------------------------------------------------------
// (d) rebuilds: on a version bump and on request; other subscriptions go on.

/// An in-memory view of the same events, fed by the core's `Project` (at-least-once), to
/// show that another subscription keeps running while one rebuilds.
#[derive(Clone, Default, Projection)]
#[projection(event = MoneyEvent, name = "event_log", error = std::convert::Infallible)]
struct SeenEvents {
    seen: Arc<Mutex<Vec<Uuid>>>,
}

impl SeenEvents {
    async fn reset(&self) -> Result<(), std::convert::Infallible> {
        self.seen.lock().expect("lock").clear();
        Ok(())
    }

    async fn handle(&self, event: &Envelope<MoneyEvent>) -> Result<(), std::convert::Infallible> {
        self.seen.lock().expect("lock").push(event.event_id);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_bump_or_a_request_rebuilds_one_view_while_others_keep_running() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    let mut expected = Expected::new();
    append_money(&store, 0, 60, &mut expected).await;

    // Version 1 builds the view.
    let v1 = start(&store, OwnerTotals::<1>::new(&store), 100);
    v1.caught_up(CAUGHT_UP).await.expect("v1 caught up");
    v1.shutdown().await.expect("v1 stopped");
    assert_eq!(applications(&store).await, (60, 1));

    // Another subscription, on its own, runs throughout.
    let log = SeenEvents::default();
    let other = Subscription::new(
        store.clone(),
        Project::new(log.clone(), store.clone()).expect("valid"),
    )
    .idle_wait(Duration::from_millis(100))
    .start();
    settle(&other).await;
    assert_eq!(log.seen.lock().expect("lock").len(), 60);

    // Version 2: no checkpoint for `owner_totals@v2`, so the view is reset and replayed.
    // Slow handlers and small batches make the replay last, so that events appended
    // meanwhile show whether the other subscription waits for it.
    let v2_view = OwnerTotals::<2>::new(&store).delay(Duration::from_millis(15));
    let v2_stats = Arc::clone(&v2_view.stats);
    let v2 = start(&store, v2_view, 5);
    wait_until(&v2, CAUGHT_UP, "the v2 replay to start", |s| {
        s.delivered > 0
    })
    .await;
    append_money(&store, 60, 5, &mut expected).await;
    settle(&other).await;
    assert_eq!(log.seen.lock().expect("lock").len(), 65);
    assert!(
        v2.status().delivered < 65,
        "the other subscription caught up before the rebuild ended: {:?}",
        v2.status()
    );
    settle(&v2).await;
    assert_eq!(v2_stats.resets.load(Ordering::SeqCst), 1, "reset once");
    assert_eq!(totals(&store).await, expected);
    assert_eq!(
        applications(&store).await,
        (65, 1),
        "replayed once, not added"
    );
    assert!(
        store
            .load_checkpoint(&subscription_name("owner_totals@v1"))
            .await
            .expect("load")
            .is_some(),
        "each version keeps its own checkpoint"
    );

    // A rebuild on request: reset and replay, while the other one goes on.
    let handled_before = v2_stats.handled.load(Ordering::SeqCst);
    v2.rebuild();
    append_money(&store, 65, 5, &mut expected).await;
    settle(&other).await;
    assert_eq!(log.seen.lock().expect("lock").len(), 70);
    wait_until(&v2, CAUGHT_UP, "the second replay", |s| {
        s.delivered >= 65 + 70
    })
    .await;
    settle(&v2).await;
    assert_eq!(v2_stats.resets.load(Ordering::SeqCst), 2);
    assert!(v2_stats.handled.load(Ordering::SeqCst) >= handled_before + 70);
    assert_eq!(totals(&store).await, expected);
    assert_eq!(applications(&store).await, (70, 1));
    v2.shutdown().await.expect("v2 stopped");
    other.shutdown().await.expect("other stopped");
}

// ---------------------------------------------------------------------------------------
// (e) failures: retried, then reported (stop) or parked (park); never skipped silently.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_event_is_retried_then_stops_the_subscription_with_the_error() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    let mut expected = Expected::new();
    append_money(&store, 0, 20, &mut expected).await;
    let poisoned = 13;

    let view = OwnerTotals::<1>::new(&store).poison(poisoned);
    let stats = Arc::clone(&view.stats);
    let running = start(&store, view, 4);
    wait_until(&running, CAUGHT_UP, "the failure", |s| {
        s.state == SubscriptionState::Failed
    })
    .await;
    let status = running.status();
    let error = status
        .last_error
        .clone()
        .expect("the error is in the status");
    assert!(error.contains("amount 13 is poisoned"), "{error}");
    assert_eq!(
        stats.poisoned_calls.load(Ordering::SeqCst),
        3,
        "tried max_attempts times"
    );

    let ended = running.shutdown().await;
    let Err(SubscriptionError::Failed {
        name,
        source: DeliveryError::Event { event, .. },
    }) = ended
    else {
        panic!("expected the event's failure, got {ended:?}");
    };
    assert_eq!(name, "owner_totals");
    let data: MoneyEvent = codec::decode_data(&event).expect("decode");
    assert_eq!(data.owner_and_amount().1, poisoned);

    // Nothing from the failing event on took effect; the checkpoint is before it.
    let checkpoint = store
        .load_checkpoint(&subscription_name("owner_totals@v1"))
        .await
        .expect("load")
        .expect("a checkpoint");
    assert!(checkpoint < event.position);
    let amounts: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT amount FROM \"{}\".applied ORDER BY amount",
        store.schema()
    ))
    .fetch_all(store.pool())
    .await
    .expect("amounts");
    assert!(amounts.iter().all(|a| *a < poisoned), "{amounts:?}");
    assert!(store
        .parked(&subscription_name("owner_totals"))
        .await
        .expect("parked")
        .is_empty());

    // Fixed and started again: it resumes from the checkpoint, and every event takes
    // effect once.
    let fixed = start(&store, OwnerTotals::<1>::new(&store), 4);
    fixed.caught_up(CAUGHT_UP).await.expect("caught up");
    assert_eq!(totals(&store).await, expected);
    assert_eq!(applications(&store).await, (20, 1));
    fixed.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_park_policy_a_failing_event_is_parked_in_dead_letters_and_skipped() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    let mut expected = Expected::new();
    append_money(&store, 0, 20, &mut expected).await;
    let poisoned = 13;

    let view = OwnerTotals::<1>::new(&store).poison(poisoned);
    let stats = Arc::clone(&view.stats);
    let running = Subscription::new(store.clone(), store.transactional(view).expect("valid"))
        .batch_size(4)
        .retry(quick_retries())
        .on_failure(FailurePolicy::Park)
        .start();
    running.caught_up(CAUGHT_UP).await.expect("caught up");
    // At least `max_attempts` tries. (The runner first delivers the events of the batch
    // before the failing one, then gives the failing one a fresh set of attempts: with
    // 13 second in its batch, it is tried 6 times.)
    assert!(stats.poisoned_calls.load(Ordering::SeqCst) >= 3);
    let status = running.status();
    assert_eq!(status.parked, 1);
    assert_eq!(status.state, SubscriptionState::Live);
    assert!(status
        .last_error
        .is_some_and(|e| e.contains("amount 13 is poisoned")));

    // Every other event took effect once; the parked one did not.
    let owner = format!("o{}", poisoned % 5);
    let entry = expected.get_mut(&owner).expect("owner");
    entry.0 -= poisoned;
    entry.1 -= 1;
    assert_eq!(totals(&store).await, expected);
    assert_eq!(applications(&store).await, (19, 1));

    // The dead letter: the event as stored, with its error.
    let parked = store
        .parked(&subscription_name("owner_totals"))
        .await
        .expect("parked");
    assert_eq!(parked.len(), 1);
    let letter = &parked[0];
    assert!(letter.error.contains("amount 13 is poisoned"), "{letter:?}");
    let stored = store
        .read_stream(&letter.event.stream, letter.event.stream_version, 1)
        .await
        .expect("read");
    assert_eq!(*letter.event, *stored[0], "the event as stored");
    let rows: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".dead_letters WHERE subscription = 'owner_totals' \
         AND event_id = $1",
        store.schema()
    ))
    .bind(letter.event.event_id)
    .fetch_one(store.pool())
    .await
    .expect("dead letters");
    assert_eq!(rows, 1);

    // Parking it again keeps one entry, with the new error.
    store
        .park(&subscription_name("owner_totals"), &letter.event, "again")
        .await
        .expect("park again");
    let parked = store
        .parked(&subscription_name("owner_totals"))
        .await
        .expect("parked");
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].error, "again");
    assert!(parked[0].parked_at >= letter.parked_at);

    // An event this store does not hold (a bus consumer's) is kept whole, with its own
    // copy of the event in the dead letter; a stored one is joined back from `events`.
    let mut stranger = (*letter.event).clone();
    stranger.event_id = Uuid::now_v7();
    store
        .park(&subscription_name("owner_totals"), &stranger, "boom")
        .await
        .expect("park an event from elsewhere");
    let parked = store
        .parked(&subscription_name("owner_totals"))
        .await
        .expect("parked");
    assert_eq!(parked.len(), 2);
    assert!(parked
        .iter()
        .any(|d| *d.event == stranger && d.error == "boom"));
    let copies: i64 = sqlx::query_scalar(&format!(
        "SELECT count(event) FROM \"{}\".dead_letters WHERE subscription = 'owner_totals'",
        store.schema()
    ))
    .fetch_one(store.pool())
    .await
    .expect("dead letters");
    assert_eq!(copies, 1, "only the stranger carries its own copy");
    running.shutdown().await.expect("clean shutdown");
}

/// Waits until the view's handler has panicked once.
async fn first_crash(stats: &Stats) {
    let deadline = Instant::now() + CAUGHT_UP;
    while stats.crashes.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the handler never met its bug");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether `error` names the event with amount 13 (a wallet credit of owner `o3`, the
/// second of that stream, after 3's) and the panic.
fn names_the_crash(error: &str) -> bool {
    error.contains("wallet/o3 version 2 (Credited v1)")
        && error.contains("panicked: owner_totals bug at amount 13")
}

/// Within `caught_up`'s answer time once the handler panicked: the retries, not the
/// caller's timeout.
const AT_ONCE: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_retried_then_stops_the_subscription_at_once_and_rolls_back() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    let mut expected = Expected::new();
    append_money(&store, 0, 20, &mut expected).await;

    let view = OwnerTotals::<1>::new(&store).crash_at(13);
    let stats = Arc::clone(&view.stats);
    let running = start(&store, view, 4);
    first_crash(&stats).await;
    let waited = tokio::time::timeout(AT_ONCE, running.caught_up(CAUGHT_UP))
        .await
        .expect("caught_up answers at once, not after its timeout");
    match &waited {
        Err(SubscriptionError::NotRunning {
            state: SubscriptionState::Failed,
            last_error: Some(error),
            ..
        }) => assert!(names_the_crash(error), "{error}"),
        other => panic!("expected the failure, got {other:?}"),
    }
    assert_eq!(
        stats.crashes.load(Ordering::SeqCst),
        3,
        "retried as an error"
    );
    let status = running.status();
    assert_eq!(status.state, SubscriptionState::Failed);
    assert!(status.last_error.as_deref().is_some_and(names_the_crash));
    let Err(SubscriptionError::Failed {
        source: DeliveryError::Event { event, .. },
        ..
    }) = running.join().await
    else {
        panic!("expected the event's failure");
    };
    let checkpoint = store
        .load_checkpoint(&subscription_name("owner_totals@v1"))
        .await
        .expect("load")
        .expect("a checkpoint");
    assert!(
        checkpoint < event.position,
        "the checkpoint stays before it"
    );
    // Its writes were rolled back with its transaction, as was everything after it.
    let amounts: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT amount FROM \"{}\".applied ORDER BY amount",
        store.schema()
    ))
    .fetch_all(store.pool())
    .await
    .expect("amounts");
    assert_eq!(amounts, (0..13).collect::<Vec<i64>>());

    // Fixed and started again: every event takes effect exactly once, on connections
    // of the same pool (none was left inside a transaction).
    let fixed = start(&store, OwnerTotals::<1>::new(&store), 4);
    fixed.caught_up(CAUGHT_UP).await.expect("caught up");
    assert_eq!(totals(&store).await, expected);
    assert_eq!(applications(&store).await, (20, 1));
    fixed.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_park_policy_a_panicking_handler_has_its_event_parked_and_the_rest_flow_on() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    let mut expected = Expected::new();
    append_money(&store, 0, 20, &mut expected).await;

    let view = OwnerTotals::<1>::new(&store).crash_at(13);
    let stats = Arc::clone(&view.stats);
    let running = Subscription::new(store.clone(), store.transactional(view).expect("valid"))
        .batch_size(4)
        .retry(quick_retries())
        .on_failure(FailurePolicy::Park)
        .start();
    first_crash(&stats).await;
    tokio::time::timeout(AT_ONCE, running.caught_up(CAUGHT_UP))
        .await
        .expect("caught_up answers at once")
        .expect("caught up past the parked event");
    let status = running.status();
    assert_eq!((status.state, status.parked), (SubscriptionState::Live, 1));
    assert!(status.last_error.as_deref().is_some_and(names_the_crash));
    let parked = store
        .parked(&subscription_name("owner_totals"))
        .await
        .expect("parked");
    assert_eq!(parked.len(), 1);
    assert!(names_the_crash(&parked[0].error), "{:?}", parked[0]);
    let without = {
        let mut without = expected.clone();
        let entry = without.get_mut("o3").expect("owner");
        entry.0 -= 13;
        entry.1 -= 1;
        without
    };
    assert_eq!(totals(&store).await, without);
    assert_eq!(
        applications(&store).await,
        (19, 1),
        "the others exactly once"
    );
    running.shutdown().await.expect("clean shutdown");

    // Fixed, and rebuilt (nothing replays a parked event by itself): every event once.
    let fixed = start(&store, OwnerTotals::<1>::new(&store), 4);
    fixed.rebuild();
    fixed.caught_up(CAUGHT_UP).await.expect("rebuilt");
    assert_eq!(totals(&store).await, expected);
    assert_eq!(applications(&store).await, (20, 1));
    fixed.shutdown().await.expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_lost_in_a_handler_is_retried_as_a_store_failure_never_parked() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    let mut expected = Expected::new();
    append_money(&store, 0, 20, &mut expected).await;

    // With the park policy and one attempt per event, an event failure would be parked
    // at once: a broken connection must not be taken for one.
    let view = OwnerTotals::<1>::new(&store).kill_connection_once_at(9);
    let stats = Arc::clone(&view.stats);
    let running = Subscription::new(store.clone(), store.transactional(view).expect("valid"))
        .batch_size(4)
        .retry(RetryPolicy {
            max_attempts: 1,
            base_delay: Duration::from_millis(10),
        })
        .on_failure(FailurePolicy::Park)
        .start();
    settle(&running).await;
    assert_eq!(
        stats.killed.load(Ordering::SeqCst),
        2,
        "the event killed its connection once, then was delivered again"
    );
    let status = running.status();
    assert_eq!(status.parked, 0);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("delivering") && e.contains("unavailable")),
        "{status:?}"
    );
    assert!(store
        .parked(&subscription_name("owner_totals"))
        .await
        .expect("parked")
        .is_empty());
    assert_eq!(totals(&store).await, expected);
    assert_eq!(
        applications(&store).await,
        (20, 1),
        "each event exactly once"
    );
    running.shutdown().await.expect("clean shutdown");
}

// ---------------------------------------------------------------------------------------
// (f) filters run in SQL: the rows that cross the wire are counted.

/// A TCP proxy in front of the server. It counts the event rows the server sends
/// (`DataRow` messages with as many columns as an event read returns: filtering in Rust
/// would ship the rows it drops, and they would be counted), and it can cut every
/// connection through it and refuse new ones, as a network failure would.
mod wire {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use cqrs_postgres::sqlx::postgres::{PgConnectOptions, PgSslMode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    /// Columns of an event row (`EVENT_COLUMNS` in `sql.rs`).
    const EVENT_ROW_COLUMNS: u16 = 11;

    pub struct Proxy {
        port: u16,
        /// Event rows sent by the server so far.
        pub event_rows: Arc<AtomicU64>,
        cut: watch::Sender<bool>,
    }

    impl Proxy {
        /// A proxy to the server of `options`.
        pub async fn start(options: &PgConnectOptions) -> Self {
            let host = options.get_host().to_owned();
            let server_port = options.get_port();
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let event_rows = Arc::new(AtomicU64::new(0));
            let cut = watch::Sender::new(false);
            let rows = Arc::clone(&event_rows);
            let cuts = cut.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    if *cuts.borrow() {
                        continue; // dropped: the connection is refused
                    }
                    let server = TcpStream::connect((host.as_str(), server_port))
                        .await
                        .expect("connect to the server");
                    tokio::spawn(relay(client, server, Arc::clone(&rows), cuts.subscribe()));
                }
            });
            Self {
                port,
                event_rows,
                cut,
            }
        }

        /// `options` pointed at the proxy.
        pub fn options(&self, options: PgConnectOptions) -> PgConnectOptions {
            options
                .host("127.0.0.1")
                .port(self.port)
                .ssl_mode(PgSslMode::Disable)
        }

        pub fn rows(&self) -> u64 {
            self.event_rows.load(Ordering::SeqCst)
        }

        /// Closes every connection through the proxy and refuses new ones.
        pub fn cut(&self) {
            self.cut.send_replace(true);
        }

        /// Lets new connections through again.
        pub fn restore(&self) {
            self.cut.send_replace(false);
        }
    }

    async fn relay(
        client: TcpStream,
        server: TcpStream,
        rows: Arc<AtomicU64>,
        mut cut: watch::Receiver<bool>,
    ) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        let to_server = tokio::io::copy(&mut client_read, &mut server_write);
        let to_client = async {
            // Every message from the server has a type byte and a length (no TLS here).
            loop {
                let mut head = [0u8; 5];
                server_read.read_exact(&mut head).await?;
                let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                let mut body = vec![0u8; len.saturating_sub(4)];
                server_read.read_exact(&mut body).await?;
                if head[0] == b'D'
                    && body.len() >= 2
                    && u16::from_be_bytes([body[0], body[1]]) == EVENT_ROW_COLUMNS
                {
                    rows.fetch_add(1, Ordering::SeqCst);
                }
                client_write.write_all(&head).await?;
                client_write.write_all(&body).await?;
            }
            #[allow(unreachable_code)]
            Ok::<(), std::io::Error>(())
        };
        // Whichever ends first ends both directions: the sockets close when this returns.
        tokio::select! {
            _ = to_server => {}
            _ = to_client => {}
            _ = cut.wait_for(|cut| *cut) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_are_applied_in_sql_so_only_consumed_rows_cross_the_wire() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    // 1,003 events: 10 consumed by the view (5 account deposits, 5 wallet credits) among
    // 993 `Closed` that it does not consume.
    let mut expected = Expected::new();
    for amount in 0..10i64 {
        let closes: Vec<NewEvent> = (0..99)
            .map(|_| {
                encode(&AccountEvent::Closed {
                    owner: "x".to_owned(),
                })
            })
            .collect();
        store
            .append(
                &account(&format!("noise-{amount}")),
                ExpectedVersion::Any,
                closes,
            )
            .await
            .expect("append");
        append_money(&store, amount, 1, &mut expected).await;
    }
    let total = store
        .count_after(Position::START, &EventFilter::all(), u64::MAX)
        .await
        .expect("count");
    assert_eq!(total, 1_003);

    let proxy = wire::Proxy::start(&common::connect_options()).await;
    let through_proxy = PgStore::connect_with(proxy.options(common::connect_options()))
        .await
        .expect("connect through the proxy")
        .with_schema(store.schema().as_str())
        .expect("schema");

    // A global read with an event-type filter: 10 rows on the wire, not 1,000.
    let money = EventFilter::all()
        .with_event_types(["Deposited", "Credited"])
        .expect("valid");
    let before = proxy.rows();
    let read = through_proxy
        .read_all(Position::START, 10_000, &money)
        .await
        .expect("read");
    assert_eq!(read.len(), 10);
    assert_eq!(proxy.rows() - before, 10);

    // A stream-type filter: the 5 wallet credits only.
    let before = proxy.rows();
    let wallets = through_proxy
        .read_all(
            Position::START,
            10_000,
            &EventFilter::all()
                .with_stream_types(["wallet"])
                .expect("valid"),
        )
        .await
        .expect("read");
    assert_eq!(wallets.len(), 5);
    assert!(wallets.iter().all(|e| e.stream.stream_type() == "wallet"));
    assert_eq!(proxy.rows() - before, 5);

    // The lag is counted in the database: no event row at all on the wire, and capped.
    let before = proxy.rows();
    assert_eq!(
        through_proxy
            .count_after(Position::START, &money, 1_000_000)
            .await
            .expect("count"),
        10
    );
    assert_eq!(
        through_proxy
            .count_after(Position::START, &EventFilter::all(), 100)
            .await
            .expect("count"),
        100,
        "capped by the limit"
    );
    assert_eq!(
        through_proxy
            .count_after(read[4].position, &money, 1_000_000)
            .await
            .expect("count"),
        5
    );
    assert_eq!(proxy.rows() - before, 0);

    // A whole subscription through the proxy: exactly the 10 consumed events are shipped.
    let before = proxy.rows();
    let running = start(&through_proxy, OwnerTotals::<1>::new(&through_proxy), 3);
    running.caught_up(CAUGHT_UP).await.expect("caught up");
    assert_eq!(totals(&store).await, expected);
    running.shutdown().await.expect("clean shutdown");
    assert_eq!(
        proxy.rows() - before,
        10,
        "only the events the view consumes crossed the wire"
    );
}

// ---------------------------------------------------------------------------------------
// (g) one active runner across processes (separate pools); takeover.

/// The backend pids holding a subscription lease, found as operators would: by the lease
/// connections' application name and their granted advisory locks.
async fn lease_holders(store: &PgStore, name: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
         WHERE a.application_name = $1 AND l.locktype = 'advisory' AND l.granted",
    )
    .bind(format!("{}:{name}", cqrs_postgres::LEASE_APPLICATION_NAME))
    .fetch_all(store.pool())
    .await
    .expect("lease holders")
}

/// The same database and schema as `store`, through a pool of its own (as another process
/// would have).
async fn another_process(store: &PgStore) -> PgStore {
    PgStore::connect_with(common::connect_options())
        .await
        .expect("connect")
        .with_schema(store.schema().as_str())
        .expect("schema")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_exclusive_across_pools_and_end_with_their_connection() {
    let _one = exclusive().await;
    let store = fresh_pg_store().await;
    let other = another_process(&store).await;

    let lease = store
        .acquire_lease(&subscription_name("billing"))
        .await
        .expect("acquire")
        .expect("free");
    assert!(lease.is_held().await);
    assert!(store
        .acquire_lease(&subscription_name("billing"))
        .await
        .expect("try")
        .is_none());
    assert!(other
        .acquire_lease(&subscription_name("billing"))
        .await
        .expect("try")
        .is_none());
    // Another name, and the same name in another schema, are other leases.
    let invoices = other
        .acquire_lease(&subscription_name("invoices"))
        .await
        .expect("acquire");
    assert!(invoices.is_some());
    let elsewhere = fresh_pg_store().await;
    assert!(elsewhere
        .acquire_lease(&subscription_name("billing"))
        .await
        .expect("acquire")
        .is_some());

    // Dropping the lease releases it: at once for the same store (an acquire waits for
    // the release under way), as soon as the server has unlocked it for another process.
    drop(lease);
    let again = store
        .acquire_lease(&subscription_name("billing"))
        .await
        .expect("acquire")
        .expect("released");
    drop(again);
    let taken = acquire_within(&other, "billing").await;

    // A lease whose connection is killed is lost: the holder sees it, another takes it.
    let holders = lease_holders(&store, "billing").await;
    assert_eq!(holders.len(), 1, "{holders:?}");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(holders[0])
        .fetch_one(store.pool())
        .await
        .expect("terminate");
    assert!(killed);
    assert!(!taken.is_held().await, "the holder sees its lease is lost");
    assert!(!taken.is_held().await, "and it stays lost");
    acquire_within(&store, "billing").await;
}

/// Acquires lease `name`, trying for up to 5 s: a session that was ended still holds its
/// locks for the few milliseconds its backend takes to exit.
async fn acquire_within(store: &PgStore, name: &str) -> Box<dyn cqrs_core::Lease> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(lease) = store
            .acquire_lease(&subscription_name(name))
            .await
            .expect("try")
        {
            return lease;
        }
        assert!(Instant::now() < deadline, "lease {name} was not released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runners_with_separate_pools_one_delivers_and_the_other_takes_over() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    // Process A reaches the database through a proxy that can cut its network; process B
    // directly. Each has its own pool.
    let network_a = wire::Proxy::start(&common::connect_options()).await;
    let process_a = PgStore::connect_with(network_a.options(common::connect_options()))
        .await
        .expect("connect a")
        .with_schema(store.schema().as_str())
        .expect("schema");
    let process_b = another_process(&store).await;
    let mut expected = Expected::new();
    append_money(&store, 0, 50, &mut expected).await;

    // 1. A starts first and delivers; B stands by.
    let a = start(
        &process_a,
        OwnerTotals::<1>::new(&process_a).runner("a"),
        10,
    );
    settle(&a).await;
    let b = start(
        &process_b,
        OwnerTotals::<1>::new(&process_b).runner("b"),
        10,
    );
    wait_until(&b, CAUGHT_UP, "b on standby", |s| {
        s.state == SubscriptionState::Standby
    })
    .await;
    append_money(&store, 50, 20, &mut expected).await;
    settle(&a).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.status().state, SubscriptionState::Standby);
    assert_eq!(b.status().delivered, 0, "only one runner delivers");
    assert_eq!(applied_by(&store).await, BTreeMap::from([("a".into(), 70)]));
    assert_eq!(lease_holders(&store, "owner_totals").await.len(), 1);

    // 2. A loses its network: its lease connection breaks, the server releases the lock,
    //    and B takes over from the last committed checkpoint.
    let cut_at = Instant::now();
    network_a.cut();
    append_money(&store, 70, 30, &mut expected).await;
    wait_until(&b, Duration::from_secs(10), "b to take over", |s| {
        s.delivered > 0
    })
    .await;
    let takeover = cut_at.elapsed();
    eprintln!("takeover after a network cut: {takeover:?}");
    assert!(
        takeover < Duration::from_secs(5),
        "took over in {takeover:?}"
    );
    settle(&b).await;
    wait_until(&a, CAUGHT_UP, "a to notice", |s| {
        matches!(
            s.state,
            SubscriptionState::Standby | SubscriptionState::Retrying
        )
    })
    .await;
    assert_eq!(totals(&store).await, expected);
    assert_eq!(
        applications(&store).await,
        (100, 1),
        "each event exactly once"
    );
    assert!(applied_by(&store).await.get("b").is_some_and(|n| *n > 0));

    // 3. B's lease connection is terminated by hand: B sees the lease lost, takes it
    //    again (A still cannot), and goes on; still exactly once.
    let holders = lease_holders(&store, "owner_totals").await;
    assert_eq!(holders.len(), 1, "{holders:?}");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(holders[0])
        .fetch_one(store.pool())
        .await
        .expect("terminate");
    assert!(killed);
    append_money(&store, 100, 10, &mut expected).await;
    wait_until(&b, CAUGHT_UP, "b to re-acquire", |s| {
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("lease lost"))
    })
    .await;
    settle(&b).await;
    let holders_now = lease_holders(&store, "owner_totals").await;
    assert_eq!(holders_now.len(), 1);
    assert_ne!(holders_now, holders, "a new lease connection");
    assert_eq!(
        applications(&store).await,
        (110, 1),
        "each event exactly once"
    );

    // 4. A's network comes back and B's process loses its database (its pool is closed):
    //    B gives the lease up, and A takes over again (after its own backoff from the
    //    failures it saw while cut off, at most 5 s).
    network_a.restore();
    let a_delivered = a.status().delivered;
    let closed_at = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), process_b.pool().close())
        .await
        .expect("pool closed");
    append_money(&store, 110, 20, &mut expected).await;
    wait_until(&a, Duration::from_secs(15), "a to take over", |s| {
        s.delivered > a_delivered
    })
    .await;
    let takeover = closed_at.elapsed();
    eprintln!("takeover after a closed pool: {takeover:?}");
    assert!(
        takeover < Duration::from_secs(10),
        "took over in {takeover:?}"
    );
    settle(&a).await;
    assert_eq!(totals(&store).await, expected);
    assert_eq!(
        applications(&store).await,
        (130, 1),
        "each event exactly once"
    );

    a.shutdown().await.expect("a stopped");
    b.shutdown().await.expect("b stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_runner_is_fenced_by_the_checkpoint_row() {
    let _one = exclusive().await;
    let store = store_with_view().await;
    let mut expected = Expected::new();
    append_money(&store, 0, 6, &mut expected).await;
    let events = store
        .read_all(
            Position::START,
            100,
            &EventFilter::all()
                .with_event_types(["Deposited", "Credited"])
                .expect("valid"),
        )
        .await
        .expect("read");
    let consumer = store
        .transactional(OwnerTotals::<1>::new(&store))
        .expect("valid");
    consumer.reset().await.expect("reset");
    let (first, rest) = events.split_at(3);

    // The active runner delivers the first half.
    consumer
        .deliver(Position::START, first, first[2].position)
        .await
        .expect("deliver");
    // A stale runner (it read the checkpoint before) delivers the same events again: the
    // checkpoint row says otherwise, nothing is applied.
    let stale = consumer
        .deliver(Position::START, first, first[2].position)
        .await;
    assert!(
        matches!(
            &stale,
            Err(DeliveryError::CheckpointMoved { name, expected, actual })
                if name == "owner_totals@v1" && *expected == Position::START
                    && *actual == Some(first[2].position)
        ),
        "{stale:?}"
    );
    let stale = consumer
        .deliver(Position::START, rest, rest[2].position)
        .await;
    assert!(matches!(stale, Err(DeliveryError::CheckpointMoved { .. })));
    assert_eq!(applications(&store).await, (3, 1));

    // The right `from` goes through.
    consumer
        .deliver(first[2].position, rest, rest[2].position)
        .await
        .expect("deliver");
    assert_eq!(applications(&store).await, (6, 1));
    assert_eq!(totals(&store).await, expected);
}

// ---------------------------------------------------------------------------------------
// (h) idempotent commands by command id.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_command_id_returns_the_original_events_without_appending() {
    let _one = exclusive().await;
    let store = fresh_pg_store().await;
    let engine = Engine::<Account>::new(store.clone(), ());
    let command_id = Uuid::now_v7();
    let deposit = || AccountCommand::Deposit {
        owner: "ada".into(),
        amount: 5,
    };
    let metadata = Metadata::default().with_command_id(command_id);

    let first = engine
        .execute_with_metadata("ada", deposit(), metadata.clone())
        .await
        .expect("first");
    let again = engine
        .execute_with_metadata("ada", deposit(), metadata)
        .await
        .expect("again");
    assert_eq!(again.version, first.version);
    assert_eq!(
        again.events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        first.events.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );
    let stream = account("ada");
    assert_eq!(
        store
            .read_stream(&stream, 1, 100)
            .await
            .expect("read")
            .len(),
        1,
        "appended once"
    );
    // Without a command id, the same command runs again.
    engine.execute("ada", deposit()).await.expect("third");
    assert_eq!(
        store
            .read_stream(&stream, 1, 100)
            .await
            .expect("read")
            .len(),
        2
    );

    let by_command = store
        .read_by_command(&stream, command_id)
        .await
        .expect("read by command");
    assert_eq!(by_command.len(), 1);
    assert_eq!(by_command[0].event_id, first.events[0].event_id);
    assert_eq!(by_command[0].metadata.command_id, Some(command_id));
    assert!(store
        .read_by_command(&stream, Uuid::now_v7())
        .await
        .expect("read")
        .is_empty());
    assert!(store
        .read_by_command(&account("nobody"), command_id)
        .await
        .expect("read")
        .is_empty());

    // The generated column holds the id, and the partial index serves the lookup.
    let column: Vec<Option<Uuid>> = sqlx::query_scalar(&format!(
        "SELECT command_id FROM \"{}\".events ORDER BY position",
        store.schema()
    ))
    .fetch_all(store.pool())
    .await
    .expect("column");
    assert_eq!(column, vec![Some(command_id), None]);
    // With a longer stream and statistics (autovacuum gathers them in production), the
    // planner picks the partial index rather than scanning the stream.
    for _ in 0..3 {
        let more: Vec<NewEvent> = (0..100)
            .map(|amount| {
                encode(&AccountEvent::Deposited {
                    owner: "ada".into(),
                    amount,
                })
            })
            .collect();
        store
            .append(&stream, ExpectedVersion::Any, more)
            .await
            .expect("append");
    }
    exec(&store, "ANALYZE {schema}.events").await;
    let mut tx = store.pool().begin().await.expect("begin");
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await
        .expect("set");
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN SELECT * FROM \"{}\".events WHERE stream_type = $1 AND stream_id = $2 \
         AND command_id = $3 ORDER BY stream_version",
        store.schema()
    ))
    .bind("account")
    .bind("ada")
    .bind(command_id)
    .fetch_all(&mut *tx)
    .await
    .expect("explain");
    assert!(
        plan.iter().any(|line| line.contains("events_command")),
        "{plan:#?}"
    );
}

/// Credits a wallet's owner account with a bonus for each credit, through the engine:
/// its commands are idempotent, so a replay of its events appends nothing.
struct Bonus {
    accounts: Engine<Account>,
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum BonusTrigger {
    Credited { owner: String, amount: i64 },
}

impl Listener for Bonus {
    const NAME: &'static str = "bonus";
    type Event = BonusTrigger;
    type Error = EngineError<Refused>;
}

impl ProcessManager for Bonus {
    async fn handle(&self, event: &Envelope<BonusTrigger>) -> Result<(), Self::Error> {
        let BonusTrigger::Credited { owner, amount } = &event.data;
        let command = AccountCommand::Deposit {
            owner: owner.clone(),
            amount: amount / 10,
        };
        self.accounts.send_caused_by(command, event).await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_manager_replayed_from_the_start_appends_nothing_twice() {
    let _one = exclusive().await;
    let store = fresh_pg_store().await;
    for (owner, amount) in [("ada", 100), ("bob", 50), ("ada", 30)] {
        store
            .append(
                &wallet(owner),
                ExpectedVersion::Any,
                vec![encode(&WalletEvent::Credited {
                    owner: owner.into(),
                    amount,
                })],
            )
            .await
            .expect("append");
    }
    let bonus = Bonus {
        accounts: Engine::new(store.clone(), ()),
    };
    let running = Subscription::new(
        store.clone(),
        React::new(bonus, store.clone()).expect("valid"),
    )
    .idle_wait(Duration::from_millis(100))
    .start();
    running.caught_up(CAUGHT_UP).await.expect("caught up");
    let deposits = || async {
        store
            .count_after(
                Position::START,
                &EventFilter::all()
                    .with_stream_types(["account"])
                    .expect("valid"),
                1_000,
            )
            .await
            .expect("count")
    };
    assert_eq!(deposits().await, 3);

    // Delivered again from the start (as after a crash before the checkpoint): the
    // commands find their command ids and return the first outcome.
    running.rebuild();
    wait_until(&running, CAUGHT_UP, "the replay", |s| s.delivered >= 6).await;
    running.caught_up(CAUGHT_UP).await.expect("caught up");
    assert_eq!(deposits().await, 3, "no command acted twice");
    let ada = store
        .read_stream(&account("ada"), 1, 10)
        .await
        .expect("read");
    assert_eq!(ada.len(), 2);
    assert!(ada
        .iter()
        .all(|e| e.metadata.command_id.is_some() && e.metadata.causation_id.is_some()));
    running.shutdown().await.expect("clean shutdown");
}

// ---------------------------------------------------------------------------------------
// (i) inline projections: in the append transaction.

/// Balance per owner in table `inline_balances`, updated inside the append. Refuses
/// negative amounts (after writing, to show that its write is rolled back too).
#[derive(Clone, PgProjection)]
#[pg_projection(event = MoneyEvent, error = InlineError, events(Deposited), streams("account"))]
struct InlineBalances {
    schema: String,
}

#[derive(Debug, thiserror::Error)]
enum InlineError {
    #[error("negative amount {0}")]
    Negative(i64),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl InlineBalances {
    async fn handle(
        &self,
        tx: &mut PgConnection,
        event: &Envelope<MoneyEvent>,
    ) -> Result<(), InlineError> {
        let (owner, amount) = event.data.owner_and_amount();
        sqlx::query(&format!(
            "INSERT INTO {}.inline_balances AS b (owner, balance) VALUES ($1, $2) \
             ON CONFLICT (owner) DO UPDATE SET balance = b.balance + $2",
            self.schema
        ))
        .bind(owner)
        .bind(amount)
        .execute(&mut *tx)
        .await?;
        if amount < 0 {
            return Err(InlineError::Negative(amount));
        }
        if amount == 666 {
            panic!("inline_balances bug at amount 666");
        }
        Ok(())
    }

    async fn reset(&self, tx: &mut PgConnection) -> Result<(), InlineError> {
        sqlx::query(&format!("DELETE FROM {}.inline_balances", self.schema))
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

async fn balance(store: &PgStore, owner: &str) -> Option<i64> {
    sqlx::query_scalar(&format!(
        "SELECT balance FROM \"{}\".inline_balances WHERE owner = $1",
        store.schema()
    ))
    .bind(owner)
    .fetch_optional(store.pool())
    .await
    .expect("balance")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_projection_commits_with_the_append_or_refuses_it() {
    let _one = exclusive().await;
    let plain = fresh_pg_store().await;
    exec(
        &plain,
        "CREATE TABLE {schema}.inline_balances (owner text PRIMARY KEY, balance bigint NOT NULL)",
    )
    .await;
    let store = plain.clone().with_inline_projection(InlineBalances {
        schema: format!("\"{}\"", plain.schema()),
    });
    let engine = Engine::<Account>::new(store.clone(), ());

    // The read model is there when the command returns.
    engine
        .send(AccountCommand::Deposit {
            owner: "ada".into(),
            amount: 40,
        })
        .await
        .expect("deposit");
    assert_eq!(balance(&store, "ada").await, Some(40));
    engine
        .send(AccountCommand::Deposit {
            owner: "ada".into(),
            amount: 2,
        })
        .await
        .expect("deposit");
    assert_eq!(balance(&store, "ada").await, Some(42));

    // A refusal rolls back the events and the projection's own write.
    let refused = engine
        .send(AccountCommand::Deposit {
            owner: "ada".into(),
            amount: -5,
        })
        .await;
    assert!(
        matches!(
            &refused,
            Err(EngineError::Store(StoreError::Projection { projection, stream, .. }))
                if projection == "inline_balances" && *stream == account("ada")
        ),
        "{refused:?}"
    );
    assert_eq!(balance(&store, "ada").await, Some(42));
    assert_eq!(
        store
            .read_stream(&account("ada"), 1, 10)
            .await
            .expect("read")
            .len(),
        2,
        "the refused append stored nothing"
    );

    // Events it does not consume (another stream type) pass through untouched.
    store
        .append(
            &wallet("ada"),
            ExpectedVersion::Any,
            vec![encode(&WalletEvent::Credited {
                owner: "ada".into(),
                amount: -1,
            })],
        )
        .await
        .expect("a wallet event is not the projection's");

    // `append_in`: the projection runs in the caller's transaction, and a refusal undoes
    // only the append (a savepoint): the caller's other writes still commit.
    let mut tx = store.pool().begin().await.expect("begin");
    store
        .append_in(
            &mut tx,
            &account("bob"),
            ExpectedVersion::NoStream,
            vec![encode(&AccountEvent::Deposited {
                owner: "bob".into(),
                amount: 7,
            })],
        )
        .await
        .expect("append in");
    let refused = store
        .append_in(
            &mut tx,
            &account("cy"),
            ExpectedVersion::NoStream,
            vec![encode(&AccountEvent::Deposited {
                owner: "cy".into(),
                amount: -7,
            })],
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Projection { .. })));
    assert_eq!(balance(&store, "bob").await, None, "not committed yet");
    tx.commit().await.expect("commit");
    assert_eq!(balance(&store, "bob").await, Some(7));
    assert_eq!(balance(&store, "cy").await, None);
    assert!(store
        .read_stream(&account("cy"), 1, 10)
        .await
        .expect("read")
        .is_empty());

    // The plain store (no inline projection) does not run it.
    plain
        .append(
            &account("dan"),
            ExpectedVersion::NoStream,
            vec![encode(&AccountEvent::Deposited {
                owner: "dan".into(),
                amount: 1,
            })],
        )
        .await
        .expect("append");
    assert_eq!(balance(&store, "dan").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_projection_that_panics_refuses_the_append_and_leaves_no_connection_in_it() {
    let _one = exclusive().await;
    let plain = fresh_pg_store().await;
    exec(
        &plain,
        "CREATE TABLE {schema}.inline_balances (owner text PRIMARY KEY, balance bigint NOT NULL)",
    )
    .await;
    let store = plain.clone().with_inline_projection(InlineBalances {
        schema: format!("\"{}\"", plain.schema()),
    });
    let engine = Engine::<Account>::new(store.clone(), ());
    let deposit = |amount| AccountCommand::Deposit {
        owner: "ada".into(),
        amount,
    };
    engine.send(deposit(40)).await.expect("deposit");

    // The handler wrote its row, then panicked: the append fails as for an error, and
    // the row and the event are rolled back.
    let refused = engine.send(deposit(666)).await;
    match &refused {
        Err(EngineError::Store(StoreError::Projection {
            projection, source, ..
        })) => {
            assert_eq!(projection, "inline_balances");
            assert_eq!(
                source.to_string(),
                "panicked: inline_balances bug at amount 666"
            );
        }
        other => panic!("expected the projection's refusal, got {other:?}"),
    }
    assert_eq!(balance(&store, "ada").await, Some(40));
    let stored = store
        .read_stream(&account("ada"), 1, 10)
        .await
        .expect("read");
    assert_eq!(stored.len(), 1, "the refused append stored nothing");

    // More appends than the pool has connections: none of them lands on a connection
    // left inside the panicking append's transaction.
    for _ in 0..12 {
        engine.send(deposit(1)).await.expect("deposit");
    }
    assert_eq!(balance(&store, "ada").await, Some(52));

    // In the caller's transaction: only the savepoint is undone, the rest commits.
    let mut tx = store.pool().begin().await.expect("begin");
    store
        .append_in(
            &mut tx,
            &account("bob"),
            ExpectedVersion::NoStream,
            vec![encode(&AccountEvent::Deposited {
                owner: "bob".into(),
                amount: 7,
            })],
        )
        .await
        .expect("append in");
    let refused = store
        .append_in(
            &mut tx,
            &account("cy"),
            ExpectedVersion::NoStream,
            vec![encode(&AccountEvent::Deposited {
                owner: "cy".into(),
                amount: 666,
            })],
        )
        .await;
    assert!(
        matches!(&refused, Err(StoreError::Projection { .. })),
        "{refused:?}"
    );
    tx.commit().await.expect("commit");
    assert_eq!(balance(&store, "bob").await, Some(7));
    assert_eq!(balance(&store, "cy").await, None);
    assert!(store
        .read_stream(&account("cy"), 1, 10)
        .await
        .expect("read")
        .is_empty());
}

/// The subscription name `name`, valid by construction of the test.
fn subscription_name(name: &str) -> cqrs_core::SubscriptionName {
    cqrs_core::SubscriptionName::new(name).expect("a valid subscription name")
}
