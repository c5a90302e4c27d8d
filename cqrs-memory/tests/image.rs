//! The memory image (`Engine::with_image_cache`) with two engines, each with its own
//! cache, on one store: a cached state may be stale, and the optimistic check alone keeps
//! the result right.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cqrs_core::{
    Aggregate, Command, DomainEvent, Engine, EngineError, EventFilter, EventStore, ExpectedVersion,
    NewEvent, Position, RetryPolicy, StoreError, StoredEvent, StreamId,
};
use cqrs_memory::MemoryStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Command)]
#[command(id = account)]
enum AccountCommand {
    Deposit { account: String, amount: u64 },
    Withdraw { account: String, amount: u64 },
}

#[derive(Debug, Clone, PartialEq, DomainEvent)]
enum AccountEvent {
    Deposited { amount: u64 },
    Withdrawn { amount: u64 },
}

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("insufficient funds: {balance} < {requested}")]
struct InsufficientFunds {
    balance: u64,
    requested: u64,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize, Aggregate)]
#[aggregate(command = AccountCommand, event = AccountEvent, error = InsufficientFunds)]
struct Account {
    balance: u64,
}

impl Account {
    async fn handle(
        &self,
        command: &AccountCommand,
        _: &(),
    ) -> Result<Vec<AccountEvent>, InsufficientFunds> {
        match *command {
            AccountCommand::Deposit { amount, .. } => Ok(vec![AccountEvent::Deposited { amount }]),
            AccountCommand::Withdraw { amount, .. } if amount > self.balance => {
                Err(InsufficientFunds {
                    balance: self.balance,
                    requested: amount,
                })
            }
            AccountCommand::Withdraw { amount, .. } => Ok(vec![AccountEvent::Withdrawn { amount }]),
        }
    }

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited { amount } => self.balance += amount,
            AccountEvent::Withdrawn { amount } => self.balance -= amount,
        }
    }
}

fn deposit(account: &str, amount: u64) -> AccountCommand {
    AccountCommand::Deposit {
        account: account.into(),
        amount,
    }
}

fn withdraw(account: &str, amount: u64) -> AccountCommand {
    AccountCommand::Withdraw {
        account: account.into(),
        amount,
    }
}

/// A store that counts stream reads, to tell a cached command from a loaded one.
#[derive(Clone)]
struct Counting {
    inner: MemoryStore,
    reads: Arc<AtomicUsize>,
}

impl Counting {
    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EventStore for Counting {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.append(stream, expected, events).await
    }
    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        max_count: usize,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner
            .read_stream(stream, from_version, max_count)
            .await
    }
    async fn read_all(
        &self,
        after: Position,
        max_count: usize,
        filter: &EventFilter,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.read_all(after, max_count, filter).await
    }
    async fn wait_for_events(
        &self,
        after: Position,
        timeout: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.wait_for_events(after, timeout).await
    }
    async fn read_horizon(&self) -> Result<Position, StoreError> {
        self.inner.read_horizon().await
    }
    // Forwarded rather than left to the provided implementations, which would go through
    // `read_stream` and be counted as stream reads.
    async fn read_by_command(
        &self,
        stream: &StreamId,
        command_id: uuid::Uuid,
    ) -> Result<Vec<Arc<StoredEvent>>, StoreError> {
        self.inner.read_by_command(stream, command_id).await
    }
    async fn count_after(
        &self,
        after: Position,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<u64, StoreError> {
        self.inner.count_after(after, filter, limit).await
    }
}

fn engine(store: &Counting) -> Engine<Account> {
    Engine::new(store.clone(), ())
        .with_image_cache(16)
        .with_retry(RetryPolicy {
            max_attempts: 1_000,
            base_delay: Duration::from_micros(100),
        })
}

