//! Per-stream order in the global log: a transaction older than a stream's last writer
//! may not append to it (its events would sort before the version they follow). Each test
//! takes the binary-wide lock (see `common`).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{exclusive, fresh_pg_store, runtime, Bank};
use cqrs_core::codec::{self};
use cqrs_core::{
    EventFilter, EventLog, ExpectedVersion, Metadata, NewEvent, Position, StoreError, StoredEvent,
    StreamId, StreamStore,
};
use cqrs_postgres::PgStore;

fn account(id: &str) -> StreamId {
    StreamId::new("acct", id).expect("valid stream")
}

fn deposit(amount: u64) -> Vec<NewEvent> {
    vec![codec::encode(&Bank::Deposited { amount }, Metadata::default()).expect("encode")]
}

fn amount(event: &StoredEvent) -> u64 {
    match codec::decode::<Bank>(event).expect("decode").data {
        Bank::Deposited { amount } => amount,
    }
}

/// Everything in the global log, in its order.
async fn read_all(store: &PgStore) -> Vec<Arc<StoredEvent>> {
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = store
            .read_all(after, 100, &EventFilter::all())
            .await
            .expect("read_all");
        let Some(last) = batch.last() else {
            return all;
        };
        after = last.position;
        all.extend(batch);
    }
}

/// The read model the guide teaches: per stream, the last version applied, and anything
/// not newer ignored (idempotent under redelivery).
fn balances(log: &[Arc<StoredEvent>]) -> HashMap<StreamId, (u64, u64)> {
    let mut view: HashMap<StreamId, (u64, u64)> = HashMap::new();
    for event in log {
        let (version, balance) = view.entry(event.stream.clone()).or_default();
        if event.stream_version > *version {
            *version = event.stream_version;
            *balance += amount(event);
        }
    }
    view
}

fn versions_of(log: &[Arc<StoredEvent>], stream: &StreamId) -> Vec<u64> {
    log.iter()
        .filter(|e| &e.stream == stream)
        .map(|e| e.stream_version)
        .collect()
}

/// The reproduction of the defect: A takes its transaction id (an append to another
/// stream), B appends v2 and commits, A appends v3 on top of v2. A's v3 would sort before
/// B's v2 in the log; it is refused, and a retry in a new transaction lands in order.
#[test]
fn an_older_transaction_cannot_append_on_top_of_a_younger_writer() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let (s, x) = (account("s"), account("x"));
        store
            .append(&s, ExpectedVersion::NoStream, deposit(1))
            .await
            .expect("v1");

        let mut a = store.pool().begin().await.expect("begin A");
        store
            .append_in(&mut a, &x, ExpectedVersion::NoStream, deposit(1000))
            .await
            .expect("A's other write");
        store
            .append(&s, ExpectedVersion::Exact(1), deposit(10))
            .await
            .expect("B's v2 commits");
        let refused = store
            .append_in(&mut a, &s, ExpectedVersion::Exact(2), deposit(100))
            .await
            .expect_err("A's v3 must be refused");
        assert!(
            matches!(
                &refused,
                StoreError::StaleTransaction { stream, version: 2 } if stream == &s
            ),
            "{refused:?}"
        );
        assert!(refused.is_retriable());
        let message = refused.to_string();
        assert!(
            message.contains("acct/s") && message.contains("new transaction"),
            "the error says where and what to do: {message}"
        );
        // `Any` is refused the same way: it does not check the version, but the order
        // matters as much.
        let refused = store
            .append_in(&mut a, &s, ExpectedVersion::Any, deposit(100))
            .await
            .expect_err("an Any append from A must be refused too");
        assert!(
            matches!(refused, StoreError::StaleTransaction { version: 2, .. }),
            "{refused:?}"
        );
        // A itself is still usable (nothing failed in it), and rolls back.
        a.rollback().await.expect("rollback A");

        // The retry in a new transaction: the other write first, then v3.
        let mut retry = store.pool().begin().await.expect("begin retry");
        store
            .append_in(&mut retry, &x, ExpectedVersion::NoStream, deposit(1000))
            .await
            .expect("the other write again");
        store
            .append_in(&mut retry, &s, ExpectedVersion::Exact(2), deposit(100))
            .await
            .expect("v3 in a new transaction");
        retry.commit().await.expect("commit retry");

        let log = read_all(&store).await;
        assert_eq!(versions_of(&log, &s), [1, 2, 3]);
        let stream_versions: Vec<u64> = store
            .read_stream(&s, 1, 10)
            .await
            .expect("read_stream")
            .iter()
            .map(|e| e.stream_version)
            .collect();
        assert_eq!(stream_versions, [1, 2, 3]);
        let view = balances(&log);
        assert_eq!(
            view[&s],
            (3, 111),
            "no deposit lost by the guide's read model"
        );
        assert_eq!(view[&x], (1, 1000));
    });
}

