//! The memory image (`Engine::with_image_cache`) with two engines, each with its own
//! cache, on one store, as two processes would be: a cached state may be stale, and the
//! optimistic check alone keeps the result right.

use std::time::Duration;

use super::domain::{Account, InsufficientFunds, Money};
use super::probe::Probe;
use super::Store;
use crate::{Engine, EngineError, RetryPolicy, StreamId};

fn engine<S: Store>(store: &Probe<S>) -> Engine<Account> {
    Engine::new(store.clone(), ())
        .with_image_cache(16)
        .with_retry(RetryPolicy {
            max_attempts: 1_000,
            base_delay: Duration::from_micros(100),
        })
}

fn refused(balance: u64, requested: u64) -> impl Fn(&EngineError<InsufficientFunds>) -> bool {
    move |e| {
        matches!(e, EngineError::Rejected(InsufficientFunds { balance: b, requested: r })
            if *b == balance && *r == requested)
    }
}

/// A command on a cached aggregate reads nothing; a stale image conflicts (or, for a
/// decision that appends nothing, is found stale by a short read), reloads and decides
/// again on the other engine's writes.
pub async fn a_stale_image_is_caught_and_decided_again<S: Store>(store: S) {
    let store = Probe::new(store);
    let (a, b) = (engine(&store), engine(&store));
    let x = &uuid::Uuid::now_v7().to_string();

    a.execute(x, Money::Deposit(10)).await.expect("a opens x");
    let reads = store.stream_reads();
    let second = a.execute(x, Money::Deposit(5)).await.expect("a again");
    assert_eq!(second.version, 2);
    assert_eq!(
        store.stream_reads(),
        reads,
        "a cached aggregate reads nothing"
    );

    // b has no image of x: it loads (version 2, balance 15) and writes version 3.
    b.execute(x, Money::Withdraw(15))
        .await
        .expect("b empties x");

    // a's image (version 2, balance 15) is stale: decided on it, the withdrawal would be
    // accepted; the append conflicts, a reloads (balance 0) and refuses.
    let outcome = a.execute(x, Money::Withdraw(1)).await;
    assert!(outcome.as_ref().is_err_and(refused(0, 1)), "{outcome:?}");

    // The refusal left a's freshly loaded image (version 3): the next command reads
    // nothing.
    let reads = store.stream_reads();
    let after = a.execute(x, Money::Deposit(7)).await.expect("deposit");
    assert_eq!(after.version, 4);
    assert_eq!(
        store.stream_reads(),
        reads,
        "the image survived the refusal"
    );

    // b's image (version 3, balance 0) is stale now. Decided on it, a withdrawal of 5
    // would be refused, and a refusal appends nothing for the optimistic check to catch:
    // the engine checks the stream for newer events, finds a's deposit, reloads and
    // accepts.
    let accepted = b.execute(x, Money::Withdraw(5)).await.expect("accepted");
    assert_eq!(accepted.version, 5);

    // A refusal on a current image costs one short read and keeps the image.
    let reads = store.stream_reads();
    let outcome = b.execute(x, Money::Withdraw(3)).await;
    assert!(outcome.as_ref().is_err_and(refused(2, 3)), "{outcome:?}");
    assert_eq!(store.stream_reads(), reads + 1);
    b.execute(x, Money::Deposit(1)).await.expect("deposit");
    assert_eq!(
        store.stream_reads(),
        reads + 1,
        "the image survived the refusal"
    );
    assert_eq!(a.load(x).await.expect("load").state, Account { balance: 3 });
}

/// Eight tasks on two caching engines interleave deposits and withdrawals on three
/// accounts: each balance is the sum of the accepted commands, versions are contiguous.
pub async fn caching_engines_interleaving_lose_nothing<S: Store>(store: S) {
    let store = Probe::new(store);
    let engines = [engine(&store), engine(&store)];
    let run = uuid::Uuid::now_v7().to_string();
    let accounts: Vec<String> = ["p", "q", "r"]
        .iter()
        .map(|a| format!("{a}-{run}"))
        .collect();
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let engine = engines[task % 2].clone();
            let accounts = accounts.clone();
            tokio::spawn(async move {
                // Per account: the net amount of the commands that were accepted.
                let mut net = [0_i64; 3];
                for i in 0..30_usize {
                    let slot = (task + i) % accounts.len();
                    let amount = (i % 7 + 1) as u64;
                    let (command, delta) = if i % 3 == 2 {
                        (Money::Withdraw(amount), -(amount as i64))
                    } else {
                        (Money::Deposit(amount), amount as i64)
                    };
                    match engine.execute(&accounts[slot], command).await {
                        Ok(committed) => {
                            assert_eq!(committed.events.len(), 1);
                            net[slot] += delta;
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
    for task in tasks {
        for (total, part) in net.iter_mut().zip(task.await.expect("task")) {
            *total += part;
        }
    }
    let mut accepted = 0;
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
}