#[tokio::test]
async fn a_stale_image_conflicts_reloads_and_decides_again_on_the_other_engines_writes() {
    let store = Counting {
        inner: MemoryStore::new(),
        reads: Arc::default(),
    };
    let (a, b) = (engine(&store), engine(&store));

    a.execute("x", deposit("x", 10)).await.expect("a opens x");
    let reads = store.reads();
    let second = a.execute("x", deposit("x", 5)).await.expect("a again");
    assert_eq!(second.version, 2);
    assert_eq!(
        store.reads(),
        reads,
        "a command on a cached aggregate reads nothing"
    );

    // b has no image of x: it loads (version 2, balance 15) and writes version 3.
    b.execute("x", withdraw("x", 15))
        .await
        .expect("b empties x");

    // a's image (version 2, balance 15) is stale: decided on it, the withdrawal would be
    // accepted; the append conflicts, a reloads (balance 0) and refuses.
    let refused = a.execute("x", withdraw("x", 1)).await;
    assert!(
        matches!(
            refused,
            Err(EngineError::Rejected(InsufficientFunds {
                balance: 0,
                requested: 1
            }))
        ),
        "{refused:?}"
    );

    // The refusal left a's image as it was (version 3, balance 0, just loaded): the next
    // command needs no read, and sees the balance b left.
    let reads = store.reads();
    let after = a.execute("x", deposit("x", 7)).await.expect("deposit");
    assert_eq!(after.version, 4);
    assert_eq!(store.reads(), reads, "the image survived the refusal");
    // b's image (version 3, balance 0) is stale now. Decided on it, a withdrawal of 5
    // would be refused, and a refusal appends nothing for the optimistic check to catch:
    // the engine checks the stream for newer events, finds a's deposit, reloads and
    // accepts.
    let accepted = b
        .execute("x", withdraw("x", 5))
        .await
        .expect("accepted on the fresh state");
    assert_eq!(accepted.version, 5);

    // A refusal on a current image costs one short read and keeps the image.
    let reads = store.reads();
    let refused = b.execute("x", withdraw("x", 3)).await;
    assert!(
        matches!(
            refused,
            Err(EngineError::Rejected(InsufficientFunds {
                balance: 2,
                requested: 3
            }))
        ),
        "{refused:?}"
    );
    assert_eq!(store.reads(), reads + 1);
    b.execute("x", deposit("x", 1)).await.expect("deposit");
    assert_eq!(store.reads(), reads + 1, "the image survived the refusal");
    assert_eq!(
        a.load("x").await.expect("load").state,
        Account { balance: 3 }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_interleaving_on_the_same_aggregates_lose_nothing() {
    let store = Counting {
        inner: MemoryStore::new(),
        reads: Arc::default(),
    };
    let engines = [engine(&store), engine(&store)];
    let accounts = ["p", "q", "r"];
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let engine = engines[task % 2].clone();
            tokio::spawn(async move {
                // Per account: the net amount of the commands that were accepted.
                let mut net = [0_i64; 3];
                for i in 0..60_usize {
                    let slot = (task + i) % accounts.len();
                    let account = accounts[slot];
                    let amount = (i % 7 + 1) as u64;
                    let command = if i % 3 == 2 {
                        withdraw(account, amount)
                    } else {
                        deposit(account, amount)
                    };
                    match engine.execute(account, command.clone()).await {
                        Ok(committed) => {
                            assert_eq!(committed.events.len(), 1);
                            net[slot] += match command {
                                AccountCommand::Deposit { amount, .. } => amount as i64,
                                AccountCommand::Withdraw { amount, .. } => -(amount as i64),
                            };
                        }
                        Err(EngineError::Rejected(_)) => {}
                        Err(other) => panic!("{other}"),
                    }
                }
                net
            })
        })
        .collect();
    let mut net = [0_i64; 3];
    let mut accepted = 0;
    for task in tasks {
        let task_net = task.await.expect("task");
        for (total, part) in net.iter_mut().zip(task_net) {
            *total += part;
        }
    }
    for (slot, account) in accounts.iter().enumerate() {
        let loaded = engines[0].load(account).await.expect("load");
        assert_eq!(loaded.state.balance as i64, net[slot], "{account}");
        let stream = StreamId::new("account", account).expect("valid");
        let events = store
            .inner
            .read_stream(&stream, 1, usize::MAX)
            .await
            .expect("read");
        let versions: Vec<u64> = events.iter().map(|e| e.stream_version).collect();
        assert_eq!(versions, (1..=events.len() as u64).collect::<Vec<_>>());
        assert_eq!(loaded.version, events.len() as u64);
        accepted += events.len();
    }
    assert!(accepted > 0);
    assert_eq!(store.inner.len(), accepted);
}