/// A younger transaction may append on top of an older writer, and one transaction may
/// append to the same stream twice: only "older than the last writer" is refused.
#[test]
fn a_younger_transaction_and_a_repeated_writer_may_append() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let s = account("s");
        let mut older = store.pool().begin().await.expect("begin older");
        store
            .append_in(
                &mut older,
                &account("o"),
                ExpectedVersion::NoStream,
                deposit(5),
            )
            .await
            .expect("older's first write");
        let mut younger = store.pool().begin().await.expect("begin younger");
        store
            .append_in(&mut younger, &s, ExpectedVersion::NoStream, deposit(1))
            .await
            .expect("younger creates s");
        store
            .append_in(&mut younger, &s, ExpectedVersion::Exact(1), deposit(2))
            .await
            .expect("the same transaction appends again");
        younger.commit().await.expect("commit younger");
        older.commit().await.expect("commit older");
        store
            .append(&s, ExpectedVersion::Exact(2), deposit(3))
            .await
            .expect("a plain append after both");
        let log = read_all(&store).await;
        assert_eq!(versions_of(&log, &s), [1, 2, 3]);
    });
}

/// A version conflict is still a conflict (not a stale transaction) when the version is
/// wrong, whatever the transaction's age: the caller must reload first.
#[test]
fn a_wrong_version_is_a_conflict_even_from_an_older_transaction() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        let s = account("s");
        store
            .append(&s, ExpectedVersion::NoStream, deposit(1))
            .await
            .expect("v1");
        let mut a = store.pool().begin().await.expect("begin A");
        store
            .append_in(&mut a, &account("x"), ExpectedVersion::NoStream, deposit(1))
            .await
            .expect("A's other write");
        store
            .append(&s, ExpectedVersion::Exact(1), deposit(2))
            .await
            .expect("v2");
        let refused = store
            .append_in(&mut a, &s, ExpectedVersion::Exact(1), deposit(3))
            .await
            .expect_err("stale version");
        assert!(
            matches!(refused, StoreError::Conflict { actual: 2, .. }),
            "{refused:?}"
        );
        a.rollback().await.expect("rollback");
    });
}

/// Copies each deposit of stream type `acct` into the stream `audit/log`, in the batch's
/// transaction. The first time, another writer appends to `audit/log` first, from a
/// younger transaction: the copy is refused as stale.
#[derive(cqrs_postgres::PgProjection)]
#[pg_projection(event = Bank, error = AuditError, streams("acct"))]
struct Audit {
    store: PgStore,
    interfered: Arc<std::sync::atomic::AtomicBool>,
    refused: Arc<std::sync::atomic::AtomicU32>,
}

#[derive(Debug, thiserror::Error)]
enum AuditError {
    #[error("audit append: {0}")]
    Store(#[from] StoreError),
}

fn audit_log() -> StreamId {
    StreamId::new("audit", "log").expect("valid stream")
}

impl Audit {
    async fn handle(
        &self,
        tx: &mut cqrs_postgres::sqlx::PgConnection,
        event: &cqrs_core::Envelope<Bank>,
    ) -> Result<(), AuditError> {
        use std::sync::atomic::Ordering;
        let Bank::Deposited { amount } = event.data;
        if !self.interfered.swap(true, Ordering::SeqCst) {
            self.store
                .append(&audit_log(), ExpectedVersion::Any, deposit(0))
                .await?;
        }
        let copied = self
            .store
            .append_in(tx, &audit_log(), ExpectedVersion::Any, deposit(amount))
            .await;
        if matches!(copied, Err(StoreError::StaleTransaction { .. })) {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        copied?;
        Ok(())
    }

    async fn reset(&self, _tx: &mut cqrs_postgres::sqlx::PgConnection) -> Result<(), AuditError> {
        Ok(())
    }
}

/// A transactional projection whose handler appends, refused as stale, is retried like a
/// store failure (not parked, not stopped) in a new transaction, and the copies land in
/// order.
#[test]
fn a_transactional_projection_refused_as_stale_is_retried_in_a_new_transaction() {
    runtime().block_on(async {
        let _one = exclusive().await;
        let store = fresh_pg_store().await;
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            store
                .append(
                    &account(id),
                    ExpectedVersion::NoStream,
                    deposit(i as u64 + 1),
                )
                .await
                .expect("deposit");
        }
        let refused = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let audit = Audit {
            store: store.clone(),
            interfered: Default::default(),
            refused: Arc::clone(&refused),
        };
        let running =
            cqrs_core::Subscription::new(store.clone(), store.transactional(audit).expect("valid"))
                .retry(cqrs_core::RetryPolicy {
                    max_attempts: 1,
                    base_delay: std::time::Duration::from_millis(1),
                })
                .on_failure(cqrs_core::subscription::FailurePolicy::Park)
                .start();
        running
            .caught_up(std::time::Duration::from_secs(20))
            .await
            .expect("caught up");
        let status = running.status();
        running.shutdown().await.expect("shutdown");
        assert_eq!(
            refused.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the interfered copy was refused once"
        );
        assert_eq!(
            status.parked, 0,
            "a stale transaction is not the event's fault"
        );
        let copies: Vec<u64> = store
            .read_stream(&audit_log(), 1, 10)
            .await
            .expect("read")
            .iter()
            .map(|e| amount(e))
            .collect();
        assert_eq!(
            copies,
            [0, 1, 2, 3],
            "every deposit copied once, after the interference"
        );
        let log = read_all(&store).await;
        assert_eq!(versions_of(&log, &audit_log()), [1, 2, 3, 4]);
    });
}
